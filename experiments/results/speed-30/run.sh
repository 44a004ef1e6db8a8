#!/bin/bash
# Issue 11's side-by-side: `scale eval --method scale` on the 30 GSM8K test problems of
# experiments/local/gsm8k30.yaml, empty response cache (SCALE_NO_CACHE=1), each side with its own
# fresh embedded server on port 8801 started by that side's code and flags:
#   before = commit 528b77e (worktree), `python -m llama_cpp.server` with that commit's flags;
#   after  = the commit given (worktree), `python -m program.llama_server` with its flags.
# Both use this checkout's .venv (same llama-cpp-python build); PYTHONPATH points at the worktree.
#   bash experiments/results/speed-30/run.sh before 528b77e
#   bash experiments/results/speed-30/run.sh after <commit>
# CONFIG (default experiments/local/gsm8k30.yaml, a path inside the worktree) picks another config:
#   CONFIG=experiments/local/gsm8k30-final-value.yaml bash experiments/results/speed-30/run.sh final-value <commit>
set -u
SIDE=$1 COMMIT=$2 N=${3:-30} CONFIG=${CONFIG:-experiments/local/gsm8k30.yaml}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=$ROOT/experiments/results/speed-30/$SIDE
WT=/tmp/speed30-$SIDE
mkdir -p "$OUT"
rm -rf "$WT"; git -C "$ROOT" worktree add -f -q "$WT" "$COMMIT"
export LITELLM_LOCAL_MODEL_COST_MAP=True SCALE_DATA_DIR=${SCALE_DATA_DIR:-$ROOT/../shared/data} SCALE_NO_CACHE=1
M=$HOME/.cache/scale-tts/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
COMMON="--model $M --model_alias qwen2.5-coder-1.5b-instruct --host 127.0.0.1 --port 8801 --n_ctx 4096 --n_threads 2 --n_threads_batch 2"
if [ "$SIDE" = before ]; then SERVER="-m llama_cpp.server $COMMON"; else SERVER="-m program.llama_server $COMMON --logits_all false"; fi
(cd "$WT" && PYTHONPATH="$WT" exec "$ROOT/.venv/bin/python" $SERVER) > "$OUT/server.log" 2>&1 &
SPID=$!
until curl -s -m 2 http://127.0.0.1:8801/v1/models >/dev/null; do sleep 1; done
(while true; do echo "$(date +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 15; done) > "$OUT/load.txt" &
LPID=$!
echo "commit $(git -C "$WT" rev-parse HEAD); server: python $SERVER" > "$OUT/command.txt"
echo "PYTHONPATH=$WT scale eval --config $CONFIG --method scale --limit $N --api-base http://127.0.0.1:8801/v1 --no-progress --output $OUT/run" >> "$OUT/command.txt"
START=$(date +%s.%N)
(cd "$WT" && PYTHONPATH="$WT" "$ROOT/.venv/bin/scale" eval --config "$CONFIG" --method scale \
  --limit "$N" --api-base http://127.0.0.1:8801/v1 --no-progress --output "$OUT/run") > "$OUT/console.txt" 2>&1
RC=$?
END=$(date +%s.%N)
echo "{\"side\": \"$SIDE\", \"commit\": \"$(git -C "$WT" rev-parse HEAD)\", \"rc\": $RC, \"wall_seconds\": $(echo "$END - $START" | bc)}" > "$OUT/wall.json"
kill $LPID $SPID; wait $SPID 2>/dev/null
git -C "$ROOT" worktree remove --force "$WT"
