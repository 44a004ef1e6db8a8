#!/usr/bin/env bash
# The recorded comparison (issues 9 and 17), grown 10 problems at a time so that a complete
# comparison over the first N problems exists at every point; each round resumes the previous one
# (finished problems are read back from results.jsonl, not asked again).
#   bash experiments/results/compare-gsm8k/run.sh [LIMITS...]   (default: 10 20 30 40 50)
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=experiments/results/compare-gsm8k
limits=("${@:-10 20 30 40 50}")
for n in ${limits[@]}; do
  start=$(date +%s)
  .venv/bin/scale compare --config experiments/local/compare-gsm8k.yaml --limit "$n" --output "$out" \
      --no-progress $([ "$n" = 50 ] || echo --no-mlflow) | tee "$out/table-first$n.txt"
  echo "round to $n problems: $(( $(date +%s) - start )) s" | tee -a "$out/rounds.log"
done
