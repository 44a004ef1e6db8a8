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

**Rounds.** On a server that takes several requests at once, ``vote(..., slots=...)`` draws in
rounds: each round draws as many samples as there are free slots, or more when a one-by-one vote
is sure to draw more (3 of a 5-sample majority vote before it can stop), and the stopping rule is
checked between rounds. The outcome is the one-by-one vote's: the stopping rule is replayed over
the drawn samples in index order, and the majority is taken over the samples up to where it
stops. Samples drawn past that point (``extra_samples``, at most a round's size minus one) were
paid for and are in the ledger, but do not vote, so answers do not depend on the server's slots.
With one slot every round is one sample: exactly the one-by-one vote.

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
from functools import partial
from typing import Any

from program.calls import Solution
from program.concurrent import run_all
from program.confidence import lowest_group_confidence
from program.config_methods import VoteConfig
from program.tally import answer_key, tally

__all__ = ["VoteOutcome", "vote", "settled", "tally", "answer_key", "sample_settings"]

CONFIDENCE_WINDOW = 16  # tokens; a step's trace is short


@dataclass(frozen=True)
class VoteOutcome:
    """The winning sample (its solution), every sample's answer and weight, and how many were drawn.

    ``rounds``: the samples drawn per round; ``extra_samples``: those drawn past the point where a
    one-by-one vote would have stopped (they do not vote); ``at_once``: the most drawn at the same time.
    """

    solution: Solution
    answer: str | None
    answers: list[str | None]
    weights: list[float]
    samples_used: int
    samples_max: int
    stopped_early: bool
    solutions: list[Solution] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    extra_samples: int = 0
    at_once: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "answers": self.answers, "weights": self.weights,
                "samples_used": self.samples_used, "samples_max": self.samples_max,
                "stopped_early": self.stopped_early, **self.rounds_record()}

    def rounds_record(self) -> dict[str, Any]:
        """The rounds, for a trace: only when samples were drawn at once (a one-by-one vote has none)."""
        return {"rounds": self.rounds, "extra_samples": self.extra_samples} if self.at_once > 1 else {}


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


def vote(draw: Callable[[int], Solution], config: VoteConfig, *, window: int = CONFIDENCE_WINDOW,
         slots: Callable[[], int] | int = 1) -> VoteOutcome:
    """Draw samples until settled (or all k), then the (weighted) majority. See the module docstring.

    ``slots``: how many samples may be drawn at once now (the free slots of the server), or a number.
    """
    drawn: list[Solution] = []
    rounds: list[int] = []
    at_once, stop = 1, None
    while stop is None and len(drawn) < config.samples:
        free = max(1, slots() if callable(slots) else slots)
        size = min(config.samples - len(drawn), max(free, _sure_to_draw(drawn, config)))
        drawn += run_all([partial(draw, i) for i in range(len(drawn), len(drawn) + size)], free)
        rounds.append(size)
        at_once = max(at_once, min(free, size))
        stop = _one_by_one_stop(drawn, len(drawn) - size, config)
    solutions = drawn[:stop] if stop is not None else drawn
    answers = [s.answer for s in solutions]
    if config.weight == "confidence":
        weights = [lowest_group_confidence(s.logprobs, window) if s.logprobs else 0.0 for s in solutions]
    else:
        weights = [1.0] * len(solutions)
    winner, _ = tally(answers, weights)
    chosen = next((s for s in solutions if winner is not None and s.answer is not None
                   and answer_key(s.answer) == answer_key(winner)), solutions[0])
    return VoteOutcome(chosen, winner, answers, weights, len(solutions), config.samples,
                       len(solutions) < config.samples, solutions, rounds, len(drawn) - len(solutions), at_once)


def _one_by_one_stop(drawn: Sequence[Solution], checked: int, config: VoteConfig) -> int | None:
    """Where a one-by-one vote stops within ``drawn`` (its first ``checked`` samples did not settle it)."""
    if not config.adaptive:
        return None
    for n in range(checked + 1, len(drawn) + 1):
        if settled(tally([s.answer for s in drawn[:n]])[1], config.samples - n, config):
            return n
    return None


def _sure_to_draw(drawn: Sequence[Solution], config: VoteConfig) -> int:
    """Samples a one-by-one vote draws after ``drawn`` whatever they say: the fewest that could settle it.

    Example:
        >>> _sure_to_draw([], VoteConfig(samples=5))
        3
    """
    remaining = config.samples - len(drawn)
    if not config.adaptive:
        return remaining
    counts = tally([s.answer for s in drawn])[1]
    leader, rest = (counts[0], counts[1:]) if counts else (0.0, [])
    for more in range(1, remaining + 1):  # the best case: every new sample agrees with the leader
        if settled(sorted([leader + more, *rest], reverse=True), remaining - more, config):
            return more
    return remaining
