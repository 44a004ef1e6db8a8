"""Difficulty sources: where a step's score in [0, 1] comes from (``ScaleConfig.difficulty_source``).

- ``rating``: the prompted score (the SCALE paper's method; the default);
- ``rating_logprobs``: the expected digit of a one-token rating, from ``top_logprobs``;
- ``attempt``: System 1 tries first; a cut-off or answerless attempt scores 1.0, otherwise its
  length, confidence or agreement decides (``attempt_confidence``);
- ``learned``: a logistic model over cheap features, fitted by ``scale calibrate --fit learned``.

Each is one small file with a ``DifficultySource`` subclass; add one by writing a file and a line
in ``build_source``.

Example:
    >>> from program.config import ProgramConfig, ScaleConfig
    >>> build_source(ScaleConfig(difficulty_source="attempt")).needs_solved_context
    True
"""

from __future__ import annotations

from program.config import ProgramConfig, ScaleConfig
from program.scale.sources.attempt import AttemptSource
from program.scale.sources.base import Assessment, DifficultySource, Host, NoLogprobsError, StepView
from program.scale.sources.learned import LearnedSource
from program.scale.sources.learned_model import FEATURES, LearnedModel
from program.scale.sources.rating import RatingSource
from program.scale.sources.rating_logprobs import RatingLogprobsSource

__all__ = ["SOURCES", "build_source", "needs_logprobs", "Assessment", "DifficultySource", "Host", "NoLogprobsError",
           "StepView", "AttemptSource", "LearnedSource", "RatingSource", "RatingLogprobsSource", "LearnedModel",
           "FEATURES"]

SOURCES: tuple[str, ...] = ("rating", "rating_logprobs", "attempt", "learned")


def build_source(config: ScaleConfig) -> DifficultySource:
    """The source ``config.difficulty_source`` names (``learned`` reads ``config.learned_path``)."""
    name = config.difficulty_source
    if name == "rating":
        return RatingSource()
    if name == "rating_logprobs":
        return RatingLogprobsSource()
    if name == "attempt":
        return AttemptSource()
    if name == "learned":
        assert config.learned_path is not None  # ScaleConfig checks it
        return LearnedSource(LearnedModel.load(config.learned_path))
    raise ValueError(f"unknown difficulty source {name!r}; known sources are: {', '.join(SOURCES)}")


def needs_logprobs(config: ProgramConfig) -> bool:
    """Whether ``config`` routes with a source that reads token logprobs (the server must send them).

    Example:
        >>> needs_logprobs(ProgramConfig(scale=ScaleConfig(difficulty_source="rating_logprobs")))
        True
    """
    scale = config.scale
    if config.method not in ("scale", "cascade"):
        return False
    if scale.difficulty_source == "rating_logprobs":
        return True
    if scale.difficulty_source == "attempt":
        return scale.attempt_confidence in ("deepconf", "mean_logprob")
    if scale.difficulty_source == "learned" and scale.learned_path:
        return "rating_logprobs" in LearnedSource(LearnedModel.load(scale.learned_path)).groups
    return False
