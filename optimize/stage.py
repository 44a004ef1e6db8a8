"""Stage-level compiling: tune ONE predictor on examples of its own stage, one call per candidate.

A whole-program compile scores a candidate by solving whole problems: about 35 s per SCALE problem
on the embedded model, so an optimizer can afford a handful of candidates. ``system1`` compiles
System 1's step solver alone on the steps recorded by ``scale calibrate`` (``labels.jsonl``): each
step is an example with the text it was shown, the earlier steps in System 1's context, and a
target value: System 2's value for that step in that context, or the gold answer for a one-step
plan (the cascade), where the step IS the problem. The metric is whether System 1's boxed value
matches the target. The tuned predictor (instruction and demos) is then put into the program,
which is scored on whole problems as every compile is (dev and held-out, before and after).

Example:
    >>> examples = stage_examples("runs/cal/labels.jsonl", "system1")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dspy

from program.config import ConfigError
from program.execute import NO_EARLIER_STEPS, Shared, solve

__all__ = ["STAGES", "stage_examples", "StageProgram"]

STAGES: tuple[str, ...] = ("program", "system1")


def stage_examples(labels: Path | str, stage: str) -> list[dspy.Example]:
    """The examples of ``stage`` in a calibration labels file (steps without a target are left out)."""
    if stage != "system1":
        raise ConfigError(f"stage {stage!r} has no stage-level examples; stages: system1 (or program, the whole "
                          "program on dev problems).")
    path = Path(labels)
    if not path.is_file():
        raise ConfigError(f"labels file {str(path)!r} does not exist; write it with `scale calibrate "
                          "--output DIR` (DIR/labels.jsonl).")
    examples = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        problem = json.loads(line)
        one_step = len(problem["steps"]) == 1
        for step in problem["steps"]:
            target = problem["gold"] if one_step else step.get("s2_value")
            shown, earlier = step.get("shown"), step.get("earlier")
            if one_step and not shown:  # a one-step plan was shown the problem, with nothing before it
                shown, earlier = problem["problem"], NO_EARLIER_STEPS
            if target is None or not shown:
                continue  # no reference value, or a label written before steps kept their context
            examples.append(dspy.Example(
                id=f"{problem['id']}#{step['index']}", problem=shown, earlier_steps=earlier, current_step=step["step"],
                answer=str(target)).with_inputs("problem", "earlier_steps", "current_step"))
    if not examples:
        raise ConfigError(f"{path}: no step has a reference value and its context; label again with "
                          "`scale calibrate` (labels from this version keep each step's context).")
    return examples


class StageProgram(dspy.Module):
    """System 1's step solver alone, as an optimizer's student: ``forward`` is one System 1 call."""

    def __init__(self, predictor: dspy.Predict, lm: dspy.LM) -> None:
        super().__init__()
        self.system1 = predictor
        self._lm = Shared(lm)

    def forward(self, problem: str, earlier_steps: str, current_step: str) -> Any:
        result = solve(self.system1, self._lm.value, "system1", problem=problem, earlier_steps=earlier_steps,
                       current_step=current_step)
        return dspy.Prediction(answer=result.answer or "", solution=result.text)
