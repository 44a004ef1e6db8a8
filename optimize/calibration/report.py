"""What ``scale calibrate`` reports from the labelled problems: per source, how well its score predicts failure.

For every source: AUROC at problem level (a problem's score is its plan's highest step score; the
label is "the all-System-1 answer is wrong") and at step level (the label is "System 1's value
differs from System 2's in the same context"; for one-step plans, as in the cascade, the step IS
the problem and takes the problem's label), each with a bootstrap 95 % interval (steps resampled
by problem); and the gain-recovery curve G(r) with its tokens, computed from the labelled runs
without new calls. Tokens at r count System 1's attempt on every problem plus System 2's chain on
the routed ones (try, then escalate: what the ``attempt`` source pays; a rating source would pay
its rating call instead of the attempt on routed problems).

The ``learned`` source is scored out of fold (``cross_validated_scores``, grouped by problem), so
its row is not flattered by being scored on its own training data.

Example:
    >>> from optimize.calibration.labels import ProblemLabel, StepLabel
    >>> def one(id, s1_ok, score):
    ...     step = StepLabel(0, "s", "1", "1", not s1_ok, {"problem_words": 5.0}, {"attempt:length": score}, 10, 20)
    ...     return ProblemLabel(id, "p", "1", [step], "1", "1", s1_ok, True, 10, 20, 0, 1.0)
    >>> result = calibrate_report([one("a", True, 0.1), one("b", False, 0.9)], ["attempt:length"], resamples=0)
    >>> result.sources[0].problem_auroc, result.sources[0].gain_half
    (1.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from optimize.calibration.fit import cross_validated_scores
from optimize.calibration.labels import ProblemLabel
from optimize.calibration.metrics import GainPoint, auroc, auroc_interval, gain_at, gain_recovery
from program.scale.sources import FEATURES

__all__ = ["SourceResult", "CalibrationReport", "calibrate_report", "learned_rows", "format_table", "best_threshold"]


@dataclass(frozen=True)
class SourceResult:
    """One source's numbers."""

    name: str
    problem_auroc: float
    problem_interval: tuple[float, float]
    step_auroc: float
    step_interval: tuple[float, float]
    gain_half: float
    tokens_half: float
    curve: list[GainPoint] = field(default_factory=list)
    best_threshold: float = math.nan  # the tau with the best dev accuracy (fewest tokens among ties)
    best_accuracy: float = math.nan
    best_tokens: float = math.nan


@dataclass(frozen=True)
class CalibrationReport:
    """Everything the table, ``calibration.json`` and the plot show."""

    n_problems: int
    n_steps: int
    s1_accuracy: float
    s2_accuracy: float
    s1_tokens: float
    s2_tokens: float
    one_step_plans: bool
    learned_features: list[str]
    sources: list[SourceResult]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def learned_rows(labels: Sequence[ProblemLabel]) -> tuple[list[dict[str, float]], list[bool], list[str], list[str]]:
    """(rows, labels, groups, features): one row per step with every feature measured on all steps."""
    steps = [(p, s) for p in labels for s in p.steps]
    features = [f for f in FEATURES if steps and all(f in s.features for _, s in steps)]
    one_step = all(len(p.steps) == 1 for p in labels)
    rows = [{f: float(s.features[f]) for f in features} for _, s in steps]
    targets = [(not p.s1_correct) if one_step else s.differs for p, s in steps]
    return rows, targets, [p.id for p, _ in steps], features


def best_threshold(scores: Sequence[float], kept_correct: Sequence[bool], routed_correct: Sequence[bool],
                   kept_tokens: Sequence[float], routed_tokens: Sequence[float]) -> tuple[float, float, float]:
    """(tau, accuracy, mean tokens): the threshold with the best accuracy when a problem is routed iff its
    score > tau; among equally accurate ones the cheapest, then the highest tau. Candidates sit between
    the distinct scores (and at -1, which routes everything).

    Example:
        >>> best_threshold([0.2, 0.8], [True, False], [True, True], [10, 10], [30, 30])
        (0.5, 1.0, 20.0)
    """
    distinct = sorted(set(scores))
    candidates = [-1.0] + [(a + b) / 2 for a, b in zip(distinct, distinct[1:], strict=False)] + [1.0]
    n = len(scores)
    best: tuple[float, float, float] | None = None
    for tau in candidates:
        routed = [s > tau for s in scores]
        accuracy = sum(r_ok if r else k_ok for r, k_ok, r_ok in zip(routed, kept_correct, routed_correct,
                                                                     strict=True)) / n
        tokens = sum(rt if r else kt for r, kt, rt in zip(routed, kept_tokens, routed_tokens, strict=True)) / n
        if best is None or (accuracy, -tokens, tau) > (best[1], -best[2], best[0]):
            best = (round(tau, 6), accuracy, tokens)
    assert best is not None
    return best


def calibrate_report(labels: Sequence[ProblemLabel], sources: Sequence[str], *, resamples: int = 2000,
                     seed: int = 0) -> CalibrationReport:
    """Score every source on ``labels`` (see the module docstring)."""
    if not labels:
        raise ValueError("no labelled problems to report on")
    one_step = all(len(p.steps) == 1 for p in labels)
    step_scores: dict[str, list[float]] = {name: [] for name in sources if name != "learned"}
    for name in step_scores:
        for problem in labels:
            for step in problem.steps:
                step_scores[name].append(float(step.scores.get(name, math.nan)))
    features: list[str] = []
    if "learned" in sources:
        rows, targets, groups, features = learned_rows(labels)
        step_scores["learned"] = cross_validated_scores(rows, targets, features, groups=groups, seed=seed)
    step_labels = [(not p.s1_correct) if one_step else s.differs for p in labels for s in p.steps]
    step_groups = [p.id for p in labels for _ in p.steps]
    problem_labels = [not p.s1_correct for p in labels]
    results = []
    for name in sources:
        scores = step_scores[name]
        problem_scores, start = [], 0
        for problem in labels:
            problem_scores.append(max(scores[start:start + len(problem.steps)]))
            start += len(problem.steps)
        if any(math.isnan(s) for s in problem_scores):
            raise ValueError(f"source {name!r} was not measured on every problem; label again with it in --sources")
        curve = gain_recovery(problem_scores, [p.s1_correct for p in labels], [p.s2_correct for p in labels],
                              [p.s1_tokens for p in labels], [p.s1_tokens + p.s2_tokens for p in labels])
        interval = auroc_interval(problem_scores, problem_labels, resamples=resamples, seed=seed) if resamples else (
            math.nan, math.nan)
        step_interval = auroc_interval(scores, step_labels, resamples=resamples, seed=seed, groups=step_groups) if (
            resamples) else (math.nan, math.nan)
        half = min(curve, key=lambda p: abs(p.fraction - 0.5))
        tau, accuracy, tokens = best_threshold(problem_scores, [p.s1_correct for p in labels],
                                               [p.s2_correct for p in labels], [p.s1_tokens for p in labels],
                                               [p.s1_tokens + p.s2_tokens for p in labels])
        results.append(SourceResult(name, auroc(problem_scores, problem_labels), interval, auroc(scores, step_labels),
                                    step_interval, gain_at(curve, 0.5), half.tokens, curve, tau, accuracy, tokens))
    n = len(labels)
    return CalibrationReport(
        n_problems=n, n_steps=len(step_labels), s1_accuracy=sum(p.s1_correct for p in labels) / n,
        s2_accuracy=sum(p.s2_correct for p in labels) / n, s1_tokens=sum(p.s1_tokens for p in labels) / n,
        s2_tokens=sum(p.s2_tokens for p in labels) / n, one_step_plans=one_step, learned_features=features,
        sources=results)


def format_table(report: CalibrationReport) -> str:
    """The terminal table: one line per source."""
    def ci(interval: tuple[float, float]) -> str:
        return "" if any(math.isnan(v) for v in interval) else f" [{interval[0]:.2f}, {interval[1]:.2f}]"

    header = (f"{report.n_problems} problems, {report.n_steps} steps; all-System-1 accuracy "
              f"{report.s1_accuracy:.1%} ({report.s1_tokens:.0f} tokens), all-System-2 {report.s2_accuracy:.1%} "
              f"({report.s2_tokens:.0f} tokens)")
    lines = [header, "", f"{'source':<22}{'problem AUROC (95% CI)':<28}{'step AUROC (95% CI)':<28}"
                         f"{'G(0.5)':>8}{'tokens@0.5':>12}{'best tau':>10}{'accuracy':>10}{'tokens':>8}"]
    for s in report.sources:
        lines.append(f"{s.name:<22}{f'{s.problem_auroc:.3f}{ci(s.problem_interval)}':<28}"
                     f"{f'{s.step_auroc:.3f}{ci(s.step_interval)}':<28}{s.gain_half:>8.3f}{s.tokens_half:>12.0f}"
                     f"{s.best_threshold:>10.3f}{s.best_accuracy:>10.1%}{s.best_tokens:>8.0f}")
    lines.append("best tau: the dev accuracy's best threshold for routing a problem (score > tau); the learned "
                 "row's is out of fold")
    if report.one_step_plans:
        lines.append("(one-step plans: step level is problem level)")
    if report.s2_accuracy < report.s1_accuracy:
        # G(r) divides by the all-System-2 gain; a negative one flips its sign, so it no longer ranks sources.
        lines.append("all-System-2 is less accurate than all-System-1 here, so G(r) is the share of a loss: "
                     "read the accuracy and tokens columns instead")
    if report.learned_features:
        lines.append(f"learned (out of fold) on: {', '.join(report.learned_features)}")
    return "\n".join(lines)
