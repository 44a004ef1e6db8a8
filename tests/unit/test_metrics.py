"""Accuracy and the s1 Control / Scaling / Performance metrics."""

from __future__ import annotations

import pytest

from data import accuracy, control, performance, scaling

# s1-32B with budget forcing on AIME24 (METHODS.md section 2): thinking tokens -> accuracy.
S1_TOKENS = [1000, 2000, 3900, 7300]
S1_ACCURACY = [13.3, 30.0, 43.3, 56.7]


def test_s1_curve_reproduces_the_paper() -> None:
    assert scaling(S1_TOKENS, S1_ACCURACY) == pytest.approx(15.0, abs=0.1)  # paper: Scaling 15
    assert performance(S1_ACCURACY) == 56.7  # paper: Performance 56.7
    assert control(S1_TOKENS, low=1000, high=8000) == 100.0  # paper: Control 100%


def test_scaling_is_points_per_doubling() -> None:
    assert scaling([1000, 2000], [10.0, 20.0]) == pytest.approx(10.0)
    assert scaling([1000, 4000], [10.0, 20.0]) == pytest.approx(5.0)  # two doublings
    assert scaling([2000, 1000], [20.0, 10.0]) == pytest.approx(10.0)  # input order is irrelevant
    assert scaling([1000, 2000], [40.0, 30.0]) == pytest.approx(-10.0)  # worse with more tokens


def test_scaling_skips_pairs_with_equal_tokens() -> None:
    # the (1000, 1000) pair has no slope; the two remaining pairs both have slope 10
    assert scaling([1000, 1000, 2000], [10.0, 10.0, 20.0]) == pytest.approx(10.0)
    assert scaling([1000], [50.0]) == 0.0
    assert scaling([500, 500], [10.0, 90.0]) == 0.0


def test_control_bounds_are_inclusive() -> None:
    assert control([1000, 4000], low=1000, high=4000) == 100.0
    assert control([999.9, 4000.1, 2000, 3000], low=1000, high=4000) == 50.0
    assert control([5000], low=0, high=4096) == 0.0


def test_accuracy_in_percent() -> None:
    assert accuracy([True, True, False, False]) == 50.0
    assert accuracy([1, 0, 0]) == pytest.approx(100 / 3)
    assert accuracy([False]) == 0.0


@pytest.mark.parametrize(("call", "argument"), [
    (lambda: accuracy([]), "corrects"),
    (lambda: control([], 0, 1), "thinking_tokens"),
    (lambda: control([1.0], 5, 1), "low"),
    (lambda: scaling([1000, 2000], [1.0]), "accuracies"),
    (lambda: scaling([], []), "thinking_tokens"),
    (lambda: scaling([0, 1000], [1.0, 2.0]), "thinking_tokens"),
    (lambda: scaling([-5, 1000], [1.0, 2.0]), "positive"),
    (lambda: performance([]), "accuracies"),
])
def test_bad_inputs_name_the_argument(call, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        call()
