"""The difficulty-source interface: what a step is, what a source returns, what it may use.

A source turns one step into a ``Difficulty`` (a score in [0, 1] with its raw signals). Sources
that solve the step to judge it (``attempt``) also return that System 1 attempt, which SCALE keeps
when the step is not escalated; its tokens are booked to the step either way, since they were paid.
A new source is a new small file with a subclass of ``DifficultySource``, its name added to
``program.names.DifficultySourceName`` and its class to ``program.scale.sources.SOURCES`` (a test
checks the two match); ``Scale`` does not change. What a source needs (logprobs, the solved
context, the rating predictor) is asked of it, never listed elsewhere.

Example:
    >>> StepView(problem="P", earlier_steps="(none)", current_step="S", is_last=True, index=0).is_last
    True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import dspy

from program.calls import Failure, Solution
from program.clients.lm import Systems
from program.config import ConfigError, ScaleConfig
from program.errors import LogprobsRefusedError
from program.scale.difficulty import Difficulty

__all__ = ["StepView", "Assessment", "Host", "DifficultySource", "NoLogprobsError", "refused_logprobs"]


@dataclass(frozen=True)
class StepView:
    """One step as a source sees it.

    ``problem``: the text steps are shown as the problem (conditions or the whole problem).
    ``earlier_steps``: rendered earlier steps (descriptions only up front; with answers when solved).
    ``original``: the original problem text (for length features); "" means same as ``problem``.
    """

    problem: str
    earlier_steps: str
    current_step: str
    is_last: bool
    index: int
    original: str = ""


@dataclass(frozen=True)
class Assessment:
    """A source's verdict on one step: the score, what went wrong, and System 1's attempt if it made one."""

    difficulty: Difficulty
    failures: list[Failure] = field(default_factory=list)
    attempt: Solution | None = None


class Host(Protocol):
    """What a source may use of the program that runs it (``program.scale.Scale``)."""

    config: ScaleConfig
    difficulty: dspy.Predict
    system1: dspy.Predict
    difficulty_max_tokens: int | None

    @property
    def systems(self) -> Systems: ...


class NoLogprobsError(ConfigError):
    """A source that reads logprobs got none from the server (a setting to fix: every problem would fail)."""

    def __init__(self, source: str) -> None:
        super().__init__(
            f"difficulty source {source!r} needs token logprobs, but the server returned none. Use a "
            "server that returns them (the embedded llama-server, llama.cpp's llama-server, vLLM, SGLang; "
            "llama-cpp-python's server only with `--logits_all true`), or choose a source that needs none: `rating`, "
            "`attempt` with `attempt_confidence` 'length' or 'agreement'.")


def refused_logprobs(exc: BaseException) -> bool:
    """Whether ``exc`` (or what DSPy wrapped in it) is a server refusing logprobs."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, LogprobsRefusedError):
            return True
        cause = cause.__cause__
    return False


class DifficultySource(ABC):
    """Scores one step. ``needs_solved_context``: it can only score a step once the earlier ones are
    solved (it solves the step itself), so it never runs up front.

    ``last_step_rule``: whether the reference's last-step rule applies to this source's scores. With
    it and ``ScaleConfig.last_step_score`` set, ``Scale`` forces the last step's score without asking
    the source (``Scale.assess``); a source never applies the rule itself. The rating sources apply
    it (the SCALE reference does); ``attempt`` and ``learned`` are exempt, so the default is False:
    their score is a measurement of the step (an attempt's length, a fitted probability) that the
    rule would throw away, and ``attempt``'s System 1 answer with it.
    """

    name: ClassVar[str]
    needs_solved_context: bool = False
    asks_rating: bool = False  # it calls the program's ``difficulty`` predictor (so compiling it matters)
    last_step_rule: bool = False

    @classmethod
    def from_config(cls, config: ScaleConfig) -> DifficultySource:
        """The source as ``config`` sets it up (``build_source``); most need nothing from it."""
        return cls()

    def reads_logprobs(self, config: ScaleConfig) -> bool:
        """Whether it asks the server for token logprobs under ``config`` (the server must send them)."""
        return False

    @abstractmethod
    def assess(self, host: Host, step: StepView) -> Assessment:
        """The step's difficulty (and System 1's attempt, if the source made one)."""
