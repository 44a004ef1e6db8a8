"""What a run cost and how well it did: one summary over its per-problem results.

Tokens are reported two ways (see ``program.ledger``): the true cost of the method (every call,
cache hits included, identical on a warm or cold cache) and what this run actually paid (cache
misses only). Failed problems (server or model errors) count as wrong in ``accuracy`` and their
partial calls count as cost; ``accuracy_answered`` is over the answered problems only, and the
printed table shows that one, marked incomplete, when any problem failed.

Example:
    >>> from optimize.evaluation.results import ProblemResult
    >>> rows = [ProblemResult("a", correct=True, totals={"total_tokens": 30}),
    ...         ProblemResult("b", error="ServerError: down", totals={"total_tokens": 10})]
    >>> s = summarize(rows)
    >>> (s.n, s.accuracy, s.n_failed, s.mean_tokens, s.n_answered, s.accuracy_answered, s.complete)
    (2, 50.0, 1, 20.0, 1, 100.0, False)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.metrics import accuracy
from optimize.evaluation.results import ProblemResult
from optimize.evaluation.traces import steps_of

__all__ = ["Summary", "summarize", "print_summary", "write_summary", "TOKEN_KINDS"]

TOKEN_KINDS = ("prompt_tokens", "completion_tokens", "thinking_tokens", "answer_tokens")
# Where the time goes, per stage, where the server reports it (``program.ledger``): prompt tokens
# evaluated vs reused from a cached prefix, prompt-evaluation and generation seconds.
SERVER_WORK = ("prompt_evaluated", "prompt_reused", "prompt_seconds", "generation_seconds", "timed_calls",
               "reuse_reported_calls")
# Shown where no call of a stage said how many prompt tokens it reused: "not reported" is never 0.
REUSE_HINT = ("reused n/a: the server did not report cached prompt tokens; start vLLM with "
              "--enable-prompt-tokens-details or SGLang with --enable-cache-report (docs/SERVERS.md)")


@dataclass(frozen=True)
class Summary:
    """Accuracy, cost and time of one run.

    ``accuracy`` and ``system2_share`` are in percent (as in ``data.metrics``). ``accuracy``
    counts failed problems as wrong; ``accuracy_answered`` is over the ``n_answered`` problems
    that got an answer (None when none did). Means are per problem over all ``n`` problems.
    ``system2_share`` is the share of plan steps that ran in System 2 (None when no trace had
    steps). ``wall_seconds`` sums the problems' own wall times; ``run_seconds`` is the elapsed
    time of the run that produced the summary, and ``n_resumed`` how many of its problems it took
    from an earlier run of the same configuration instead of solving them, so a resumed run's
    ``run_seconds`` covers only the other ``n - n_resumed`` (both None when summarising a file).
    """

    n: int
    n_correct: int
    n_failed: int
    accuracy: float
    mean_tokens: float
    mean_tokens_by_kind: dict[str, float]
    mean_tokens_by_stage: dict[str, dict[str, float]]
    total_tokens: int
    spent_tokens: int
    system2_share: float | None
    steps: int
    wall_seconds: float
    llm_seconds: float
    run_seconds: float | None = None
    grader_version: str | None = None
    fingerprint: str | None = None
    failures: dict[str, int] = field(default_factory=dict)
    n_answered: int = 0
    accuracy_answered: float | None = None
    n_resumed: int | None = None

    @property
    def complete(self) -> bool:
        """True when every problem was answered: only then is ``accuracy`` a result."""
        return self.n_failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "complete": self.complete}


def summarize(results: Sequence[ProblemResult], *, run_seconds: float | None = None,
              grader_version: str | None = None, n_resumed: int | None = None) -> Summary:
    """Summarise per-problem results (one per problem; see ``optimize.evaluation.results.load_results``)."""
    n = len(results)
    per = 1.0 / n if n else 0.0
    by_kind = {kind: per * sum(r.totals.get(kind, 0) for r in results) for kind in TOKEN_KINDS}
    by_stage: dict[str, dict[str, float]] = {}
    for result in results:
        for name, totals in result.stages.items():
            sums = by_stage.setdefault(name, dict.fromkeys((*TOKEN_KINDS, "total_tokens", "calls", *SERVER_WORK), 0.0))
            for key in sums:
                sums[key] += per * totals.get(key, 0)
    modes = [step.get("mode") for r in results for step in steps_of(r.trace)]
    failures: dict[str, int] = {}
    for result in results:
        if result.failed:
            failures[result.error_type or "error"] = failures.get(result.error_type or "error", 0) + 1
    answered = [r for r in results if not r.failed]
    versions = {r.grader_version for r in results if r.grader_version}
    fingerprints = {r.fingerprint for r in results if r.fingerprint}
    return Summary(
        n=n,
        n_correct=sum(1 for r in results if r.correct),
        n_failed=sum(failures.values()),
        accuracy=accuracy([r.correct for r in results]) if results else 0.0,
        mean_tokens=per * sum(r.totals.get("total_tokens", 0) for r in results),
        mean_tokens_by_kind=by_kind,
        mean_tokens_by_stage=by_stage,
        total_tokens=int(sum(r.totals.get("total_tokens", 0) for r in results)),
        spent_tokens=int(sum(r.spent.get("total_tokens", 0) for r in results)),
        system2_share=(100.0 * modes.count("system2") / len(modes)) if modes else None,
        steps=len(modes),
        wall_seconds=round(sum(r.wall_seconds for r in results), 3),
        llm_seconds=round(sum(r.llm_seconds for r in results), 3),
        run_seconds=None if run_seconds is None else round(run_seconds, 3),
        grader_version=grader_version or (", ".join(sorted(versions)) if versions else None),
        fingerprint=", ".join(sorted(fingerprints)) if fingerprints else None,
        failures=failures,
        n_answered=len(answered),
        accuracy_answered=accuracy([r.correct for r in answered]) if answered else None,
        n_resumed=n_resumed,
    )


def write_summary(summary: Summary, path: str | Path) -> Path:
    """Write ``summary`` as JSON (``summary.json`` beside the results, by convention)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


def print_summary(summary: Summary, *, title: str = "Summary", console: Any = None) -> None:
    """Print ``summary`` as rich tables: the headline numbers, then mean tokens per stage."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=title, show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    rows = [
        *_accuracy_rows(summary),
        ("failed", f"{summary.n_failed}" + (f" ({_failure_text(summary.failures)})" if summary.failures else "")),
        ("mean tokens / problem", f"{summary.mean_tokens:,.0f}"),
        *((f"  {kind.removesuffix('_tokens')}", f"{value:,.0f}")
          for kind, value in summary.mean_tokens_by_kind.items()),
        ("steps in System 2", "-" if summary.system2_share is None
         else f"{summary.system2_share:.0f}% of {summary.steps}"),
        ("tokens: true cost (all calls)", f"{summary.total_tokens:,}"),
        ("tokens: spent (cache misses)", f"{summary.spent_tokens:,}"),
        ("wall time (sum over problems)", f"{summary.wall_seconds:,.1f} s"),
        ("time inside LLM calls", f"{summary.llm_seconds:,.1f} s"),
    ]
    if summary.run_seconds is not None:
        resumed = f" ({summary.n_resumed} problems resumed, not solved again)" if summary.n_resumed else ""
        rows.append(("elapsed", f"{summary.run_seconds:,.1f} s{resumed}"))
    rows.append(("grader", summary.grader_version or "-"))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if summary.mean_tokens_by_stage:
        stages = Table(title="Mean tokens per problem, by stage")
        for column in ("stage", "calls", "prompt", "completion", "thinking", "answer"):
            stages.add_column(column, justify="left" if column == "stage" else "right")
        timed = any(sums.get("timed_calls") or sums.get("prompt_reused")
                    for sums in summary.mean_tokens_by_stage.values())
        if timed:  # the server said what it reused and how long each part took
            for column in ("evaluated", "reused", "prompt s", "gen s"):
                stages.add_column(column, justify="right")
        unreported = False
        for name, sums in summary.mean_tokens_by_stage.items():
            reported = bool(sums.get("reuse_reported_calls"))
            unreported = unreported or not reported
            reused = f"{sums.get('prompt_reused', 0):,.0f}" if reported else "n/a"
            work = [f"{sums.get('prompt_evaluated', 0):,.0f}", reused,
                    f"{sums.get('prompt_seconds', 0):.1f}", f"{sums.get('generation_seconds', 0):.1f}"]
            work = work if timed else []
            stages.add_row(name, f"{sums['calls']:.1f}", *(f"{sums[k]:,.0f}" for k in TOKEN_KINDS), *work)
        console.print(stages)
        if unreported:
            console.print(REUSE_HINT)


def _accuracy_rows(summary: Summary) -> list[tuple[str, str]]:
    """The accuracy as a result only when every problem was answered; else over the answered ones, marked."""
    if summary.complete:
        return [("accuracy", f"{summary.accuracy:.1f}% ({summary.n_correct}/{summary.n})")]
    answered = "-" if summary.accuracy_answered is None else f"{summary.accuracy_answered:.1f}%"
    return [("accuracy", f"incomplete: {summary.n_failed} of {summary.n} problems failed"),
            ("accuracy over answered", f"{answered} ({summary.n_correct}/{summary.n_answered})")]


def _failure_text(failures: dict[str, int]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in sorted(failures.items()))
