"""optimize.calibration.metrics and .plot: AUROC, its bootstrap interval and gain recovery, checked by hand."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from optimize.calibration.metrics import (
    DEFAULT_FRACTIONS,
    GainPoint,
    _weighted_auroc,
    auroc,
    auroc_interval,
    gain_at,
    gain_recovery,
)
from optimize.calibration.plot import plot_gain_curves

F, T = False, True


def test_auroc_counts_ties_half() -> None:
    # Pairs (positive, negative): (0.5, 0.1) win, (0.5, 0.5) tie, (0.9, 0.1) win, (0.9, 0.5) win -> 3.5 / 4.
    assert auroc([0.1, 0.5, 0.5, 0.9], [F, T, F, T]) == 0.875
    assert auroc([0.9, 0.1], [F, T]) == 0.0
    assert auroc([0.3] * 6, [T, F, F, T, F, F]) == 0.5


def test_auroc_is_nan_with_one_class() -> None:
    assert math.isnan(auroc([0.1, 0.9], [T, T]))
    assert math.isnan(auroc([0.1, 0.9], [F, F]))


def test_auroc_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="equal length"):
        auroc([0.1, 0.2], [T])
    with pytest.raises(ValueError, match="row 1"):
        auroc([0.1, math.nan], [T, F])


def test_weighted_auroc_matches_sklearn_with_sample_weights() -> None:
    rng = np.random.default_rng(3)
    s = rng.integers(0, 5, size=40).astype(float)  # few distinct values: many ties
    y = rng.random(40) < 0.4
    w = rng.integers(0, 4, size=40).astype(float)
    _, rank = np.unique(s, return_inverse=True)
    assert _weighted_auroc(rank, y, w, int(rank.max()) + 1) == pytest.approx(roc_auc_score(y, s, sample_weight=w))


def noisy_sample(n: int = 200, seed: int = 1) -> tuple[list[float], list[bool]]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    return list(rng.normal(size=n) + y), [bool(v) for v in y]


def test_interval_is_deterministic_for_a_seed_and_contains_the_estimate() -> None:
    scores, labels = noisy_sample()
    first = auroc_interval(scores, labels, seed=7, resamples=500)
    assert first == auroc_interval(scores, labels, seed=7, resamples=500)
    assert first != auroc_interval(scores, labels, seed=8, resamples=500)
    low, high = first
    assert low < auroc(scores, labels) < high
    assert high - low < 0.3
    wider = auroc_interval(scores, labels, seed=7, resamples=500, level=0.99)
    assert wider[0] <= low and high <= wider[1]


def test_interval_is_nan_when_too_few_resamples_have_both_classes() -> None:
    assert all(math.isnan(v) for v in auroc_interval([0.1, 0.2], [T, T]))
    # One positive among 20: about 36% of resamples miss it, but 10 resamples are under the 100 needed.
    scores = [float(i) for i in range(20)]
    assert all(math.isnan(v) for v in auroc_interval(scores, [T] + [F] * 19, resamples=10))


def test_cluster_bootstrap_resamples_whole_groups() -> None:
    scores, labels = noisy_sample(n=60)
    copies = 5  # every problem repeated as 5 identical "steps": only the groups are independent
    grouped = auroc_interval([s for s in scores for _ in range(copies)], [b for b in labels for _ in range(copies)],
                             groups=[i for i in range(len(scores)) for _ in range(copies)], resamples=400)
    # Drawing whole groups is drawing the problems; weights scaled by 5 leave AUROC unchanged, so the same draws.
    assert grouped == pytest.approx(auroc_interval(scores, labels, resamples=400))
    naive = auroc_interval([s for s in scores for _ in range(copies)], [b for b in labels for _ in range(copies)],
                           resamples=400)
    assert naive[1] - naive[0] < grouped[1] - grouped[0]  # treating copies as independent understates the spread


def test_cluster_bootstrap_accepts_any_hashable_group_keys() -> None:
    scores, labels = noisy_sample(n=40)
    keyed = auroc_interval(scores, labels, groups=[("p", i // 2) for i in range(40)], resamples=300)
    numbered = auroc_interval(scores, labels, groups=[i // 2 for i in range(40)], resamples=300)
    assert keyed == numbered


def gains(points: list[GainPoint]) -> list[float]:
    return [p.gain for p in points]


def test_gain_recovery_by_hand() -> None:
    # Problems 0 and 2 are fixed by System 2; problem 1 is already right; problem 3 stays wrong.
    scores = [0.9, 0.1, 0.7, 0.3]
    kept, routed = [F, T, F, F], [T, T, T, F]
    points = gain_recovery(scores, kept, routed, [10, 10, 10, 10], [100, 100, 100, 100],
                           fractions=[0.0, 0.25, 0.5, 0.75, 1.0])
    assert gains(points) == [0.0, 0.5, 1.0, 1.0, 1.0]
    assert [p.accuracy for p in points] == [0.25, 0.5, 0.75, 0.75, 0.75]
    assert [p.tokens for p in points] == [10.0, 32.5, 55.0, 77.5, 100.0]
    assert [p.routed for p in points] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_partly_filled_tie_group_is_routed_by_expectation() -> None:
    # Top group: problems 0-2 tied at 0.8, only problem 0 gains. With k = 1, each is routed with weight 1/3.
    scores = [0.8, 0.8, 0.8, 0.2]
    kept, routed = [F, T, T, F], [T, T, T, T]
    point, = gain_recovery(scores, kept, routed, [0] * 4, [3, 3, 3, 3], fractions=[0.25])
    assert point.accuracy == pytest.approx(0.5 + 1 / 3 * 0.25)  # base 2/4, plus 1/3 of problem 0's 1/4
    assert point.gain == pytest.approx((1 / 3 * 0.25) / 0.5)
    assert point.tokens == pytest.approx(0.75)  # one expected routed problem at 3 tokens, over 4
    reordered = gain_recovery(scores[::-1], kept[::-1], routed[::-1], [0] * 4, [3] * 4, fractions=[0.25])
    assert reordered[0] == point  # ties never depend on input order


def test_fractional_k_gives_the_boundary_problem_a_partial_weight() -> None:
    # n = 3, r = 0.5 -> k = 1.5: the hardest is routed, the next half-way.
    point, = gain_recovery([0.9, 0.5, 0.1], [F, F, F], [T, T, T], [0, 0, 0], [6, 6, 6], fractions=[0.5])
    assert point.routed == pytest.approx(0.5)
    assert point.accuracy == pytest.approx(1.5 / 3)
    assert point.gain == pytest.approx(0.5)
    assert point.tokens == pytest.approx(3.0)


def test_constant_score_gives_the_diagonal() -> None:
    rng = random.Random(0)
    n = 37  # r * n is rarely an integer here
    kept = [rng.random() < 0.4 for _ in range(n)]
    routed = [rng.random() < 0.8 for _ in range(n)]
    points = gain_recovery([0.5] * n, kept, routed, [1.0] * n, [5.0] * n)
    assert [p.fraction for p in points] == list(DEFAULT_FRACTIONS) and len(points) == 21
    assert gains(points) == pytest.approx(list(DEFAULT_FRACTIONS))


def test_gain_is_nan_when_system_2_adds_nothing() -> None:
    points = gain_recovery([0.1, 0.9], [T, F], [F, T], [1, 1], [2, 2], fractions=[0.0, 0.5, 1.0])
    assert all(math.isnan(g) for g in gains(points))
    # All-System-2 gains nothing overall, yet routing the right half helps: accuracy still shows it.
    assert [p.accuracy for p in points] == [0.5, 1.0, 0.5]


def test_gain_recovery_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="equal length"):
        gain_recovery([0.1], [T, F], [T, F], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="fractions"):
        gain_recovery([0.1], [T], [T], [1], [1], fractions=[1.5])


def test_gain_at_interpolates_linearly() -> None:
    points = [GainPoint(1.0, 1.0, 0.9, 1.0, 9.0), GainPoint(0.0, 0.0, 0.5, 0.0, 1.0),
              GainPoint(0.5, 0.5, 0.8, 0.6, 5.0)]
    assert gain_at(points, 0.5) == 0.6
    assert gain_at(points, 0.25) == pytest.approx(0.3)
    assert gain_at(points, 0.75) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="outside"):
        gain_at(points[1:], 0.9)


def test_plot_writes_a_png_and_skips_curves_without_gain(tmp_path: Path) -> None:
    good = gain_recovery([0.9, 0.1, 0.7, 0.3], [F, T, F, F], [T, T, T, F], [1] * 4, [5] * 4)
    flat = gain_recovery([0.1, 0.9], [T, F], [F, T], [1, 1], [2, 2])
    path = plot_gain_curves({"rating": good, "no-gain": flat}, tmp_path / "plots" / "gain.png", title="test")
    assert path == tmp_path / "plots" / "gain.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
