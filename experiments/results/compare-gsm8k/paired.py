"""Paired differences on the same problems: each entry against the best CoT / budget-forcing entry.

    cd experiments/results/compare-gsm8k
    PYTHONPATH=. ../../../.venv/bin/python paired.py [N] [REFERENCE] > paired-first30.txt
"""

from __future__ import annotations

import sys

from time_split import CONFIG, _fingerprint, rows

from optimize.compare import load_compare
from optimize.compare.stats import paired_difference


def main() -> None:
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    reference = sys.argv[2] if len(sys.argv) > 2 else "bf-512"
    entries = {e.name: e for e in load_compare(CONFIG).entries}
    correct = {name: {r["id"]: bool(r["correct"]) for r in rows(name, _fingerprint(e), limit)}
               for name, e in entries.items()}
    base = correct[reference]
    print(f"first {limit} problems; each entry minus {reference} (accuracy points, paired bootstrap 95 % interval, "
          "problems gained / lost, McNemar p)")
    for name in entries:
        if name == reference or set(correct[name]) != set(base):
            continue
        ids = sorted(base)
        d = paired_difference([base[i] for i in ids], [correct[name][i] for i in ids]).to_dict()
        print(f"{name:<18}{d['difference']:+7.1f}  [{d['low']:+.1f}, {d['high']:+.1f}]  "
              f"+{d['gained']} / -{d['lost']}  p {d['p_value']:.3f}")


if __name__ == "__main__":
    main()
