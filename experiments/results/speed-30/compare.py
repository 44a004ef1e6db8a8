"""Side-by-side numbers of experiments/results/speed-30 (issue 11): wall time, accuracy, tokens per stage,
prompt tokens evaluated vs reused per problem (where the server reported them).

    python experiments/results/speed-30/compare.py > experiments/results/speed-30/compare.txt
    python experiments/results/speed-30/compare.py 2 > experiments/results/speed-30/compare-2.txt

Ratios are taken within one sitting only (one machine, one session): sitting 1 is before / after /
after-range; sitting 2 (a later session) is before-2 / after-2 / final-value.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Sitting 1: before = 528b77e; after = the issue-11 work at 6936b59; after-range = plus the range capped
# at max_steps. Sitting 2: before-2 = 528b77e again; after-2 = a later commit; final-value = that
# commit with experiments/local/gsm8k30-final-value.yaml (earlier steps shown by their values only).
SITTINGS = {"1": ("before", "after", "after-range"), "2": ("before-2", "after-2", "final-value")}
SIDES = [side for side in SITTINGS[sys.argv[1] if len(sys.argv) > 1 else "1"] if (HERE / side / "wall.json").exists()]


def load(side: str) -> tuple[dict, list[dict]]:
    wall = json.loads((HERE / side / "wall.json").read_text())
    rows = [json.loads(line) for line in (HERE / side / "run" / "scale-gsm8k" / "results.jsonl").open()]
    return wall, rows


def main() -> None:
    sides = {side: load(side) for side in SIDES}
    for side, (wall, rows) in sides.items():
        n = len(rows)
        calls = [c for r in rows for c in r["calls"]]
        by_stage: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0])
        for c in calls:
            by_stage[c["stage"]][0] += 1
            by_stage[c["stage"]][1] += c["prompt_tokens"]
            by_stage[c["stage"]][2] += c["completion_tokens"]
        reused = [c.get("prompt_reused") for c in calls]
        print(f"== {side}: commit {wall['commit'][:7]}, exit {wall['rc']}, wall {wall['wall_seconds']:.1f} s, "
              f"{sum(r['correct'] for r in rows)}/{n} correct, {len(calls) / n:.1f} calls per problem")
        print(f"   per problem: prompt {sum(c['prompt_tokens'] for c in calls) / n:.0f}, "
              f"completion {sum(c['completion_tokens'] for c in calls) / n:.0f}, "
              f"LLM seconds {sum(r['llm_seconds'] or 0 for r in rows) / n:.1f}")
        if all(x is not None for x in reused):
            total_reused = sum(reused)
            print(f"   prompt tokens reused from the server's cached prefix: {total_reused / n:.0f} per problem "
                  f"({100 * total_reused / sum(c['prompt_tokens'] for c in calls):.0f} %), evaluated "
                  f"{sum(c['prompt_tokens'] - c['prompt_reused'] for c in calls) / n:.0f}; prompt-eval s "
                  f"{sum(c.get('prompt_seconds') or 0 for c in calls) / n:.1f}, generation s "
                  f"{sum(c.get('generation_seconds') or 0 for c in calls) / n:.1f} per problem")
        else:
            print("   (this side's server reported no reuse or timings)")
        for stage, (k, p, comp) in sorted(by_stage.items()):
            print(f"   {stage:10s} calls {k / n:4.1f}  prompt {p / n:6.0f}  completion {comp / n:5.0f}")
    before = sides[SIDES[0]][0]["wall_seconds"]
    for side in SIDES[1:]:
        print(f"\nwall-time ratio {side} / {SIDES[0]}: {sides[side][0]['wall_seconds'] / before:.2f} (goal <= 0.5)")
    print("\nper problem: id, then per side: seconds, prompt tokens, evaluated, reused, correct")
    for rows in zip(*(sides[side][1] for side in SIDES), strict=True):
        cells = []
        for r in rows:
            evaluated = sum(c["prompt_tokens"] - (c.get("prompt_reused") or 0) for c in r["calls"])
            cells.append(f"{r['wall_seconds']:6.1f} {r['totals']['prompt_tokens']:5d} {evaluated:5d} "
                         f"{r['totals']['prompt_tokens'] - evaluated:5d} {int(r['correct'])}")
        print(f"{rows[0]['id']}: " + " | ".join(cells))

if __name__ == "__main__":
    main()
