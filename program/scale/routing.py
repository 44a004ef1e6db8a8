"""Mode selection: System 2 iff the step's difficulty score is strictly above the threshold tau.

tau = 1 sends every step to System 1 (no score exceeds 1); tau = -1 sends every step to System 2
(every score is at least 0). Uniform methods skip scoring altogether: with no score, the
threshold alone decides, which is only allowed where it decides the same for every score.

Example:
    >>> route(0.5, 0.5).mode, route(0.51, 0.5).mode
    ('system1', 'system2')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from program.config import ConfigError

__all__ = ["Mode", "Route", "route", "score_decides"]

Mode = Literal["system1", "system2"]


@dataclass(frozen=True)
class Route:
    """One routing decision, as recorded in the trace."""

    mode: Mode
    score: float | None
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_decides(threshold: float) -> bool:
    """Whether scores can change a decision at ``threshold`` (False for tau >= 1 or tau < 0)."""
    return 0.0 <= threshold < 1.0


def route(score: float | None, threshold: float) -> Route:
    """System 2 iff ``score > threshold`` (strict). ``score=None``: only where tau alone decides.

    Example:
        >>> route(None, -1.0).mode
        'system2'
    """
    if score is None:
        if score_decides(threshold):
            raise ConfigError(f"A step has no difficulty score, but `threshold={threshold!r}` needs one: "
                              "only tau >= 1 (all System 1) or tau < 0 (all System 2) can route without scores.")
        return Route("system2" if threshold < 0 else "system1", None, threshold)
    return Route("system2" if score > threshold else "system1", score, threshold)
