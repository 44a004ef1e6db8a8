"""Accuracy and the s1 test-time-scaling metrics (Muennighoff et al., 2025).

Over a set of runs at different thinking budgets, with f(a) = accuracy at thinking-token amount a:

- Control: share of runs whose thinking tokens stay within [low, high].
- Scaling: mean over pairs a < b of (f(b) - f(a)) / (log2 b - log2 a): accuracy points per
  doubling of thinking tokens. Measuring tokens in log2 reproduces the paper's numbers.
- Performance: the best accuracy reached.

Lists of floats in, one float out; accuracies and shares are in percent.

>>> round(scaling([1000, 2000, 3900, 7300], [13.3, 30.0, 43.3, 56.7]), 1)  # s1 AIME24 curve
15.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _non_empty(values: Sequence[float], name: str) -> list[float]:
    values = [float(v) for v in values]
    if not values:
        raise ValueError(f"`{name}` must not be empty")
    return values


def accuracy(corrects: Sequence[bool | float]) -> float:
    """Percent of runs that were correct.

    >>> accuracy([True, False, True, True])
    75.0
    """
    values = _non_empty([float(bool(c)) for c in corrects], "corrects")
    return 100.0 * sum(values) / len(values)


def control(thinking_tokens: Sequence[float], low: float, high: float) -> float:
    """Percent of runs whose thinking tokens lie within [low, high] (both ends included).

    >>> control([900, 1000, 2000, 4100], low=1000, high=4000)
    50.0
    """
    tokens = _non_empty(thinking_tokens, "thinking_tokens")
    if low > high:
        raise ValueError(f"`low={low}` must not exceed `high={high}`")
    return 100.0 * sum(low <= t <= high for t in tokens) / len(tokens)


def scaling(thinking_tokens: Sequence[float], accuracies: Sequence[float]) -> float:
    """Mean slope of accuracy per doubling of thinking tokens, over all pairs a < b.

    Pairs with equal token counts have no slope and are skipped; with no usable pair the
    result is 0.0.

    >>> scaling([1000, 2000, 4000], [10.0, 20.0, 30.0])
    10.0
    """
    tokens = _non_empty(thinking_tokens, "thinking_tokens")
    accs = _non_empty(accuracies, "accuracies")
    if len(tokens) != len(accs):
        raise ValueError(f"`thinking_tokens` ({len(tokens)} values) and `accuracies` ({len(accs)}) "
                         "must have equal lengths")
    bad = [t for t in tokens if not t > 0]
    if bad:
        raise ValueError(f"`thinking_tokens` must be positive (log2 is taken); got {bad[0]}")
    points = sorted(zip(tokens, accs, strict=True))
    slopes = [(fb - fa) / (math.log2(b) - math.log2(a))
              for i, (a, fa) in enumerate(points) for b, fb in points[i + 1:] if b > a]
    return sum(slopes) / len(slopes) if slopes else 0.0


def performance(accuracies: Sequence[float]) -> float:
    """The best accuracy over all budgets.

    >>> performance([13.3, 30.0, 56.7, 43.3])
    56.7
    """
    return max(_non_empty(accuracies, "accuracies"))
