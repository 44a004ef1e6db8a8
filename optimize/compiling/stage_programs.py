"""The small programs a stage compile hands to an optimizer, one predictor each, and the rating's metric.

Each holds the one predictor being tuned as its only DSPy predictor; everything else it needs (the
host program's other predictors, its LMs and config) is held in ``Shared``, which DSPy neither
copies into candidates nor offers to the optimizer.

Example:
    >>> from program.testing import scripted_systems
    >>> from program.methods import build_program
    >>> from program.config import ProgramConfig
    >>> host = build_program(ProgramConfig(method="scale"), scripted_systems(lambda m: "0.8", str))
    >>> [name for name, _ in DifficultyStage(host).named_predictors()]
    ['difficulty']
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import dspy

from program.calls import Shared, solve
from program.scale import shown_problem
from program.scale.decompose import decompose_problem
from program.scale.difficulty import assess_step
from program.scale.steps import StepResult, solve_in_order

__all__ = ["System1Stage", "DecomposeStage", "DifficultyStage", "DifficultyMetric"]


class System1Stage(dspy.Module):
    """System 1's step solver alone: ``forward`` is one System 1 call."""

    def __init__(self, predictor: dspy.Predict, lm: dspy.LM) -> None:
        super().__init__()
        self.system1 = predictor
        self._lm = Shared(lm)

    def forward(self, problem: str, earlier_steps: str, current_step: str) -> Any:
        result = solve(self.system1, self._lm.value, "system1", problem=problem, earlier_steps=earlier_steps,
                       current_step=current_step)
        return dspy.Prediction(answer=result.answer or "", solution=result.text)


class DecomposeStage(dspy.Module):
    """The decomposition, judged by its all-System-1 solve: decompose, then System 1 on every step.

    No rating and no System 2 run, so a candidate costs one plan and its System 1 steps.
    """

    def __init__(self, host: dspy.Module) -> None:
        super().__init__()
        self.decompose = host.decompose.deepcopy()
        self._host = Shared(host)

    def forward(self, problem: str) -> Any:
        host = self._host.value
        config = host.config
        plan = decompose_problem(problem, decompose=self.decompose, select=host.select, rewrite=host.rewrite,
                                 lm=host.systems.stages, config=config, retries=host.decompose_retries)
        _, seen = shown_problem(config, problem, plan)

        def system1(_index: int, step: str, earlier: str) -> StepResult:
            result = solve(host.system1, host.systems.system1, "system1", problem=seen, earlier_steps=earlier,
                           current_step=step)
            return StepResult(step, result.text, result.answer)

        last = solve_in_order(plan.steps, config.context, system1)[-1]  # SCALE's step loop, all System 1
        return dspy.Prediction(answer=last.value or "", solution=last.text, steps=list(plan.steps))


class DifficultyStage(dspy.Module):
    """The prompted rating of one step (the last-step rule off: every labelled step is rated)."""

    def __init__(self, host: dspy.Module) -> None:
        super().__init__()
        self.difficulty = host.difficulty.deepcopy()
        self._host = Shared(host)

    def forward(self, problem: str, earlier_steps: str, current_step: str) -> Any:
        host = self._host.value
        difficulty, failures = assess_step(
            self.difficulty, host.systems.stages, replace(host.config, last_step_score=None), problem=problem,
            earlier_steps=earlier_steps, current_step=current_step, index=0,
            max_tokens=host.difficulty_max_tokens)
        del failures  # an unreadable rating falls back to the config's score, which is what the program would use
        return dspy.Prediction(score=difficulty.score)


class DifficultyMetric:
    """``1 - (score - label)^2``: 1 for a confident right rating, 0 for a confident wrong one.

    ``label`` is 1.0 where System 1 went wrong on the step. Bootstrapping (a ``trace`` is given)
    asks for a verdict: the rating is on the right side of 0.5.

    Example:
        >>> metric = DifficultyMetric()
        >>> metric(dspy.Example(label=1.0), dspy.Prediction(score=0.8)), metric(dspy.Example(label=0.0),
        ...     dspy.Prediction(score=0.8), trace=[])
        (0.96, False)
    """

    def __call__(self, example: Any, prediction: Any, trace: Any = None) -> float | bool:
        score = _score(prediction)
        if trace is not None:
            return score is not None and (score >= 0.5) == (example.label >= 0.5)
        return 0.0 if score is None else round(1.0 - (score - example.label) ** 2, 6)

    def feedback(self, gold: Any, pred: Any, trace: Any = None, pred_name: str | None = None,
                 pred_trace: Any = None) -> dspy.Prediction:
        """GEPA's 5-argument metric: the score, and text saying which way the rating was off."""
        score = _score(pred)
        truth = ("System 1 got this step WRONG, so it should be rated hard (near 1)" if gold.label >= 0.5 else
                 "System 1 got this step right, so it should be rated easy (near 0)")
        said = "no readable rating" if score is None else f"a rating of {score:.2f}"
        return dspy.Prediction(score=self(gold, pred), feedback=f"{truth}; the predictor gave {said}.")


def _score(prediction: Any) -> float | None:
    score = getattr(prediction, "score", None) if prediction is not None else None
    return float(score) if isinstance(score, (int, float)) else None
