#!/bin/bash
# Issue 11: wall time of `make demo` (scale quickstart --config experiments/quickstart.yaml) at a commit, in a
# worktree with this checkout's .venv, empty response cache, its own server (nothing on port 8765 before).
#   bash experiments/results/speed-30/demo/run.sh before 528b77e
#   bash experiments/results/speed-30/demo/run.sh after <commit>
set -u
SIDE=$1 COMMIT=$2
ROOT=$(cd "$(dirname "$0")/../../../.." && pwd)
OUT=$ROOT/experiments/results/speed-30/demo
WT=/tmp/demo-$SIDE
rm -rf "$WT"; git -C "$ROOT" worktree add -f -q "$WT" "$COMMIT"
export LITELLM_LOCAL_MODEL_COST_MAP=True SCALE_DATA_DIR=${SCALE_DATA_DIR:-$ROOT/../shared/data} SCALE_NO_CACHE=1
START=$(date +%s.%N)
(cd "$WT" && PYTHONPATH="$WT" "$ROOT/.venv/bin/scale" quickstart --config experiments/quickstart.yaml) > "$OUT/$SIDE.txt" 2>&1
RC=$?
END=$(date +%s.%N)
echo "{\"side\": \"$SIDE\", \"commit\": \"$(git -C "$WT" rev-parse HEAD)\", \"rc\": $RC, \"wall_seconds\": $(echo "$END - $START" | bc)}" > "$OUT/$SIDE.json"
git -C "$ROOT" worktree remove --force "$WT"
