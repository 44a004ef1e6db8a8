#!/usr/bin/env bash
# Issue 24's throughput benchmark, old engine then new, in one sitting, cold response cache on both
# sides (SCALE_NO_CACHE=1 and a fresh DSPy cache dir). Resumable: each side's compare resumes its
# finished problems (rerun with the same LIMIT).
#   bash experiments/results/engine-throughput/run.sh [LIMIT]   (default 20)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
limit="${1:-20}"
before="${BEFORE:-/work/wt/before}"   # a checkout of 3ab2d6f (git worktree add --detach "$before" 3ab2d6f)
py="$root/.venv/bin/python"
export LITELLM_LOCAL_MODEL_COST_MAP=True SCALE_NO_CACHE=1 SCALE_DATA_DIR="${SCALE_DATA_DIR:-$root/../shared/data}"
side() {  # side NAME TREE WORKERS
  local name=$1 tree=$2 workers=$3 start
  if curl -sf http://127.0.0.1:8765/health >/dev/null; then
    echo "a server already listens on 8765: stop it (each side must start its own)" >&2; exit 2
  fi
  start=$(date +%s)
  echo "$name: $(git -C "$tree" rev-parse --short HEAD), --workers $workers, load $(cut -d' ' -f1-3 /proc/loadavg)" \
    | tee -a "$here/sittings.log"
  (cd "$tree" && DSPY_CACHEDIR="$(mktemp -d)" PYTHONPATH="$tree" "$py" -P -m optimize.cli compare \
      --config "$here/config.yaml" --limit "$limit" --workers "$workers" --output "$here/$name" \
      --no-mlflow --no-progress) | tee "$here/$name-table.txt"
  echo "$name: $(( $(date +%s) - start )) s wall, load after $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$here/sittings.log"
}
side old "$before" 1
side new "$root" 4
