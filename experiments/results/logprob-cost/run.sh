#!/usr/bin/env bash
# Issue 24's logprob benchmark in two rounds: problems 1-10 length first, then 11-20 deepconf first
# (drift in the shared machine's load then falls on both entries). Cold response cache. Each round's
# compare.json is kept as round-N.json. Resumable (finished problems are read back).
#   bash experiments/results/logprob-cost/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
export LITELLM_LOCAL_MODEL_COST_MAP=True SCALE_NO_CACHE=1 SCALE_DATA_DIR="${SCALE_DATA_DIR:-$root/../shared/data}"
workers="${WORKERS:-4}"
round() {  # round N CONFIG LIMIT
  echo "round $1 (limit $3, $2, --workers $workers): start $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)" \
    | tee -a "$here/sittings.log"
  (cd "$root" && DSPY_CACHEDIR="$(mktemp -d)" .venv/bin/scale compare --config "$here/$2" --limit "$3" \
      --workers "$workers" --output "$here/run" --no-mlflow --no-progress) | tee "$here/round-$1-table.txt"
  cp "$here/run/compare.json" "$here/round-$1.json"
  echo "round $1: end $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$here/sittings.log"
}
round 1 config.yaml 10
round 2 config-reversed.yaml 20
