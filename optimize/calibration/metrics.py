"""How well a difficulty score predicts that System 1 fails: AUROC (with a bootstrap interval) and gain recovery.

Label ``True`` means "System 1 was wrong", the positive class: a good difficulty score is high for those.
``gain_recovery`` asks the routing question directly: send the hardest fraction ``r`` of problems to System 2,
and how much of the accuracy gain of sending all of them does that recover? Ties in the score are broken by
expectation over random order, so the curve never depends on how the input happened to be sorted.

Example:
    >>> auroc([0.1, 0.5, 0.5, 0.9], [False, True, False, True])
    0.875
    >>> points = gain_recovery([0.9, 0.1], kept_correct=[False, True], routed_correct=[True, True],
    ...                        kept_tokens=[10, 10], routed_tokens=[100, 100], fractions=[0.0, 0.5, 1.0])
    >>> [p.gain for p in points]
    [0.0, 1.0, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

__all__ = ["auroc", "auroc_interval", "GainPoint", "gain_recovery", "gain_at", "DEFAULT_FRACTIONS"]

DEFAULT_FRACTIONS: tuple[float, ...] = tuple(i / 20 for i in range(21))  # 0, 0.05, ..., 1.0
MIN_VALID_RESAMPLES = 100  # fewer two-class resamples than this and the percentiles mean little


def _arrays(scores: Sequence[float], labels: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"`scores` and `labels` must be flat and of equal length; got {s.shape} and {y.shape}.")
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        raise ValueError(f"`scores` must be finite; row {int(bad[0])} is {s[bad[0]]}.")
    return s, y


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve: the chance that a failed problem outscores a solved one (ties count half).

    Returns ``math.nan`` when only one class is present: with no failures (or no successes) there is
    nothing to rank, and nan keeps that visible in a table instead of raising mid-report.

    >>> auroc([0.3, 0.3, 0.3], [True, False, True]), auroc([0.2, 0.8], [True, True])
    (0.5, nan)
    """
    s, y = _arrays(scores, labels)
    if y.all() or not y.any():
        return math.nan
    return float(roc_auc_score(y, s))


def _weighted_auroc(rank: np.ndarray, y: np.ndarray, w: np.ndarray, n_ranks: int) -> float:
    """AUROC with row weights (Mann-Whitney on tied ranks): O(n), so 2000 resamples stay cheap."""
    neg = np.bincount(rank[~y], weights=w[~y], minlength=n_ranks)
    pos = np.bincount(rank[y], weights=w[y], minlength=n_ranks)
    below = np.cumsum(neg) - neg  # negative weight strictly below each distinct score
    return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def auroc_interval(scores: Sequence[float], labels: Sequence[bool], *, resamples: int = 2000, seed: int = 0,
                   level: float = 0.95, groups: Sequence[Hashable] | None = None) -> tuple[float, float]:
    """Bootstrap percentile interval for :func:`auroc`; ``(nan, nan)`` when it cannot be estimated.

    With ``groups`` (e.g. step rows keyed by problem), whole groups are resampled (cluster bootstrap):
    steps of one problem are not independent, and treating them so would give too narrow an interval.
    Resamples that hold one class only are skipped; with fewer than 100 valid ones, ``(nan, nan)``.

    >>> low, high = auroc_interval([0.1, 0.4, 0.35, 0.8, 0.2, 0.9] * 5, [False, False, True, True] * 7 + [True] * 2)
    >>> 0.0 <= low <= high <= 1.0
    True
    """
    s, y = _arrays(scores, labels)
    if resamples < 1:
        raise ValueError(f"`resamples={resamples}` must be at least 1.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level={level}` must be strictly between 0 and 1.")
    if groups is None:
        group_of = np.arange(len(s))
    else:
        if len(groups) != len(s):
            raise ValueError(f"`groups` must have one entry per score; got {len(groups)} for {len(s)} scores.")
        index: dict[Hashable, int] = {}  # first-appearance order: group keys need not be sortable
        group_of = np.array([index.setdefault(g, len(index)) for g in groups], dtype=int)
    n_groups = int(group_of.max()) + 1 if len(s) else 0
    if n_groups == 0 or y.all() or not y.any():
        return math.nan, math.nan
    distinct, rank = np.unique(s, return_inverse=True)
    # Hand-written rather than scipy.stats.bootstrap: scipy resamples rows, not clusters, and cannot skip
    # one-class resamples (AUROC is undefined there). Each resample becomes row weights = how often the row's
    # group was drawn, so rows of one group always enter together.
    rng = np.random.default_rng(seed)
    values = []
    for draw in rng.integers(0, n_groups, size=(resamples, n_groups)):
        w = np.bincount(draw, minlength=n_groups)[group_of].astype(float)
        if w[y].sum() > 0 and w[~y].sum() > 0:
            values.append(_weighted_auroc(rank, y, w, len(distinct)))
    if len(values) < MIN_VALID_RESAMPLES:
        return math.nan, math.nan
    tail = (1.0 - level) / 2
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class GainPoint:
    """One point of the gain-recovery curve: route the hardest ``fraction`` of problems to System 2."""

    fraction: float  # r, as asked
    routed: float    # expected number of routed problems / n (= r)
    accuracy: float  # mean correctness at r
    gain: float      # G(r) = (accuracy(r) - accuracy(0)) / (accuracy(1) - accuracy(0)); nan with no gain
    tokens: float    # mean tokens per problem at r


def gain_recovery(scores: Sequence[float], kept_correct: Sequence[bool], routed_correct: Sequence[bool],
                  kept_tokens: Sequence[float], routed_tokens: Sequence[float], *,
                  fractions: Sequence[float] | None = None) -> list[GainPoint]:
    """G(r) at each fraction r (default 0, 0.05, ..., 1): the share of the all-System-2 gain recovered.

    The ``k = r * n`` routed slots go to the highest scores first. A tie group only partly filled (and the
    boundary problem when ``k`` is fractional) is routed with weight ``slots left / group size``, the
    expectation over random tie-breaking; so a constant (uninformative) score gives G(r) = r exactly.

    >>> points = gain_recovery([0.5] * 4, [False, False, True, True], [True] * 4, [1] * 4, [9] * 4,
    ...                        fractions=[0.25, 0.5])
    >>> [(p.gain, p.tokens) for p in points]
    [(0.25, 3.0), (0.5, 5.0)]
    """
    s = np.asarray(scores, dtype=float)
    columns = [np.asarray(c, dtype=float) for c in (kept_correct, routed_correct, kept_tokens, routed_tokens)]
    if s.ndim != 1 or not len(s) or any(c.shape != s.shape for c in columns):
        raise ValueError("`scores`, `kept_correct`, `routed_correct`, `kept_tokens` and `routed_tokens` must be "
                         f"non-empty and of equal length; got {[len(s)] + [len(c) for c in columns]}.")
    if not np.isfinite(s).all():
        raise ValueError(f"`scores` must be finite; row {int(np.flatnonzero(~np.isfinite(s))[0])} is not.")
    kept_ok, routed_ok, kept_tok, routed_tok = columns
    fractions = DEFAULT_FRACTIONS if fractions is None else tuple(fractions)
    if any(not 0.0 <= r <= 1.0 for r in fractions):
        raise ValueError(f"`fractions` must lie in [0, 1]; got {list(fractions)}.")
    n = len(s)
    _, group, size = np.unique(-s, return_inverse=True, return_counts=True)  # group 0 holds the highest score
    before = np.cumsum(size) - size  # slots taken by strictly harder groups
    base, full = math.fsum(kept_ok) / n, math.fsum(routed_ok) / n
    points = []
    for r in fractions:
        k = round(r * n, 9)  # 0.15 * 20 is 3.0000000000000004: don't give the next group a 4e-16 share
        weight = np.clip((k - before) / size, 0.0, 1.0)[group]  # per-row probability of being routed
        # fsum is correctly rounded, so the result is the same for any input order, to the last bit.
        accuracy = math.fsum(weight * routed_ok + (1 - weight) * kept_ok) / n
        tokens = math.fsum(weight * routed_tok + (1 - weight) * kept_tok) / n
        gain = (accuracy - base) / (full - base) if full != base else math.nan
        points.append(GainPoint(fraction=r, routed=float(weight.sum()) / n, accuracy=accuracy, gain=gain,
                                tokens=tokens))
    return points


def gain_at(points: Sequence[GainPoint], fraction: float) -> float:
    """G at ``fraction``, linearly interpolated between the nearest computed fractions.

    >>> gain_at([GainPoint(0.0, 0.0, 0.5, 0.0, 10.0), GainPoint(0.5, 0.5, 0.7, 0.8, 20.0)], 0.25)
    0.4
    """
    ordered = sorted(points, key=lambda p: p.fraction)
    if not ordered or not ordered[0].fraction <= fraction <= ordered[-1].fraction:
        span = f"[{ordered[0].fraction}, {ordered[-1].fraction}]" if ordered else "nothing (no points)"
        raise ValueError(f"`fraction={fraction}` is outside the computed fractions, which cover {span}.")
    return float(np.interp(fraction, [p.fraction for p in ordered], [p.gain for p in ordered]))
