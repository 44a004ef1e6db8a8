#!/usr/bin/env bash
# Greedy entries of the recorded comparison on the new engine (issue 24). Resumable: rerun with the
# same LIMIT and the compare resumes its finished problems. Cold response cache (SCALE_NO_CACHE=1,
# a fresh DSPy cache dir), so no answer comes from an earlier run.
#   bash experiments/results/greedy-50/run.sh [LIMIT]   (default 50)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
limit="${1:-50}"
export LITELLM_LOCAL_MODEL_COST_MAP=True SCALE_NO_CACHE=1 SCALE_DATA_DIR="${SCALE_DATA_DIR:-$root/../shared/data}"
start=$(date +%s)
echo "$(date -u +%FT%TZ) $(git -C "$root" rev-parse --short HEAD) limit $limit, --workers 4, load $(cut -d' ' -f1-3 /proc/loadavg)" \
  | tee -a "$here/sittings.log"
(cd "$root" && DSPY_CACHEDIR="$(mktemp -d)" .venv/bin/python -P -m optimize.cli compare \
    --config "$here/config.yaml" --limit "$limit" --workers 4 --output "$here/run" --no-mlflow --no-progress) \
  | tee "$here/table.txt"
echo "$(date -u +%FT%TZ) done: $(( $(date +%s) - start )) s wall, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$here/sittings.log"
