"""Difficulty assessment: a score in [0, 1] per sub-problem, from a small non-thinking call.

Anchors (SCALE, arXiv 2512.00466): 0-0.5 an elementary/middle-school student could do it quickly;
0.5-1 even a strong high-school or college student would need extensive thought. Rules kept here:

- **Bounded retries.** An unreadable reply is asked again ``difficulty_retries`` times (distinct
  rollout ids and seeds), then ``fallback_difficulty`` is used and the reason recorded. (The
  reference code retries forever.)
- **Range.** A number outside [0, 1] ("7", "-0.3", "30%" read as 30) counts as unreadable: it is
  asked again, then the fallback is used, each attempt recorded (the reference accepts only a reply
  that is a number in [0, 1]). Parsing stays lenient otherwise: a number anywhere in the reply.
- **Last-step rule.** Not here: ``Scale`` applies it once, after any source (``Scale.assess``).
- **Modes.** ``upfront`` scores every step from the plan alone (earlier step descriptions only);
  ``solved_context`` scores a step just before it runs, with the earlier steps' answers.

Example:
    >>> Difficulty(score=0.9, forced=True).to_dict()["forced"]
    True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import dspy

from program.calls import Failure, call, rollout
from program.config import ScaleConfig

__all__ = ["Difficulty", "assess_step"]

STAGE = "difficulty"


@dataclass(frozen=True)
class Difficulty:
    """One step's score and how it came about.

    ``score``: what routing uses. ``raw``: what the model said (None if not asked or unreadable).
    ``forced``: the last-step rule set it (``program.scale.Scale.assess``).
    ``fallback``: why the fallback score was used.
    ``attempts``: calls made. ``source``: the difficulty source (``program.scale.sources``).
    ``signals``: the raw measurements the score came from (an attempt's length, a digit entropy).
    """

    score: float
    raw: float | None = None
    forced: bool = False
    fallback: str | None = None
    attempts: int = 0
    source: str = "rating"
    signals: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Difficulty:
        # "clamped" was recorded before out-of-range scores became unreadable: nothing to keep.
        return cls(**{k: v for k, v in data.items() if k != "clamped"})


def assess_step(predictor: dspy.Predict, lm: dspy.LM, config: ScaleConfig, *, problem: str, earlier_steps: str,
                current_step: str, index: int, max_tokens: int | None = None) -> tuple[Difficulty, list[Failure]]:
    """Score one step by asking ``predictor`` (the last-step rule is ``Scale``'s, not this function's).

    ``earlier_steps`` is rendered by the caller: descriptions only (up front) or with answers
    (solved context). Every unreadable reply (a number outside [0, 1] included) is returned as a
    ``Failure``.

    Example:
        >>> from program.testing import function_lm
        >>> replies = iter(["7", "0.3"])
        >>> difficulty, failures = assess_step(dspy.Predict("problem, earlier_steps, current_step -> score: float"),
        ...     function_lm(lambda m: next(replies)), ScaleConfig(), problem="p", earlier_steps="",
        ...     current_step="s", index=0)
        >>> difficulty.score, difficulty.attempts, failures[0].reason
        (0.3, 2, 'attempt 1: score 7.0 is outside [0, 1]')
    """
    failures: list[Failure] = []
    attempts = config.difficulty_retries + 1
    for attempt in range(attempts):
        settings: dict[str, Any] = rollout(attempt)
        if max_tokens is not None:
            settings["max_tokens"] = max_tokens
        result = call(predictor, lm, STAGE, config=settings, problem=problem, earlier_steps=earlier_steps,
                      current_step=current_step)
        raw = _as_float(result.prediction.score) if result.prediction is not None else None
        if raw is not None and 0.0 <= raw <= 1.0:
            return Difficulty(score=raw, raw=raw, attempts=attempt + 1), failures
        if raw is not None:
            reason = f"score {raw!r} is outside [0, 1]"
        else:
            reason = result.reason or f"score {getattr(result.prediction, 'score', None)!r} is not a number"
        failures.append(Failure(STAGE, f"attempt {attempt + 1}: {reason}", index))
    reason = f"no readable score after {attempts} attempt(s); used fallback {config.fallback_difficulty}"
    failures.append(Failure(STAGE, reason, index))
    return Difficulty(score=config.fallback_difficulty, fallback=reason, attempts=attempts), failures


def _as_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
