"""Re-grade the recorded budget-forcing outputs (../bf) as s1 grades them: with the forced cue.

The recorded run kept the answer text WITHOUT the "Final Answer:" it was written after. A reply
whose thinking reached the budget had that cue appended (``program.budget_forcing``), so here it
is put back in front of the answer before grading, exactly as ``ForcedResult.graded`` now does.
This separates the grading change from the new continuation of empty answers (which needs a run).

    .venv/bin/python experiments/results/gsm8k30/bf-s1-answer/regrade_before.py

Writes regrade_before.jsonl (one line per problem) beside this script and prints the counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from data.grading import grade, grader_version

HERE = Path(__file__).parent
BEFORE = HERE.parent / "bf"


def main() -> None:
    budget = yaml.safe_load((BEFORE / "config.yaml").read_text())["lm"]["system2"]["thinking_budget"]
    cue = yaml.safe_load((BEFORE / "config.yaml").read_text())["lm"]["forcing"]["final_answer"]
    rows = []
    for line in (BEFORE / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        thinking = record["trace"]["usage"]["thinking_tokens"]
        hit_cap = thinking >= budget  # the cue is appended exactly when thinking reached the budget
        graded_text = (cue + " " + record["solution"]) if hit_cap else record["solution"]
        new = grade(record["gold"], graded_text)
        rows.append({"id": record["id"], "gold": record["gold"], "thinking_tokens": thinking, "hit_cap": hit_cap,
                     "answer_text": record["solution"], "graded_text": graded_text,
                     "before": {"extracted": record["extracted"], "correct": record["correct"]},
                     "regraded": {"extracted": new.extracted, "correct": new.correct, "reason": new.reason}})
    with (HERE / "regrade_before.jsonl").open("w") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    before = sum(r["before"]["correct"] for r in rows)
    after = sum(r["regraded"]["correct"] for r in rows)
    empty = sum(not r["answer_text"].strip() for r in rows)
    changed = [r["id"] for r in rows if r["before"]["correct"] != r["regraded"]["correct"]]
    print(f"grader: {grader_version()}; thinking budget {budget}")
    print(f"recorded grade: {before}/{len(rows)}; re-graded with the cue: {after}/{len(rows)}; changed: {changed}")
    print(f"empty answers (natural end, nothing after the marker): {empty}")


if __name__ == "__main__":
    main()
