"""``rating``: the prompted difficulty score in [0, 1], the SCALE paper's method (the default).

One non-thinking stage call per step (``program.scale.difficulty.assess_step``: bounded retries, the
fallback score). The reference's last-step rule applies to it (``last_step_rule``; ``Scale`` applies it).

Example:
    >>> from program.testing import scripted_systems
    >>> from program.scale import Scale
    >>> from program.config import ScaleConfig
    >>> host = Scale(ScaleConfig(), scripted_systems(lambda m: "0.3", str))
    >>> RatingSource().assess(host, StepView("P", "(none)", "S", is_last=False, index=0)).difficulty.score
    0.3
"""

from __future__ import annotations

from program.scale.difficulty import assess_step
from program.scale.sources.base import Assessment, DifficultySource, Host, StepView

__all__ = ["RatingSource"]


class RatingSource(DifficultySource):
    """Ask the stages LM to rate the step (reference behaviour)."""

    name = "rating"
    asks_rating = True
    last_step_rule = True

    def assess(self, host: Host, step: StepView) -> Assessment:
        difficulty, failures = assess_step(
            host.difficulty, host.systems.stages, host.config, problem=step.problem, earlier_steps=step.earlier_steps,
            current_step=step.current_step, index=step.index,
            max_tokens=host.difficulty_max_tokens)
        return Assessment(difficulty, failures)
