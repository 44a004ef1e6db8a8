#!/bin/bash
# Time one command at a commit: a worktree of that commit, this checkout's .venv first on PATH and the
# worktree on PYTHONPATH, an empty response cache. Writes OUT/SIDE.txt (the output) and OUT/SIDE.json
# (commit, exit status, wall seconds). Used by demo/run.sh and integration/run.sh.
#   bash timed_in_worktree.sh OUT SIDE COMMIT COMMAND...
set -u
OUT=$1 SIDE=$2 COMMIT=$3
shift 3
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
WT=/tmp/$(basename "$OUT")-$SIDE
rm -rf "$WT"; git -C "$ROOT" worktree add -f -q "$WT" "$COMMIT"
export LITELLM_LOCAL_MODEL_COST_MAP=True SCALE_DATA_DIR=${SCALE_DATA_DIR:-$ROOT/../shared/data} SCALE_NO_CACHE=1
export PATH="$ROOT/.venv/bin:$PATH"
START=$(date +%s.%N)
(cd "$WT" && PYTHONPATH="$WT" "$@") > "$OUT/$SIDE.txt" 2>&1
RC=$?
END=$(date +%s.%N)
echo "{\"side\": \"$SIDE\", \"commit\": \"$(git -C "$WT" rev-parse HEAD)\", \"rc\": $RC, \"wall_seconds\": $(echo "$END - $START" | bc)}" > "$OUT/$SIDE.json"
git -C "$ROOT" worktree remove --force "$WT"
