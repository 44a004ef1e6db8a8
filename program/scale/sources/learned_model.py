"""A learned difficulty model: logistic regression over named features, stored as plain JSON.

``scale calibrate --fit learned`` fits it (scikit-learn) on labelled dev problems; routing only
needs this file's arithmetic, so a saved model is read with ``json`` and never unpickled. Features
are standardised with the training mean and scale, then ``p = sigmoid(intercept + coef . z)``:
the probability that System 1 gets the step wrong, which is the difficulty score.

Example:
    >>> model = LearnedModel(features=("attempt_length",), mean=(100.0,), scale=(50.0,), coef=(2.0,),
    ...                      intercept=0.0)
    >>> round(model.score({"attempt_length": 150.0}), 3)
    0.881
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from program.config import ConfigError

__all__ = ["LearnedModel", "FEATURES"]

# What a learned model may use, and where each value comes from (see program/scale/sources/features.py).
FEATURES: tuple[str, ...] = (
    "problem_words",      # the problem's length, known before any call
    "step_words",         # the current step's length
    "step_index",         # 0 for the first step
    "rating",             # the prompted rating in [0, 1] (one stage call)
    "rating_expected",    # the expected digit / 9 from one logprobs call
    "rating_entropy",     # that digit distribution's entropy (nats)
    "attempt_length",     # System 1's attempt: completion tokens
    "attempt_ratio",      # ... relative to its cap
    "attempt_capped",     # 1 when the attempt hit its cap
    "attempt_no_answer",  # 1 when no boxed answer could be read
)


@dataclass(frozen=True)
class LearnedModel:
    """Standardised logistic regression: everything needed to score, nothing else."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    fitted_on: dict[str, Any] | None = None  # provenance: dev slice, labels, n; not used to score

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ConfigError(f"learned model: unknown feature(s) {', '.join(map(repr, unknown))}; "
                              f"known features are: {', '.join(FEATURES)}.")
        n = len(self.features)
        if not n or not (len(self.mean) == len(self.scale) == len(self.coef) == n):
            raise ConfigError(f"learned model: `features`, `mean`, `scale` and `coef` must have the same non-zero "
                              f"length; got {n}, {len(self.mean)}, {len(self.scale)}, {len(self.coef)}.")
        if any(not math.isfinite(s) or s <= 0 for s in self.scale):
            raise ConfigError(f"learned model: every `scale` must be positive; got {list(self.scale)}.")

    def score(self, values: dict[str, float]) -> float:
        """The probability that System 1 fails, from feature values (every feature must be present)."""
        missing = [f for f in self.features if f not in values]
        if missing:
            raise ConfigError(f"learned model needs feature(s) {', '.join(missing)}, which were not measured.")
        z = self.intercept + sum(c * (values[f] - m) / s
                                 for f, m, s, c in zip(self.features, self.mean, self.scale, self.coef, strict=True))
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": "logistic"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LearnedModel:
        if data.get("kind", "logistic") != "logistic":
            raise ConfigError(f"learned model: kind {data.get('kind')!r} is not supported (only 'logistic').")
        fields = {k: v for k, v in data.items() if k != "kind"}
        try:
            return cls(features=tuple(fields["features"]), mean=tuple(map(float, fields["mean"])),
                       scale=tuple(map(float, fields["scale"])), coef=tuple(map(float, fields["coef"])),
                       intercept=float(fields["intercept"]), fitted_on=fields.get("fitted_on"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"learned model: missing or malformed field ({exc}); write it with "
                              "`scale calibrate --fit learned`.") from exc

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str) -> LearnedModel:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"learned model file {str(path)!r} does not exist; write it with "
                              "`scale calibrate --fit learned --output DIR` (it writes DIR/learned.json).") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"learned model file {str(path)!r} is not JSON ({exc}).") from None
        if not isinstance(data, dict):
            raise ConfigError(f"learned model file {str(path)!r} must hold a JSON object.")
        return cls.from_dict(data)
