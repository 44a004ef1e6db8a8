"""Feature values of one step, measured by the sources that produce them (for ``learned`` and ``scale calibrate``).

Groups, each measured at most once per step: ``free`` (lengths and position, no call), ``rating``
(the prompted score, always asked: the last-step rule is ``Scale``'s routing rule, not a measurement),
``rating_logprobs`` (expected digit / 9 and entropy; needs logprobs), ``attempt`` (System 1's
attempt: its length, its ratio to the cap, whether it was cut off or had no answer).

Example:
    >>> groups_for(["problem_words", "attempt_ratio"])
    ['free', 'attempt']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from program.calls import Failure, Solution
from program.scale.sources.base import Host, StepView
from program.scale.sources.learned_model import FEATURES

__all__ = ["GROUPS", "Measured", "groups_for", "measure"]

GROUPS: dict[str, tuple[str, ...]] = {
    "free": ("problem_words", "step_words", "step_index"),
    "rating": ("rating",),
    "rating_logprobs": ("rating_expected", "rating_entropy"),
    "attempt": ("attempt_length", "attempt_ratio", "attempt_capped", "attempt_no_answer"),
}
assert sorted(f for names in GROUPS.values() for f in names) == sorted(FEATURES), "every feature has one group"


@dataclass
class Measured:
    """Feature values of one step, what failed while measuring them, and System 1's attempt (if made)."""

    values: dict[str, float] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    attempt: Solution | None = None
    attempt_score: float | None = None  # the attempt source's own score (length option)


def groups_for(features: Iterable[str]) -> list[str]:
    """The groups that measure ``features``, in a fixed order."""
    wanted = set(features)
    return [group for group, names in GROUPS.items() if wanted & set(names)]


def measure(host: Host, step: StepView, groups: Iterable[str]) -> Measured:
    """Measure every feature of ``groups`` for ``step`` (calls: one rating, one 1-token rating, one attempt)."""
    from program.scale.sources.attempt import AttemptSource
    from program.scale.sources.rating import RatingSource
    from program.scale.sources.rating_logprobs import RatingLogprobsSource

    measured = Measured()
    for group in groups:
        if group == "free":
            measured.values.update(problem_words=float(len((step.original or step.problem).split())),
                                   step_words=float(len(step.current_step.split())), step_index=float(step.index))
        elif group == "rating":
            verdict = RatingSource().assess(host, replace(step, problem=step.original or step.problem))
            measured.values["rating"] = verdict.difficulty.score
            measured.failures += verdict.failures
        elif group == "rating_logprobs":
            verdict = RatingLogprobsSource().assess(host, replace(step, problem=step.original or step.problem))
            signals = verdict.difficulty.signals or {}
            measured.values["rating_expected"] = signals.get("rating_expected", verdict.difficulty.score)
            measured.values["rating_entropy"] = signals.get("rating_entropy", 0.0)
            measured.failures += verdict.failures
        elif group == "attempt":
            verdict = AttemptSource(option="length").assess(host, step)  # one greedy sample, no logprobs
            signals = verdict.difficulty.signals or {}
            measured.values.update({k: v for k, v in signals.items() if k in GROUPS["attempt"]})
            measured.attempt, measured.attempt_score = verdict.attempt, verdict.difficulty.score
        else:
            raise ValueError(f"unknown feature group {group!r}; known groups are: {', '.join(GROUPS)}")
    return measured

