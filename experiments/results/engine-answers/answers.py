"""Greedy answers of the new engine against the recorded ones (issue 24's accuracy check).

Batched decoding changes floating-point order, so greedy answers may change. For each greedy entry
that a run on the new engine (llama-server, 4 slots) shares with the recorded 50-problem comparison
(experiments/results/compare-gsm8k, the old engine), on the problems both have: how many final
answers changed, how many replies changed at all, and accuracy before and after. Runs compared:
the new side of experiments/results/engine-throughput and experiments/results/logprob-cost (its
attempt-length entry is the recorded scale-attempt). The old side of engine-throughput, the old
engine again, shows whether the old engine reproduces its own record.

    python experiments/results/engine-answers/answers.py > experiments/results/engine-answers/answers.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from optimize.compare.stats import paired_difference

RESULTS = Path(__file__).resolve().parents[1]
RECORDED = RESULTS / "compare-gsm8k"
# The twelve greedy entries of the recorded comparison (its vote entries sample, so they have no
# "same answer" to compare), all rerun in experiments/results/greedy-50.
GREEDY_ENTRIES = ("cot-256", "cot-512", "cot-768", "bf-128", "bf-256", "bf-512", "system1", "system2",
                  "scale-rating", "scale-attempt", "cascade-attempt", "cascade-compiled")
RUNS = {  # run name: (folder, {entry there: recorded entry})
    "engine-throughput/new": (RESULTS / "engine-throughput" / "new",
                              {"bf-512": "bf-512", "scale-attempt": "scale-attempt"}),
    "engine-throughput/old": (RESULTS / "engine-throughput" / "old",
                              {"bf-512": "bf-512", "scale-attempt": "scale-attempt"}),
    "logprob-cost": (RESULTS / "logprob-cost" / "run", {"attempt-length": "scale-attempt"}),
    "greedy-50": (RESULTS / "greedy-50" / "run", {e: e for e in GREEDY_ENTRIES}),
}


def rows(entry_dir: Path) -> dict[str, dict[str, Any]]:
    path = entry_dir / "sample-0" / "results.jsonl"
    if not path.exists():
        return {}
    found: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if not row.get("error"):
            found[row["id"]] = row  # the last line of a problem wins, as in a resumed run
    return found


def compare(run: str, folder: Path, entries: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for entry, recorded_entry in entries.items():
        new, old = rows(folder / entry), rows(RECORDED / recorded_entry)
        ids = sorted(set(new) & set(old))
        if not ids:
            continue
        changed = [i for i in ids if new[i]["answer"] != old[i]["answer"]]
        text_changed = [i for i in ids if new[i]["solution"] != old[i]["solution"]]
        paired = paired_difference([old[i]["correct"] for i in ids], [new[i]["correct"] for i in ids])
        out.append({"run": run, "entry": entry, "recorded_entry": recorded_entry, "problems": len(ids),
                    "answers_changed": len(changed), "replies_changed": len(text_changed),
                    "accuracy_recorded": round(100 * sum(old[i]["correct"] for i in ids) / len(ids), 1),
                    "accuracy_now": round(100 * sum(new[i]["correct"] for i in ids) / len(ids), 1),
                    "paired_difference": round(paired.difference, 1),
                    "interval_95": [round(paired.low, 1), round(paired.high, 1)],
                    "gained": paired.gained, "lost": paired.lost, "p_value": round(paired.p_value, 4),
                    "changed": [{"id": i, "recorded": old[i]["answer"], "now": new[i]["answer"],
                                 "gold": old[i]["gold"]} for i in changed]})
    return out


def compare_sides(old_folder: Path, new_folder: Path, entries: list[str]) -> list[dict[str, Any]]:
    """The same commit's code aside, the engine alone: old side against new side of one sitting."""
    out = []
    for entry in entries:
        old, new = rows(old_folder / entry), rows(new_folder / entry)
        ids = sorted(set(new) & set(old))
        if not ids:
            continue
        changed = [i for i in ids if new[i]["answer"] != old[i]["answer"]]
        out.append({"run": "engine-throughput old vs new", "entry": entry, "recorded_entry": "(old side)",
                    "problems": len(ids), "answers_changed": len(changed),
                    "replies_changed": sum(new[i]["solution"] != old[i]["solution"] for i in ids),
                    "accuracy_recorded": round(100 * sum(old[i]["correct"] for i in ids) / len(ids), 1),
                    "accuracy_now": round(100 * sum(new[i]["correct"] for i in ids) / len(ids), 1),
                    "changed": [{"id": i, "recorded": old[i]["answer"], "now": new[i]["answer"],
                                 "gold": old[i]["gold"]} for i in changed]})
    return out


def main() -> int:
    report = [row for run, (folder, entries) in RUNS.items() for row in compare(run, folder, entries)]
    sides = RESULTS / "engine-throughput"
    report += compare_sides(sides / "old", sides / "new", ["bf-512", "scale-attempt"])
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    for row in report:
        print(f"{row['run']:24} {row['entry']:15} {row['problems']:3} problems: answers changed "
              f"{row['answers_changed']}, replies changed {row['replies_changed']}, accuracy "
              f"{row['accuracy_recorded']} -> {row['accuracy_now']}"
              + (f" (paired {row['paired_difference']:+} [{row['interval_95'][0]}, {row['interval_95'][1]}],"
                 f" +{row['gained']}/-{row['lost']}, p {row['p_value']})" if "paired_difference" in row else ""),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
