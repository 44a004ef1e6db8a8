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
from collections.abc import Sequence

__all__ = ["wilson_interval", "mean_interval", "frontier"]


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
