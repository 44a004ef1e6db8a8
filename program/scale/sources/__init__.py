"""Difficulty sources: where a step's score in [0, 1] comes from (``ScaleConfig.difficulty_source``).

- ``rating``: the prompted score (the SCALE paper's method; the default);
- ``rating_logprobs``: the expected digit of a one-token rating, from ``top_logprobs``;
- ``attempt``: System 1 tries first; a cut-off or answerless attempt scores 1.0, otherwise its
  length, confidence or agreement decides (``attempt_confidence``);
- ``learned``: a logistic model over cheap features, fitted by ``scale calibrate --fit learned``.

Each is one small file with a ``DifficultySource`` subclass; add one by writing a file, its name in
``program.names.DifficultySourceName`` and its class in ``SOURCES`` (the one name-to-class registry).
What a source needs is asked of it: ``needs_logprobs`` asks the configured source.

May import: ``program.calls``, ``program.clients``, ``program.concurrent``, ``program.confidence``,
``program.config``, ``program.errors``, ``program.ledger``, ``program.names`` and
``program.scale.difficulty``. Never ``program.scale.scale``, ``program.methods`` or ``optimize``.

Example:
    >>> from program.config import ProgramConfig, ScaleConfig
    >>> build_source(ScaleConfig(difficulty_source="attempt")).needs_solved_context
    True
"""

from __future__ import annotations

from program.config import ProgramConfig, ScaleConfig
from program.names import ROUTED_METHODS
from program.scale.sources.attempt import AttemptSource
from program.scale.sources.base import Assessment, DifficultySource, Host, NoLogprobsError, StepView
from program.scale.sources.learned import LearnedSource
from program.scale.sources.learned_model import FEATURES, LearnedModel
from program.scale.sources.rating import RatingSource
from program.scale.sources.rating_logprobs import RatingLogprobsSource

__all__ = ["SOURCES", "build_source", "needs_logprobs", "Assessment", "DifficultySource", "Host", "NoLogprobsError",
           "StepView", "AttemptSource", "LearnedSource", "RatingSource", "RatingLogprobsSource", "LearnedModel",
           "FEATURES"]

SOURCES: dict[str, type[DifficultySource]] = {
    source.name: source for source in (RatingSource, RatingLogprobsSource, AttemptSource, LearnedSource)}


def build_source(config: ScaleConfig) -> DifficultySource:
    """The source ``config.difficulty_source`` names, set up from ``config`` (``learned`` reads ``learned_path``)."""
    source = SOURCES.get(config.difficulty_source)
    if source is None:
        raise ValueError(f"unknown difficulty source {config.difficulty_source!r}; "
                         f"known sources are: {', '.join(SOURCES)}")
    return source.from_config(config)


def needs_logprobs(config: ProgramConfig) -> bool:
    """Whether ``config`` routes with a source that reads token logprobs (the server must send them).

    Example:
        >>> needs_logprobs(ProgramConfig(scale=ScaleConfig(difficulty_source="rating_logprobs")))
        True
    """
    return config.method in ROUTED_METHODS and build_source(config.scale).reads_logprobs(config.scale)
