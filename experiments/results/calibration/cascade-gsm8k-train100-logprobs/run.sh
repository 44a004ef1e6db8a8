#!/usr/bin/env bash
# Issue 24: the logprob attempt sources (deepconf, mean_logprob) beside attempt:length on the same
# 100 GSM8K train problems as ../cascade-gsm8k-train100 (seed 0, offset 0), on the new engine
# (llama-server, 4 slots, native logprobs; one attempt per step carries them). Resumable: rerun it
# and only the problems missing from labels.jsonl are labelled.
#   bash experiments/results/calibration/cascade-gsm8k-train100-logprobs/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
export LITELLM_LOCAL_MODEL_COST_MAP=True SCALE_DATA_DIR="${SCALE_DATA_DIR:-$root/../shared/data}"
start=$(date +%s)
echo "$(date -u +%FT%TZ) $(git -C "$root" rev-parse --short HEAD) --workers 4, labelled so far $(wc -l < "$here/labels.jsonl" 2>/dev/null || echo 0), load $(cut -d' ' -f1-3 /proc/loadavg)" \
  | tee -a "$here/sittings.log"
(cd "$root" && .venv/bin/python -P -m optimize.cli calibrate --config experiments/local/calibrate-gsm8k.yaml \
    --method cascade --dev gsm8k_train:100 --workers 4 \
    --sources attempt:length,attempt:deepconf,attempt:mean_logprob \
    --output "$here" --no-mlflow --no-progress) | tee "$here/output.txt"
echo "$(date -u +%FT%TZ) done: $(( $(date +%s) - start )) s wall" | tee -a "$here/sittings.log"
