"""``learned``: a calibrated model over cheap features, fitted by ``scale calibrate --fit learned``.

The model (``LearnedModel``: standardised logistic regression, plain JSON, never pickled) gives
the probability that System 1 gets the step wrong. Only the feature groups it uses are measured:
a model over ``problem_words`` and the attempt's signals costs one System 1 attempt per step,
which SCALE keeps as the step's solution when the step is not escalated.

Example:
    >>> model = LearnedModel(features=("step_words",), mean=(5.0,), scale=(1.0,), coef=(1.0,), intercept=0.0)
    >>> source = LearnedSource(model)
    >>> source.needs_solved_context, source.groups
    (False, ['free'])
"""

from __future__ import annotations

from program.config import ScaleConfig
from program.scale.difficulty import Difficulty
from program.scale.sources.base import Assessment, DifficultySource, Host, StepView
from program.scale.sources.features import groups_for, measure
from program.scale.sources.learned_model import LearnedModel

__all__ = ["LearnedSource"]


class LearnedSource(DifficultySource):
    """Scores a step with a fitted ``LearnedModel`` over the features it names."""

    name = "learned"

    def __init__(self, model: LearnedModel) -> None:
        self.model = model
        self.groups = groups_for(model.features)
        self.needs_solved_context = "attempt" in self.groups
        self.asks_rating = "rating" in self.groups or "rating_logprobs" in self.groups

    @classmethod
    def from_config(cls, config: ScaleConfig) -> LearnedSource:
        """The model at ``config.learned_path`` (``ScaleConfig`` checks it is set)."""
        assert config.learned_path is not None
        return cls(LearnedModel.load(config.learned_path))

    def reads_logprobs(self, config: ScaleConfig) -> bool:
        return "rating_logprobs" in self.groups

    def assess(self, host: Host, step: StepView) -> Assessment:
        measured = measure(host, step, self.groups)
        values = {f: measured.values[f] for f in self.model.features}
        score = self.model.score(values)
        difficulty = Difficulty(score=round(score, 6), raw=score, attempts=1, source=self.name, signals=values)
        return Assessment(difficulty, measured.failures, measured.attempt)
