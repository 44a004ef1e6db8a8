"""The baselines' frozen configs: majority voting and InftyThink (re-exported by ``program.config``).

Example:
    >>> VoteConfig(samples=5).adaptive
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from program.validation import check, check_positive

__all__ = ["VoteConfig", "InftyThinkConfig"]


@dataclass(frozen=True)
class VoteConfig:
    """Majority voting: up to ``samples`` independent solutions (distinct rollout ids), most common answer wins.

    Args:
        samples: k, the most samples drawn.
        temperature: their sampling temperature (greedy samples would all agree).
        adaptive: stop drawing once the answer is settled (``stop_rule``); False draws all k.
        stop_rule: ``majority`` stops when the leader cannot be overtaken by the samples left;
            ``beta`` (Adaptive-Consistency) stops when P(leader beats the runner-up) under a
            Beta(leader + 1, runner-up + 1) posterior reaches ``confidence``.
        confidence: the ``beta`` rule's threshold (Adaptive-Consistency uses 0.95).
        weight: ``none`` (one sample, one vote) or ``confidence`` (DeepConf: each vote weighs its
            trace's lowest-window confidence; needs logprobs from the server).
        lm: which LM draws the samples as SCALE's System 2 or the cascade's: ``system1`` (the
            non-thinking model: self-consistency for models without a thinking mode) or ``system2``.
        max_tokens: each sample's cap; None = the LM's own. Self-consistency needs whole
            solutions: a vote on System 1 at System 1's small attempt cap mostly counts cut-off
            samples without an answer (which do not vote), exactly on the problems that were
            escalated for being cut off.
    """

    samples: int = 8
    temperature: float = 0.7
    adaptive: bool = True
    stop_rule: Literal["majority", "beta"] = "majority"
    confidence: float = 0.95
    weight: Literal["none", "confidence"] = "none"
    lm: Literal["system1", "system2"] = "system1"
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        check_positive("samples", self.samples)
        check_positive("max_tokens", self.max_tokens)
        check(0.0 < self.temperature <= 2.0,
               f"`temperature={self.temperature!r}` must be in (0, 2]: identical greedy samples cannot vote.")
        check(self.stop_rule in ("majority", "beta"), f"`stop_rule={self.stop_rule!r}` must be 'majority' or 'beta'.")
        check(isinstance(self.confidence, (int, float)) and 0.5 < self.confidence < 1.0,
               f"`confidence={self.confidence!r}` must be in (0.5, 1).")
        check(self.weight in ("none", "confidence"), f"`weight={self.weight!r}` must be 'none' or 'confidence'.")
        check(self.lm in ("system1", "system2"), f"`lm={self.lm!r}` must be 'system1' or 'system2'.")


@dataclass(frozen=True)
class InftyThinkConfig:
    """Prompted InftyThink (arXiv 2503.06692): segments of at most ``segment_tokens`` with summaries."""

    segment_tokens: int = 4096
    max_iterations: int = 50
    summary_max_tokens: int = 512

    def __post_init__(self) -> None:
        check_positive("segment_tokens", self.segment_tokens)
        check_positive("max_iterations", self.max_iterations)
        check_positive("summary_max_tokens", self.summary_max_tokens)
