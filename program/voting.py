"""Voting over samples with adaptive stopping: System 2 for models without a thinking mode.

``vote(draw, config)`` asks ``draw(i)`` for sample i = 0, 1, ... up to ``config.samples`` and
takes the majority of the extracted answers (compared after ``answer_key`` normalisation; a sample
without an answer does not vote; ties go to the answer seen first). With ``adaptive`` it stops as
soon as the answer is settled:

- ``majority``: the leader's votes exceed the runner-up's plus every sample still to draw, so no
  outcome of the rest can change the winner (3 of 5 agreeing after 3 samples stops at 3);
- ``beta`` (Adaptive-Consistency, Aggarwal et al. 2023): P(p > 1/2) for p ~ Beta(leader + 1,
  runner-up + 1) reaches ``config.confidence``.

With ``weight: confidence`` each vote weighs its trace's DeepConf lowest-window confidence (the
samples then need logprobs); stopping still counts votes, since an unseen sample's weight is unknown.

Example:
    >>> from program.calls import Solution
    >>> replies = iter(["7", "7", "7", "3", "3"])
    >>> outcome = vote(lambda i: Solution("", next(replies)), VoteConfig(samples=5))
    >>> outcome.answer, outcome.samples_used
    ('7', 3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from program.calls import Solution
from program.confidence import lowest_group_confidence
from program.config_methods import VoteConfig
from program.tally import answer_key, tally

__all__ = ["VoteOutcome", "vote", "settled", "tally", "answer_key", "sample_settings"]

CONFIDENCE_WINDOW = 16  # tokens; a step's trace is short


@dataclass(frozen=True)
class VoteOutcome:
    """The winning sample (its solution), every sample's answer and weight, and how many were drawn."""

    solution: Solution
    answer: str | None
    answers: list[str | None]
    weights: list[float]
    samples_used: int
    samples_max: int
    stopped_early: bool
    solutions: list[Solution] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "answers": self.answers, "weights": self.weights,
                "samples_used": self.samples_used, "samples_max": self.samples_max,
                "stopped_early": self.stopped_early}


def settled(counts: Sequence[float], remaining: int, config: VoteConfig) -> bool:
    """Whether the leader of ``counts`` (sorted high to low) can no longer lose, by ``config.stop_rule``.

    Example:
        >>> settled([3, 0], remaining=2, config=VoteConfig(samples=5))
        True
        >>> settled([2, 1], remaining=2, config=VoteConfig(samples=5))
        False
    """
    if not counts:
        return remaining == 0
    leader, runner_up = counts[0], (counts[1] if len(counts) > 1 else 0.0)
    if config.stop_rule == "majority":
        return leader > runner_up + remaining
    from scipy.stats import beta  # type: ignore[import-untyped]

    return remaining == 0 or float(beta.sf(0.5, leader + 1, runner_up + 1)) >= config.confidence


def sample_settings(config: VoteConfig, index: int) -> dict[str, Any]:
    """Call settings of vote sample ``index``: its own seed and rollout id, the vote's temperature (and
    cap, when the vote has one), and logprobs when votes are weighted by confidence.

    Example:
        >>> sample_settings(VoteConfig(), 2)
        {'seed': 2, 'rollout_id': 2, 'temperature': 0.7}
        >>> sample_settings(VoteConfig(max_tokens=768), 0)["max_tokens"]
        768
    """
    from program.calls import rollout

    settings: dict[str, Any] = {**rollout(index), "temperature": config.temperature}
    if config.max_tokens is not None:
        settings["max_tokens"] = config.max_tokens
    if config.weight == "confidence":
        settings.update(logprobs=True, top_logprobs=5)
    return settings


def vote(draw: Callable[[int], Solution], config: VoteConfig, *, window: int = CONFIDENCE_WINDOW) -> VoteOutcome:
    """Draw samples until settled (or all k), then the (weighted) majority. See the module docstring."""
    solutions: list[Solution] = []
    for i in range(config.samples):
        solutions.append(draw(i))
        counts = tally([s.answer for s in solutions])[1]
        if config.adaptive and settled(counts, config.samples - len(solutions), config):
            break
    answers = [s.answer for s in solutions]
    if config.weight == "confidence":
        weights = [lowest_group_confidence(s.logprobs, window) if s.logprobs else 0.0 for s in solutions]
    else:
        weights = [1.0] * len(solutions)
    winner, _ = tally(answers, weights)
    chosen = next((s for s in solutions if winner is not None and s.answer is not None
                   and answer_key(s.answer) == answer_key(winner)), solutions[0])
    return VoteOutcome(chosen, winner, answers, weights, len(solutions), config.samples,
                       len(solutions) < config.samples, solutions)
