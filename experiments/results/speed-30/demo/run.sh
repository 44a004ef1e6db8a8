#!/bin/bash
# Issue 11: wall time of `make demo` (scale quickstart --config experiments/quickstart.yaml) at a commit, in a
# worktree with this checkout's .venv, empty response cache, its own server (nothing on port 8765 before).
#   bash experiments/results/speed-30/demo/run.sh before 528b77e
#   bash experiments/results/speed-30/demo/run.sh after <commit>
HERE=$(cd "$(dirname "$0")" && pwd)
exec bash "$HERE/../timed_in_worktree.sh" "$HERE" "$1" "$2" scale quickstart --config experiments/quickstart.yaml
