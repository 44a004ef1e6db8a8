#!/bin/bash
# Issue 11: wall time of the integration tests (real embedded model) at a commit, each side starting its own
# server (nothing listening on 8765 before), in a worktree with this checkout's .venv.
#   bash experiments/results/speed-30/integration/run.sh before 528b77e
#   bash experiments/results/speed-30/integration/run.sh after <commit>
set -u
SIDE=$1 COMMIT=$2
ROOT=$(cd "$(dirname "$0")/../../../.." && pwd)
OUT=$ROOT/experiments/results/speed-30/integration
WT=/tmp/integ-$SIDE
rm -rf "$WT"; git -C "$ROOT" worktree add -f -q "$WT" "$COMMIT"
export LITELLM_LOCAL_MODEL_COST_MAP=True SCALE_DATA_DIR=${SCALE_DATA_DIR:-$ROOT/../shared/data} SCALE_NO_CACHE=1
START=$(date +%s.%N)
(cd "$WT" && PYTHONPATH="$WT" "$ROOT/.venv/bin/python" -m pytest -q -p no:cacheprovider tests/integration --durations=0) \
  > "$OUT/$SIDE.txt" 2>&1
RC=$?
END=$(date +%s.%N)
echo "{\"side\": \"$SIDE\", \"commit\": \"$(git -C "$WT" rev-parse HEAD)\", \"rc\": $RC, \"wall_seconds\": $(echo "$END - $START" | bc)}" > "$OUT/$SIDE.json"
git -C "$ROOT" worktree remove --force "$WT"
