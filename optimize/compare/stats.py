"""Intervals and the frontier of ``scale compare``.

- one sample: a Wilson 95 % interval on the accuracy (scipy's ``binomtest``);
- K samples: the mean accuracy over samples +- Student's t interval (the SCALE paper reports the
  mean of 8 samples);
- the Pareto frontier over (mean completion tokens, accuracy): an entry is on it when no other
  entry is at least as accurate for at most as many tokens, and strictly better in one.

Example:
    >>> [round(x, 3) for x in wilson_interval(15, 30)]
    [0.332, 0.668]
    >>> frontier([(100, 0.5), (200, 0.5), (300, 0.7)])
    [True, False, True]
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["wilson_interval", "mean_interval", "frontier", "versus_frontier", "PairedDifference",
           "paired_difference"]


def wilson_interval(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of ``correct / n`` (fractions, not percent)."""
    from scipy.stats import binomtest  # type: ignore[import-untyped]

    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"`correct={correct}` of `n={n}`: need 0 <= correct <= n and n > 0.")
    ci = binomtest(correct, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean of per-sample values with a Student's t interval.

    Example:
        >>> [round(v, 3) for v in mean_interval([0.5, 0.6, 0.7])]
        [0.6, 0.352, 0.848]
    """
    from scipy.stats import t

    if len(values) < 2:
        raise ValueError("a t interval needs at least two samples; use wilson_interval for one.")
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def frontier(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (tokens, accuracy) points: which are on the Pareto frontier (identical points both are)."""
    marks = []
    for tokens, acc in points:
        dominated = any(t <= tokens and a >= acc and (t < tokens or a > acc) for t, a in points)
        marks.append(not dominated)
    return marks


@dataclass(frozen=True)
class PairedDifference:
    """After minus before on the same problems, in accuracy points, with a paired bootstrap 95 %
    interval and McNemar's exact p-value (on the problems where the two disagree)."""

    n: int
    before: float
    after: float
    difference: float
    low: float
    high: float
    gained: int
    lost: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def versus_frontier(reference: Sequence[tuple[float, float]], point: tuple[float, float]
                    ) -> tuple[float | None, float | None]:
    """Where ``point`` (tokens, accuracy) stands against the frontier of ``reference`` points.

    Returns (points ahead, tokens needed): its accuracy minus the best reference accuracy at no
    more tokens (None when every reference point costs more), and the fewest tokens a reference
    point needs to be at least as accurate (None when none is).

    Example:
        >>> cot_and_bf = [(250, 5.0), (330, 50.0), (350, 35.0)]
        >>> versus_frontier(cot_and_bf, (400, 55.0)), versus_frontier(cot_and_bf, (800, 40.0))
        ((5.0, None), (-10.0, 330))
    """
    tokens, accuracy = point
    cheaper = [a for t, a in reference if t <= tokens]
    ahead = round(accuracy - max(cheaper), 6) if cheaper else None
    matching = [t for t, a in reference if a >= accuracy]
    return ahead, (min(matching) if matching else None)


def paired_difference(before: Sequence[bool], after: Sequence[bool], *, resamples: int = 5000, seed: int = 0,
                      level: float = 0.95) -> PairedDifference:
    """Compare two runs on the same problems (``before[i]`` and ``after[i]`` are problem i's outcome).

    Example:
        >>> d = paired_difference([False] * 10 + [True] * 10, [True] * 6 + [False] * 4 + [True] * 10)
        >>> d.difference, d.gained, d.lost, round(d.p_value, 4)
        (30.0, 6, 0, 0.0312)
    """
    from scipy.stats import binomtest

    if len(before) != len(after) or not before:
        raise ValueError(f"need the same problems before and after; got {len(before)} and {len(after)}.")
    n = len(before)
    diffs = [int(a) - int(b) for b, a in zip(before, after, strict=True)]
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    low = means[int((1 - level) / 2 * resamples)]
    high = means[min(resamples - 1, int((1 + level) / 2 * resamples))]
    gained, lost = diffs.count(1), diffs.count(-1)
    p_value = float(binomtest(gained, gained + lost).pvalue) if gained + lost else 1.0
    return PairedDifference(n, 100 * sum(before) / n, 100 * sum(after) / n, 100 * sum(diffs) / n, 100 * low,
                            100 * high, gained, lost, p_value)
