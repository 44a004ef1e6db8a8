"""optimize.calibration.fit: the learned source reproduces scikit-learn, and is scored out of fold."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from optimize.calibration.fit import _splits, cross_validated_scores, fit_learned
from program.config import ConfigError
from program.scale.sources.learned_model import LearnedModel

FEATURES = ["attempt_length", "rating", "attempt_capped"]


def sample(n: int = 80, seed: int = 0, separation: float = 1.0) -> tuple[list[dict[str, float]], list[bool]]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.35
    rows = [{"attempt_length": float(rng.normal(300, 80) + 200 * separation * wrong),
             "rating": float(rng.random() * 0.5 + 0.5 * separation * wrong),
             "attempt_capped": 0.0,  # constant: its scale must become 1.0, not 0
             "step_words": 1.0}  # an extra value the model does not use
            for wrong in y]
    return rows, [bool(v) for v in y]


def test_fit_matches_sklearn_probabilities() -> None:
    rows, labels = sample()
    model = fit_learned(rows, labels, FEATURES, c=0.5)
    x = np.array([[row[f] for f in FEATURES] for row in rows])
    assert model.scale[2] == 1.0
    z = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    expected = LogisticRegression(C=0.5, max_iter=1000).fit(z, labels).predict_proba(z)[:, 1]
    assert [model.score(row) for row in rows] == pytest.approx(list(expected), abs=1e-9)


def test_json_round_trip_scores_identically() -> None:
    rows, labels = sample()
    model = fit_learned(rows, labels, FEATURES, fitted_on={"slice": "dev", "n": len(rows)})
    again = LearnedModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model
    assert [again.score(row) for row in rows] == [model.score(row) for row in rows]


def test_missing_feature_names_the_feature_and_row() -> None:
    rows, labels = sample(n=10)
    del rows[4]["rating"]
    with pytest.raises(ConfigError, match=r"row 4 .*'rating'"):
        fit_learned(rows, labels, FEATURES)
    with pytest.raises(ConfigError, match=r"row 4 .*'rating'"):
        cross_validated_scores(rows, labels, FEATURES)


def test_one_class_says_both_outcomes_are_needed() -> None:
    rows, _ = sample(n=12)
    with pytest.raises(ConfigError, match=r"of 12 problems, System 1 was wrong on 12 and right on 0.*both outcomes"):
        fit_learned(rows, [True] * 12, FEATURES)
    with pytest.raises(ConfigError, match="both outcomes"):
        cross_validated_scores(rows, [True] + [False] * 11, FEATURES)  # one failure cannot be held out and learnt


def test_cross_validated_scores_rank_separated_data() -> None:
    rows, labels = sample(separation=3.0)
    scores = cross_validated_scores(rows, labels, FEATURES, folds=5, seed=1)
    assert len(scores) == len(rows)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert min(s for s, y in zip(scores, labels, strict=True) if y) > max(
        s for s, y in zip(scores, labels, strict=True) if not y)
    assert scores == cross_validated_scores(rows, labels, FEATURES, folds=5, seed=1)  # deterministic for a seed


def test_folds_shrink_to_the_minority_class() -> None:
    y = np.array([True, True] + [False] * 10)
    splits = _splits(y, 5, 0, None)
    assert len(splits) == 2
    assert all(y[train].any() for train, _ in splits)  # every training fold still sees a failure


def test_groups_stay_in_one_fold() -> None:
    rows, labels = sample(n=90, separation=2.0)
    groups = [f"problem-{i // 3}" for i in range(90)]  # three steps per problem
    splits = _splits(np.array(labels), 4, 0, groups)
    for train, test in splits:
        assert not {groups[i] for i in train} & {groups[i] for i in test}
    assert sorted(i for _, test in splits for i in test) == list(range(90))  # every row scored exactly once
    scores = cross_validated_scores(rows, labels, FEATURES, folds=4, groups=groups)
    assert len(scores) == 90 and all(0.0 <= s <= 1.0 for s in scores)
