#!/usr/bin/env bash
# Issue 27: every optimizer screened on 100 held-out GSM8K train problems, then the best confirmed on 200 more.
# NOT RUN YET (hours of CPU on the embedded model). Resumable: each compile's scoring is resumable
# (eval/*/results.jsonl), a finished compile (metadata.json with scores) is skipped, and the response
# cache makes a re-run of an interrupted optimizer replay its finished requests.
#
# Slices (gsm8k_train, seed 0): 0-99 calibration (labels.jsonl = the System 1 stage's examples, and the
# CoT dev set), 100-149 the issue-14 held-out: all used. Screen held-out: 150-249 (--val-offset 150).
# Confirmation held-out: 250-449 (--val-offset 250 --val 200). Gold demo pool: drawn from the END of
# the shuffle, never a dev, held-out or recorded id. Workers 4 = the embedded llama-server's 4 slots (x 4096 tokens).
#
#   bash experiments/results/compile-optimizers/run.sh screen     # 10 compiles
#   bash experiments/results/compile-optimizers/run.sh confirm NAME   # e.g. cascade-labeled
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=experiments/results/compile-optimizers
SCALE=${SCALE:-scale}
LABELS=experiments/results/calibration/cascade-gsm8k-train100/labels.jsonl
COMMON=(--dev gsm8k_train:100 --workers 4 --no-progress)

cascade=(--config experiments/local/compile-optimizers.yaml --stage system1 --labels "$LABELS")
cot=(--config experiments/local/compile-optimizers.yaml --method cot --stage program)
declare -A OPTIONS=(
  [bootstrap]="--optimizer bootstrap"
  [labeled]="--optimizer labeled --gold-demos 100 --shortest 4 --max-demo-tokens 600"
  [bootstrap-gold]="--optimizer bootstrap --gold-demos 100 --max-demo-tokens 600"
  [mipro]="--optimizer mipro --auto light --gold-demos 100 --max-demo-tokens 600"
  [gepa]="--optimizer gepa --auto light --gold-demos 100"
)

compile_one() {  # NAME PROGRAM OPTIMIZER VAL_OFFSET VAL DIR
  local dir=$6
  if [[ -f $dir/metadata.json ]] && grep -q '"heldout_change"' "$dir/metadata.json"; then
    echo "done: $dir"; return
  fi
  mkdir -p "$dir"
  local -n program=$2
  # shellcheck disable=SC2086
  ( set -x; /usr/bin/time -v $SCALE compile "${program[@]}" ${OPTIONS[$3]} "${COMMON[@]}" \
      --val-offset "$4" --val "$5" --cap-penalty 0.5 --output "$dir" ) >"$dir.out.txt" 2>&1 || echo "FAILED: $dir"
}

case "${1:-screen}" in
  screen)
    for program in cascade cot; do
      for optimizer in bootstrap labeled bootstrap-gold mipro gepa; do
        compile_one "$program-$optimizer" "$program" "$optimizer" 150 100 "$OUT/screen/$program-$optimizer"
      done
    done ;;
  confirm)
    name=${2:?name the screened compile to confirm, e.g. cascade-labeled}
    compile_one "$name" "${name%%-*}" "${name#*-}" 250 200 "$OUT/confirm/$name" ;;
  *) echo "usage: run.sh screen | confirm NAME" >&2; exit 2 ;;
esac
