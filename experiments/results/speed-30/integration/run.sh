#!/bin/bash
# Issue 11: wall time of the integration tests (real embedded model) at a commit, each side starting its own
# server (nothing listening on 8765 before), in a worktree with this checkout's .venv.
#   bash experiments/results/speed-30/integration/run.sh before 528b77e
#   bash experiments/results/speed-30/integration/run.sh after <commit>
HERE=$(cd "$(dirname "$0")" && pwd)
exec bash "$HERE/../timed_in_worktree.sh" "$HERE" "$1" "$2" python -m pytest -q -p no:cacheprovider tests/integration \
  --durations=0
