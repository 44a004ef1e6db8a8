#!/usr/bin/env bash
# Issue 26's recordings on the embedded model: `scale search` across every family
# (experiments/local/search-families.yaml), in the budget form at bf-512's recorded tokens (330 per
# problem, halving pruner) or in the front form, each confirmed on 100 held-out train problems.
# The pruning goal: pruning-halving and pruning-none run the same eight enqueued settings (one per
# family and budget, `search.enqueue`, no other trial, no held-out run) in the budget form, with
# and without the halving pruner, each from its own cold response cache, so their model calls compare.
# Resumable: rerun with the same FORM and the study goes on from its finished trials (Optuna journal
# file), reusing its plans and its response cache (a DSPy cache dir of its own, empty at the first run).
#   bash experiments/results/search-families/run.sh budget330|front|pruning-halving|pruning-none
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
form="${1:?usage: run.sh budget330|front|pruning-halving|pruning-none}"
case "$form" in
  budget330) extra=(--budget 330 --pruner halving) ;;
  front) extra=() ;;
  pruning-halving) extra=(--budget 330 --pruner halving) ;;
  pruning-none) extra=(--budget 330 --pruner none) ;;
  *) echo "run.sh: FORM must be budget330, front, pruning-halving or pruning-none, not '$form'" >&2; exit 2 ;;
esac
export LITELLM_LOCAL_MODEL_COST_MAP=True SCALE_DATA_DIR="${SCALE_DATA_DIR:-$root/../shared/data}"
export DSPY_CACHEDIR="$root/runs/cache-search-families-$form"  # kept between sittings (runs/ is not committed)
mkdir -p "$here/$form"
# The recorded config: the local one, named after the form, writing into this folder.
"$root/.venv/bin/python" - "$root/experiments/local/search-families.yaml" "$here/$form/config.yaml" "$form" "${here#"$root"/}" <<'PY'
import sys, yaml
source, target, form, out = sys.argv[1:]
config = yaml.safe_load(open(source, encoding="utf-8"))
config["name"] = form
if form.startswith("pruning-"):  # the same fixed settings in both, in the order the space lists the families
    settings = [{"method": "cot", "system1_max_tokens": 256}, {"method": "cot", "system1_max_tokens": 768},
                {"method": "bf", "system2_thinking_budget": 128}, {"method": "bf", "system2_thinking_budget": 512},
                {"method": "vote", "vote_samples": 3}, {"method": "cascade", "system2_kind": "think"},
                {"method": "cascade", "system2_kind": "vote", "vote_samples": 5}, {"method": "scale"}]
    config["search"].update(trials=len(settings), enqueue_paper=False, enqueue=settings, heldout=0)
config.setdefault("tracking", {})["output_dir"] = out  # relative to the repo root, where the search runs
with open(target, "w", encoding="utf-8") as f:
    f.write("# Written by run.sh from experiments/local/search-families.yaml; do not edit here.\n")
    yaml.safe_dump(config, f, sort_keys=False)
PY
start=$(date +%s)
echo "$(date -u +%FT%TZ) $(git -C "$root" rev-parse --short HEAD) $form, load $(cut -d' ' -f1-3 /proc/loadavg)" \
  | tee -a "$here/sittings.log"
(cd "$root" && .venv/bin/python -P -m optimize.cli search --config "$here/$form/config.yaml" "${extra[@]}" \
    --study "families-$form" --storage "journal:$here/$form/journal.log" --no-mlflow --no-progress) \
  2>&1 | tee -a "$here/$form/console.txt"
echo "$(date -u +%FT%TZ) $form done: $(( $(date +%s) - start )) s wall, load $(cut -d' ' -f1-3 /proc/loadavg)" \
  | tee -a "$here/sittings.log"
