#!/bin/bash
# "before" = commit 528b77e (worktree /work/before): its prompts, its server flags (llama_cpp.server defaults:
# logits_all true, no prompt cache), plus only the AMX crash work-around (program.llama_server from main).
N=${1:-3}
OUT=/tmp/t11/runs/before
mkdir -p $OUT
export LITELLM_LOCAL_MODEL_COST_MAP=True SCALE_DATA_DIR=/work/shared/data SCALE_NO_CACHE=1
M=/root/.cache/scale-tts/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
(cd /work/main && exec .venv/bin/python -m program.llama_server --model $M --model_alias qwen2.5-coder-1.5b-instruct \
  --host 127.0.0.1 --port 8801 --n_ctx 4096 --n_threads 2 --n_threads_batch 2) > $OUT/server.log 2>&1 &
SPID=$!
until curl -s -m 2 http://127.0.0.1:8801/v1/models >/dev/null; do sleep 1; done
(while true; do echo "$(date +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 15; done) > $OUT/load.txt &
LPID=$!
cd /work/before
echo "START $(date +%s.%N)" > $OUT/wall.txt
PYTHONPATH=/work/before /work/main/.venv/bin/scale eval --config experiments/local/gsm8k30.yaml --method scale \
  --limit $N --api-base http://127.0.0.1:8801/v1 --no-progress --output /tmp/t11/runs/before/run > $OUT/console.txt 2>&1
echo "rc=$? END $(date +%s.%N)" >> $OUT/wall.txt
kill $LPID $SPID
