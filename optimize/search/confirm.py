"""Held-out confirmation of a search's choice: a slice nobody chose anything on, and the answer line.

A front or a choice made on 20 dev problems is noisy, so after every search the chosen point
(budget form) or up to ``search.confirm`` front points (front form) are evaluated again on a
held-out slice of the same train pool (``heldout_slice``): the next problems of the dev slice's
seeded shuffle, skipping the dev ids and every id recorded under ``search.recorded`` (saved
programs' slices and calibration labels, ``optimize.compiling.gold.recorded_ids``; in this repo
GSM8K train positions 0-149 of the seed-0 shuffle) and under the program the search started from.

Each confirmed point stands beside the best uniform method (``UNIFORM``: CoT or budget forcing)
of the search at no more dev tokens, evaluated on the same held-out problems: the paired
difference with its 95 % interval (``optimize.compare.stats.paired_difference``). The summary
ends with one plain line (``answer_line``) and the winner is written as a config file
(``winner.yaml``) that ``scale eval/compare/run --config`` accept.

Example:
    >>> line = Confirmed("trial-3", "bf, thinking 512", 50.0, 327.0, 53.0, (41.0, 65.0), 320.0, 100, "s", {})
    >>> answer_line(line, budget=330)
    'at <= 330 tokens/problem: bf, thinking 512, held-out 53 % [41, 65] (320 tokens/problem, 100 problems)'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optimize.search.families import UNIFORM
from optimize.search.points import Point, describe

if TYPE_CHECKING:
    import dspy

    from optimize.experiment import ExperimentConfig
    from program.config import ProgramConfig

__all__ = ["Confirmed", "heldout_slice", "uniform_baseline", "confirm_points", "answer_line", "write_winner"]


@dataclass(frozen=True)
class Confirmed:
    """One point measured on dev and on the held-out slice, and against its uniform baseline."""

    point: str
    description: str
    dev_accuracy: float
    dev_tokens: float
    accuracy: float
    interval: tuple[float, float]  # Wilson 95 % on the held-out problems
    tokens: float  # mean per problem on the held-out problems, as the search counts them
    n: int
    slice: str
    versus: dict[str, Any] = field(default_factory=dict)  # baseline point, its scores, the paired difference
    correct: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def heldout_slice(config: ExperimentConfig, n: int, *, exclude: Sequence[str] = (),
                  recorded: Sequence[str | Path | None] = ()) -> tuple[list[dspy.Example], str]:
    """``n`` problems of the dev pool's seeded shuffle after the dev slice, none excluded; and its name.

    Skipped: the dev ids, ``exclude`` and every id recorded under the ``recorded`` folders. The
    name says the pool, seed, shuffle positions and how many ids were skipped.

    Raises:
        ValueError: the pool has fewer than ``n`` such problems.
    """
    from data import loading
    from optimize.compiling.gold import recorded_ids

    pool, dev_n = loading.parse_slice(config.data.dev)
    seed = config.data.seed or 0
    order = loading.load_benchmark(pool, seed=seed, data_dir=config.data.data_dir)
    skip = {str(e.id) for e in order[:dev_n]} | {str(i) for i in exclude}
    for root in recorded:
        skip |= recorded_ids(root)
    start = config.data.val_offset or dev_n
    chosen: list[dspy.Example] = []
    last = start
    for position in range(start, len(order)):
        if len(chosen) == n:
            break
        if str(order[position].id) not in skip:
            chosen.append(order[position])
            last = position
    if len(chosen) < n:
        raise ValueError(f"held-out slice: only {len(chosen)} problems of {pool} are left after the dev slice "
                         f"and {len(skip)} excluded ids; lower search.heldout (was {n}).")
    skipped = last + 1 - start - len(chosen)
    name = (f"{pool} seed {seed}, shuffle positions {start}-{last} ({len(chosen)} problems; {skipped} skipped as "
            f"dev or recorded ids)")
    return chosen, name


def uniform_baseline(points: Sequence[Point], chosen: Point) -> Point | None:
    """The most accurate uniform point (CoT, bf) of the search at no more dev tokens than ``chosen``.

    ``chosen`` itself is never its own baseline; None when the search measured no such point.
    """
    within = [p for p in points if p.method in UNIFORM and p.tokens <= chosen.tokens
              and (p.trial, p.tau) != (chosen.trial, chosen.tau)]
    return min(within, key=lambda p: (-p.accuracy, p.tokens, p.trial)) if within else None


def _measure(config: ProgramConfig, examples: Sequence[dspy.Example], *, path: Path, state: str, program_dir: Any,
             systems: Any, workers: int, progress: bool, token_objective: str) -> tuple[Any, float, dict[str, bool]]:
    from optimize.evaluation.evaluate import evaluate
    from optimize.search.objective import build_trial_program, objective_tokens, results_fingerprint

    program = build_trial_program(config, program_dir=program_dir, systems=systems)
    report = evaluate(program, examples, results_path=path, fingerprint=results_fingerprint(config, state),
                      workers=workers, progress=progress, description=f"held-out {path.parent.name}")
    correct = {str(r.id): bool(r.correct) for r in report.results}
    return report, objective_tokens(report.summary, token_objective), correct


def confirm_points(chosen: Sequence[Point], points: Sequence[Point], configs: dict[str, ProgramConfig],
                   examples: Sequence[dspy.Example], slice_name: str, *, run_dir: Path, state: str = "",
                   program_dir: Any = None, systems: Any = None, workers: int = 1, progress: bool = False,
                   token_objective: str = "completion", tracker: Any = None, parent_run_id: str | None = None
                   ) -> list[Confirmed]:
    """Evaluate each of ``chosen`` and its uniform baseline on ``examples`` (resumable per point).

    ``configs``: point name -> its program config, for ``chosen`` and every baseline candidate.
    Results live in ``<run_dir>/heldout/<point>/results.jsonl``; MLflow gets one child run of
    the study per confirmed point (``scale.kind: heldout``).
    """
    from optimize.compare.stats import paired_difference, wilson_interval

    measured: dict[str, tuple[Any, float, dict[str, bool]]] = {}

    def run(point: Point) -> tuple[Any, float, dict[str, bool]]:
        if point.name not in measured:
            measured[point.name] = _measure(configs[point.name], examples,
                                            path=run_dir / "heldout" / point.name / "results.jsonl", state=state,
                                            program_dir=program_dir, systems=systems, workers=workers,
                                            progress=progress, token_objective=token_objective)
        return measured[point.name]

    ids = [str(e.id) for e in examples]
    out = []
    for point in chosen:
        report, tokens, correct = run(point)
        right = sum(correct[i] for i in ids)
        low, high = wilson_interval(right, len(ids))
        versus: dict[str, Any] = {}
        baseline = uniform_baseline(points, point)
        if baseline is not None:
            _, base_tokens, base_correct = run(baseline)
            diff = paired_difference([base_correct[i] for i in ids], [correct[i] for i in ids])
            versus = {"point": baseline.name, "description": describe(baseline), "dev_accuracy": baseline.accuracy,
                      "dev_tokens": baseline.tokens, "accuracy": diff.before, "tokens": base_tokens,
                      "difference": diff.to_dict()}
        confirmed = Confirmed(point.name, describe(point), point.accuracy, point.tokens, 100.0 * right / len(ids),
                              (100.0 * low, 100.0 * high), tokens, len(ids), slice_name, versus, correct)
        out.append(confirmed)
        if tracker is not None and parent_run_id is not None:
            metrics = {"heldout_accuracy": confirmed.accuracy, "heldout_tokens": tokens,
                       "dev_accuracy": point.accuracy, "dev_tokens": point.tokens,
                       **({"versus_uniform_difference": versus["difference"]["difference"]} if versus else {})}
            tracker.child(parent_run_id, f"heldout-{point.name}", metrics=metrics,
                          params={"point": point.name, "slice": slice_name, "n": len(ids), **point.row()},
                          artifacts=[report.results_path, report.summary_path], tags={"scale.kind": "heldout"})
    return out


def answer_line(confirmed: Confirmed, budget: float | None = None) -> str:
    """The search's answer in one line: where, what, and how it did on held-out problems."""
    low, high = confirmed.interval
    where = f"at <= {budget:,.0f} tokens/problem" if budget is not None else "best on held-out"
    return (f"{where}: {confirmed.description}, held-out {confirmed.accuracy:.0f} % [{low:.0f}, {high:.0f}] "
            f"({confirmed.tokens:,.0f} tokens/problem, {confirmed.n} problems)")


def write_winner(config: ExperimentConfig, program: ProgramConfig, confirmed: Confirmed, path: Path) -> Path:
    """The winner (its tau included) as an experiment file; its scores as a comment line on top."""
    from dataclasses import replace

    from optimize.search.pareto import save_scored

    winner = replace(config, name=f"{config.name}-winner", program=program)
    note = (f"search winner {confirmed.point} ({confirmed.description}): dev {confirmed.dev_accuracy:.1f}% at "
            f"{confirmed.dev_tokens:,.0f} tokens/problem; held-out {confirmed.accuracy:.1f}% at "
            f"{confirmed.tokens:,.0f} on {confirmed.slice}")
    return save_scored(winner, path, note)
