"""Fit the learned difficulty source (standardised logistic regression) and score it out of fold.

``fit_learned`` returns a :class:`~program.scale.sources.learned_model.LearnedModel`, whose plain-JSON arithmetic
reproduces scikit-learn's probabilities; routing never needs scikit-learn. ``cross_validated_scores`` gives
each row a score from a model that never saw it, which is what the calibration table reports for the
learned source (a model scored on its own training rows would look better than it is).

Example:
    >>> rows = [{"attempt_length": float(t)} for t in (50, 80, 120, 300, 400, 500)]
    >>> model = fit_learned(rows, [False, False, True, False, True, True], ["attempt_length"])
    >>> model.score({"attempt_length": 450.0}) > 0.5 > model.score({"attempt_length": 60.0})
    True
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold  # type: ignore[import-untyped]

from program.config import ConfigError
from program.scale.sources.learned_model import LearnedModel

__all__ = ["fit_learned", "cross_validated_scores"]


def _matrix(rows: Sequence[Mapping[str, float]], labels: Sequence[bool],
            features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rows as a float matrix (one column per feature) and labels as booleans, with errors that name the row."""
    if len(rows) != len(labels):
        raise ConfigError(f"learned model: got {len(rows)} feature rows but {len(labels)} labels; "
                          "each row needs exactly one label.")
    if not features:
        raise ConfigError("learned model: `features` is empty; name at least one feature to fit on.")
    matrix = np.empty((len(rows), len(features)))
    for i, row in enumerate(rows):
        for j, feature in enumerate(features):
            value = row.get(feature)
            if value is None or not math.isfinite(value):
                raise ConfigError(f"learned model: row {i} has no finite value for feature {feature!r} "
                                  f"(got {value!r}); measure it for every row or drop it from `features`.")
            matrix[i, j] = value
    return matrix, np.asarray(labels, dtype=bool)


def _check_both_outcomes(y: np.ndarray, needed: int, why: str) -> None:
    wrong, right = int(y.sum()), int((~y).sum())
    if min(wrong, right) < needed:
        raise ConfigError(f"learned model: of {len(y)} problems, System 1 was wrong on {wrong} and right on {right}; "
                          f"{why} needs both outcomes (at least {needed} of each). Label more problems.")


def _fit(x: np.ndarray, y: np.ndarray, features: Sequence[str], c: float,
         fitted_on: dict[str, Any] | None) -> LearnedModel:
    mean = x.mean(axis=0)
    std = x.std(axis=0)  # population std, as sklearn's StandardScaler
    scale = np.where(std > 0, std, 1.0)  # a constant feature carries no signal; 1.0 keeps z finite (all zeros)
    # max_iter above lbfgs' default 100: standardised data converges fast, but a weak C may need more steps.
    model = LogisticRegression(C=c, max_iter=1000).fit((x - mean) / scale, y)
    return LearnedModel(features=tuple(features), mean=tuple(map(float, mean)), scale=tuple(map(float, scale)),
                        coef=tuple(map(float, model.coef_[0])), intercept=float(model.intercept_[0]),
                        fitted_on=fitted_on)


def fit_learned(rows: Sequence[Mapping[str, float]], labels: Sequence[bool], features: Sequence[str], *,
                c: float = 1.0, fitted_on: dict[str, Any] | None = None) -> LearnedModel:
    """Fit P(System 1 wrong | features) by L2 logistic regression (inverse strength ``c``) on standardised features.

    Label ``True`` means System 1 was wrong. ``fitted_on`` is stored as provenance only.

    >>> model = fit_learned([{"rating": 0.1}, {"rating": 0.9}], [False, True], ["rating"], fitted_on={"n": 2})
    >>> [round(v, 6) for v in model.mean + model.scale], model.fitted_on
    ([0.5, 0.4], {'n': 2})
    """
    if not c > 0:
        raise ConfigError(f"learned model: `c={c}` must be positive (it is the inverse regularisation strength).")
    x, y = _matrix(rows, labels, features)
    _check_both_outcomes(y, 1, "fitting")
    return _fit(x, y, features, c, fitted_on)


def _splits(y: np.ndarray, folds: int, seed: int,
            groups: Sequence[Hashable] | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs; with ``groups``, all rows of a group land in the same test fold."""
    if groups is None:
        # Each test fold needs a row of the minority class and each training fold must keep one: at most that many.
        n_splits = max(2, min(folds, int(y.sum()), int((~y).sum())))
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y))
    if len(groups) != len(y):
        raise ConfigError(f"learned model: `groups` has {len(groups)} entries for {len(y)} rows; give one per row.")
    index: dict[Hashable, int] = {}  # integer codes in first-appearance order: keys need not be sortable
    codes = np.array([index.setdefault(g, len(index)) for g in groups])
    # Count groups, not rows: a problem whose steps are all failures is one unit of the minority class.
    with_wrong, with_right = len(set(codes[y].tolist())), len(set(codes[~y].tolist()))
    if min(with_wrong, with_right) < 2:
        raise ConfigError(f"learned model: cross-validation by group needs at least 2 groups with a failure and 2 "
                          f"with a success; got {with_wrong} and {with_right} (of {len(index)} groups).")
    n_splits = max(2, min(folds, with_wrong, with_right))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y, codes))


def cross_validated_scores(rows: Sequence[Mapping[str, float]], labels: Sequence[bool], features: Sequence[str], *,
                           folds: int = 5, seed: int = 0, groups: Sequence[Hashable] | None = None,
                           c: float = 1.0) -> list[float]:
    """Out-of-fold learned scores, one per row, each from a model fitted without that row (or its group).

    Folds are stratified by label and reduced to what the minority class allows (at least 2).

    >>> rows = [{"attempt_ratio": v} for v in (0.1, 0.2, 0.3, 0.7, 0.8, 0.9)]
    >>> scores = cross_validated_scores(rows, [False, False, False, True, True, True], ["attempt_ratio"])
    >>> len(scores), min(scores[3:]) > max(scores[:3])
    (6, True)
    """
    if folds < 2:
        raise ConfigError(f"learned model: `folds={folds}` must be at least 2.")
    if not c > 0:
        raise ConfigError(f"learned model: `c={c}` must be positive (it is the inverse regularisation strength).")
    x, y = _matrix(rows, labels, features)  # check every row up front, so an error names its index in `rows`
    _check_both_outcomes(y, 2, "cross-validation")
    scores = [math.nan] * len(y)
    for train, test in _splits(y, folds, seed, groups):
        _check_both_outcomes(y[train], 1, "each training fold")  # can only fail for unlucky group splits
        model = _fit(x[train], y[train], features, c, None)
        for i in test:
            scores[i] = model.score({f: float(v) for f, v in zip(features, x[i], strict=True)})
    return scores
