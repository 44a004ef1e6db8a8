"""Where each entry's server time goes, from the per-problem results of the comparison.

For every entry: LLM calls per problem, prompt tokens per problem (evaluated by the server vs reused
from its cached prefix), and the server's own prompt-evaluation and generation seconds per problem.
Cache hits keep the numbers of the call that filled them, so warm and cold runs read the same.

    cd experiments/results/compare-gsm8k
    ../../../.venv/bin/python time_split.py [N] > time-split-first30.txt
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from optimize.compare import load_compare
from optimize.evaluation.results import config_fingerprint

HERE = Path(__file__).parent
CONFIG = HERE.parents[2] / "experiments" / "local" / "compare-gsm8k.yaml"


def rows(entry: str, fingerprint: str, limit: int) -> list[dict]:
    """The entry's latest result per problem under this config, for the first ``limit`` problem ids."""
    latest: dict[str, dict] = {}
    for line in (HERE / entry / "sample-0" / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("fingerprint") == fingerprint:
            latest[row["id"]] = row
    return [latest[i] for i in sorted(latest)[:limit]]


def main() -> None:
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    print(f"first {limit} problems; per problem: calls, prompt tokens (evaluated + reused from the server's prefix "
          "cache), server seconds (prompt evaluation + generation)")
    print(f"{'entry':<18}{'n':>4}{'calls':>7}{'prompt':>8}{'evaluated':>10}{'reused':>8}{'prompt s':>10}"
          f"{'gen s':>8}{'prompt share':>14}")
    for entry in load_compare(CONFIG).entries:
        if not (HERE / entry.name).is_dir():
            continue
        fingerprint = _fingerprint(entry)
        done = rows(entry.name, fingerprint, limit)
        if not done:
            continue
        calls = [c for r in done for c in r["calls"]]
        n = len(done)
        prompt = sum(c["prompt_tokens"] for c in calls) / n
        reused = sum(c.get("prompt_reused") or 0 for c in calls) / n
        p_s = sum(c.get("prompt_seconds") or 0 for c in calls) / n
        g_s = sum(c.get("generation_seconds") or 0 for c in calls) / n
        share = p_s / (p_s + g_s) if p_s + g_s else 0.0
        print(f"{entry.name:<18}{n:>4}{len(calls) / n:>7.1f}{prompt:>8.0f}{prompt - reused:>10.0f}{reused:>8.0f}"
              f"{p_s:>10.1f}{g_s:>8.1f}{100 * share:>13.0f}%")


def _fingerprint(entry: object) -> str:
    from optimize.compare.run import _program_source

    _, saved = _program_source(entry, lambda config: None)  # type: ignore[arg-type]
    return saved or config_fingerprint(entry.program)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
