"""A search's points: every finished trial, and every point of every exact curve, as (tokens, accuracy).

A plain trial is one point; a trial with an exact tau curve (``optimize.search.curve``) is one point
per interval of its curve, each with its own tau. The front shown to the user is built from all of
them (no other point at least as accurate with at most as many tokens, strictly better in one);
the budget form's choice is the most accurate point within the budget (fewest tokens on ties).
Both are built from completed trials only: a pruned trial never measured all the problems.

Example:
    >>> a, b = Point(0, "cot", None, 40.0, 300.0, {}), Point(1, "bf", None, 50.0, 330.0, {})
    >>> [p.trial for p in front([a, b, Point(2, "vote", None, 45.0, 900.0, {})])]
    [0, 1]
    >>> within_budget([a, b], 320).trial, within_budget([a, b], 100)
    (0, None)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optimize.compare.stats import frontier

if TYPE_CHECKING:
    import optuna

__all__ = ["Point", "study_points", "front", "within_budget", "describe"]


@dataclass(frozen=True)
class Point:
    """One configuration measured on the dev problems: its trial, method, tau (curve points) and values."""

    trial: int
    method: str
    tau: float | None
    accuracy: float
    tokens: float
    values: dict[str, Any]

    @property
    def name(self) -> str:
        """``trial-3``, or ``trial-3-tau-0.42`` for a curve point: a file name too."""
        return f"trial-{self.trial}" + (f"-tau-{self.tau:.4g}" if self.tau is not None else "")

    def row(self) -> dict[str, Any]:
        return {"trial": self.trial, "point": self.name, "method": self.method, **self.values,
                **({"threshold": self.tau} if self.tau is not None else {}),
                "accuracy": self.accuracy, "mean_tokens": self.tokens}


def study_points(study: optuna.Study) -> list[Point]:
    """The points of the study's completed trials (curve trials give every curve point)."""
    from optuna.trial import TrialState

    points = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        values = {k: v for k, v in attrs.get("values", trial.params).items() if k not in ("method", "threshold")}
        method = str(attrs.get("method", trial.params.get("method", "")))
        curve = attrs.get("curve")
        if curve:
            points += [Point(trial.number, method, float(p["low"]), float(p["accuracy"]), float(p["mean_tokens"]),
                             values) for p in curve]
        elif "accuracy" in attrs or (trial.values and len(trial.values) == 2):
            tau = attrs.get("values", trial.params).get("threshold")
            values = values | ({"threshold": tau} if tau is not None else {})
            accuracy = attrs.get("accuracy", trial.values[0] if trial.values else 0.0)
            tokens = attrs.get("objective_tokens", trial.values[1] if trial.values and len(trial.values) == 2
                               else attrs.get("mean_tokens", 0.0))
            points.append(Point(trial.number, method, None, float(accuracy), float(tokens), values))
    return points


def front(points: Sequence[Point]) -> list[Point]:
    """The Pareto-optimal points, fewest tokens first (one per (tokens, accuracy): the earliest trial)."""
    marks = frontier([(p.tokens, p.accuracy) for p in points])
    seen, out = set(), []
    for point in sorted((p for p, on in zip(points, marks, strict=True) if on),
                        key=lambda p: (p.tokens, -p.accuracy, p.trial, p.tau or 0.0)):
        if (point.tokens, point.accuracy) not in seen:
            seen.add((point.tokens, point.accuracy))
            out.append(point)
    return out


def within_budget(points: Sequence[Point], budget: float) -> Point | None:
    """The most accurate point at <= ``budget`` mean tokens (fewest tokens, then earliest); None if none is."""
    feasible = [p for p in points if p.tokens <= budget]
    return min(feasible, key=lambda p: (-p.accuracy, p.tokens, p.trial, p.tau or 0.0)) if feasible else None


_KNOB_WORDS = {"system1_max_tokens": "System 1 cap", "system2_max_tokens": "System 2 cap",
               "system2_thinking_budget": "thinking", "num_waits": "waits", "vote_samples": "samples",
               "vote_stop_rule": "stop", "vote_max_tokens": "sample cap", "difficulty_source": "source",
               "system2_kind": "System 2", "num_candidates": "k", "attempt_confidence": "confidence",
               "threshold": "tau"}


def describe(point: Point, shown: Sequence[str] | None = None) -> str:
    """A point in words, with the knobs its method reads (``shown``: these instead).

    Example:
        >>> describe(Point(3, "bf", None, 50.0, 330.0, {"system2_thinking_budget": 512, "num_waits": 0}))
        'bf, thinking 512, waits 0'
    """
    from optimize.search.families import FAMILY_KNOBS

    shown = FAMILY_KNOBS.get(point.method, ()) if shown is None else shown
    parts = [point.method]
    for key, value in {**point.values, **({"threshold": point.tau} if point.tau is not None else {})}.items():
        if key in shown:
            text = f"{value:.2f}" if isinstance(value, float) else str(value)
            parts.append(f"{_KNOB_WORDS.get(key, key)} {text}")
    return ", ".join(parts)
