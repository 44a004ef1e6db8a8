"""Budget sweeps: s1 budget forcing at several thinking budgets, scored with s1's metrics.

The ``bf`` method runs once per budget (System 2's ``thinking_budget`` overridden), each run with
its own resumable results file ``<run_dir>/<name>-budget<B>/results.jsonl``. Then, in percent:

- Control: share of runs whose thinking tokens stay within [0, budget] of their own budget,
  over all budgets' runs (failed runs have no complete thinking and are left out);
- Scaling: accuracy points per doubling of mean thinking tokens, over pairs of budgets;
- Performance: the best accuracy over the budgets.

A PNG of accuracy against mean thinking tokens (log2 axis) is written beside the runs.

Example:
    >>> report = sweep_budgets(config, examples, [128, 256, 512], run_dir="runs/demo")  # doctest: +SKIP
    >>> report.control, report.plot_path  # doctest: +SKIP
    (100.0, PosixPath('runs/demo/bf-scaling.png'))
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data.metrics import control, performance, scaling
from optimize.evaluation import evaluate as evaluation
from optimize.evaluation.plots import plot_scaling

if TYPE_CHECKING:
    import dspy

    from program.config import ProgramConfig

__all__ = ["BudgetPoint", "SweepReport", "budget_config", "sweep_budgets", "print_sweep"]


@dataclass(frozen=True)
class BudgetPoint:
    """One budget's run: accuracy and control in percent; thinking measured over the ``measured``
    problems that finished without error (of ``n``)."""

    budget: int
    n: int
    measured: int
    accuracy: float
    mean_thinking_tokens: float
    control: float | None
    results_path: Path


@dataclass(frozen=True)
class SweepReport:
    """The s1 metrics over a sweep (percent; ``scaling`` in points per doubling, None if undefined)."""

    points: list[BudgetPoint]
    control: float | None
    scaling: float | None
    performance: float
    plot_path: Path
    report_path: Path

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))


def budget_config(config: ProgramConfig, budget: int) -> ProgramConfig:
    """``config`` as the ``bf`` method with System 2's thinking budget set to ``budget``.

    Example:
        >>> from program.config import ProgramConfig
        >>> budget_config(ProgramConfig(), 256).lm.system2.thinking_budget
        256
    """
    system2 = replace(config.lm.system2, thinking_budget=budget)
    return replace(config, method="bf", lm=replace(config.lm, system2=system2))


def sweep_budgets(config: ProgramConfig, examples: Sequence[dspy.Example], budgets: Sequence[int], *,
                  run_dir: str | Path, name: str = "bf", build: Callable[[ProgramConfig], Any] | None = None,
                  **evaluate_options: Any) -> SweepReport:
    """Evaluate the ``bf`` method at each budget and score the sweep with s1's metrics.

    Args:
        config: the base program config (its method is replaced by ``bf``).
        budgets: positive thinking-token caps, e.g. ``[128, 256, 512]``.
        run_dir: where the per-budget result directories, the plot and ``<name>-sweep.json`` go.
        build: config -> program; default ``optimize.evaluation.evaluate.build_program``.
        evaluate_options: passed to ``optimize.evaluation.evaluate.evaluate`` (``workers``, ``progress``, ...).
    """
    bad = [b for b in budgets if isinstance(b, bool) or not isinstance(b, int) or b <= 0]
    if not budgets or bad:
        raise ValueError(f"`budgets={list(budgets)!r}` must be a non-empty list of positive token counts.")
    run_dir = Path(run_dir)
    points = []
    for budget in sorted(set(budgets)):
        budget_cfg = budget_config(config, budget)
        builder = build or evaluation.build_program  # looked up now, so a swapped builder is honoured
        report = evaluation.evaluate(lambda cfg=budget_cfg, make=builder: make(cfg), examples,
                                     results_path=run_dir / f"{name}-budget{budget}" / "results.jsonl",
                                     config=budget_cfg, description=f"{name} budget {budget}", **evaluate_options)
        thinking = [r.totals.get("thinking_tokens", 0) for r in report.results if not r.failed]
        points.append(BudgetPoint(
            budget=budget, n=report.summary.n, measured=len(thinking), accuracy=report.summary.accuracy,
            mean_thinking_tokens=sum(thinking) / len(thinking) if thinking else 0.0,
            control=control(thinking, 0, budget) if thinking else None, results_path=report.results_path))
    return _score(points, run_dir, name)


def _score(points: list[BudgetPoint], run_dir: Path, name: str) -> SweepReport:
    runs = sum(p.measured for p in points)
    # Pooled over all runs, so a budget with more finished runs weighs more.
    pooled = sum((p.control or 0.0) * p.measured for p in points) / runs if runs else None
    curve = [p for p in points if p.mean_thinking_tokens > 0]  # log2 needs positive token counts
    report = SweepReport(
        points=points,
        control=pooled,
        scaling=scaling([p.mean_thinking_tokens for p in curve], [p.accuracy for p in curve]) if curve else None,
        performance=performance([p.accuracy for p in points]),
        plot_path=plot_scaling([(p.budget, p.mean_thinking_tokens, p.accuracy) for p in points],
                               run_dir / f"{name}-scaling.png", title=f"{name}: accuracy vs thinking tokens"),
        report_path=run_dir / f"{name}-sweep.json",
    )
    report.report_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return report


def print_sweep(report: SweepReport, *, console: Any = None) -> None:
    """Print the per-budget table and the s1 metrics (rich)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="Budget sweep (s1 budget forcing)")
    for column in ("budget", "n", "accuracy", "mean thinking tokens", "control"):
        table.add_column(column, justify="right")
    for p in report.points:
        table.add_row(str(p.budget), str(p.n), f"{p.accuracy:.1f}%", f"{p.mean_thinking_tokens:,.1f}",
                      "-" if p.control is None else f"{p.control:.0f}%")
    console.print(table)
    console.print(f"Control: {_pct(report.control)}   Scaling: "
                  f"{'-' if report.scaling is None else f'{report.scaling:+.1f} points per doubling'}   "
                  f"Performance: {report.performance:.1f}%")
    console.print(f"Plot: {report.plot_path}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"
