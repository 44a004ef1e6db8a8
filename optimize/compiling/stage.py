"""Stage-level compiling: tune ONE predictor on examples of its own stage, cheaply per candidate.

A whole-program compile scores a candidate by solving whole problems: about 35 s per SCALE problem
on the embedded model, so an optimizer can afford a handful of candidates. A stage compile gives
the optimizer a small program around one predictor, with that stage's examples and metric:

- ``system1``: System 1's step solver on the steps recorded by ``scale calibrate``
  (``labels.jsonl``); the target is System 2's value for the step in the same context (the gold
  answer for a one-step plan, where the step IS the problem). One call per candidate.
- ``decompose``: the decomposition, scored by whether solving its plan all-System-1 gives the
  gold answer (dev problems; no rating, no System 2).
- ``difficulty``: the prompted rating on the labelled steps, scored by how well it separates the
  steps System 1 got wrong (label 1) from the rest: ``1 - (score - label)^2`` per step, so the
  mean is one minus the rating's Brier score as a forecast of System 1's failure. One rating call
  per candidate.

The tuned predictor (instruction and demos) is then put into the program, which is scored on
whole problems as every compile is (dev and held-out, before and after).

Example:
    >>> examples = stage_examples("runs/cal/labels.jsonl", "system1")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy

from optimize.compiling.stage_programs import DecomposeStage, DifficultyMetric, DifficultyStage, System1Stage
from optimize.experiment import COMPILE_STAGES
from program.config import ConfigError
from program.scale.steps import NO_EARLIER_STEPS

__all__ = ["STAGES", "Stage", "stage_examples", "build_stage", "difficulty_label", "put_back"]

STAGES: tuple[str, ...] = COMPILE_STAGES
LABELLED: tuple[str, ...] = ("system1", "difficulty")  # stages whose examples come from a labels file


@dataclass(frozen=True)
class Stage:
    """What an optimizer gets for a stage: the student around one predictor, its examples and metric.

    ``predictor`` names the program's predictor the tuned copy replaces; ``metric`` is None for the
    compile metric (answer correctness).
    """

    name: str
    predictor: str
    student: dspy.Module
    examples: list[dspy.Example]
    metric: Any = None


def build_stage(name: str, program: dspy.Module, *, labels: str | Path | None,
                dev: Sequence[dspy.Example]) -> Stage:
    """The student, examples and metric of stage ``name`` for ``program`` (a built SCALE or cascade).

    Raises:
        ConfigError: an unknown stage, a stage the program never runs, or a labels file without examples.
    """
    if name not in STAGES[1:]:
        raise ConfigError(f"stage {name!r} has no stage-level program; stages: {', '.join(STAGES[1:])} "
                          "(or program, the whole program on dev problems).")
    idle = set(getattr(program, "idle_predictors", list)())
    if name in idle or not hasattr(program, name):
        raise ConfigError(f"stage {name!r}: this configuration never calls its `{name}` predictor "
                          f"(method {getattr(program, 'method', '?')}); compile a stage it runs, or "
                          "`stage: program`.")
    if name == "system1":
        student: dspy.Module = System1Stage(program.system1.deepcopy(), program.systems.system1)
        return Stage(name, "system1", student, stage_examples(_need(labels, name), name))
    if name == "difficulty":
        return Stage(name, "difficulty", DifficultyStage(program), stage_examples(_need(labels, name), name),
                     DifficultyMetric())
    examples = [_problem_example(e) for e in dev]
    return Stage(name, "decompose", DecomposeStage(program), examples)


def _problem_example(example: dspy.Example) -> dspy.Example:
    """A dev problem as a decomposition example (``problem`` in, the gold ``answer`` to reach)."""
    return dspy.Example(id=example.id, problem=example.problem, answer=example.answer).with_inputs("problem")


def difficulty_label(problem: dict[str, Any], step: dict[str, Any]) -> float:
    """1.0 where System 1 went wrong on the step: its value differs from System 2's in the same
    context, or, for a one-step plan, System 1's answer to the problem was wrong (as calibration does).

    Example:
        >>> difficulty_label({"steps": [{}], "s1_correct": False}, {"differs": False})
        1.0
    """
    if len(problem["steps"]) == 1:
        return 0.0 if problem.get("s1_correct") else 1.0
    return 1.0 if step.get("differs") else 0.0


def stage_examples(labels: Path | str, stage: str) -> list[dspy.Example]:
    """The examples of ``stage`` (system1 or difficulty) in a calibration labels file.

    Steps without the context they were shown (labels written by older versions), and for system1
    steps without a reference value, are left out.
    """
    if stage not in LABELLED:
        raise ConfigError(f"stage {stage!r} has no examples in a labels file; labelled stages: {', '.join(LABELLED)}.")
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
            shown, earlier = step.get("shown"), step.get("earlier")
            if one_step and not shown:  # a one-step plan was shown the problem, with nothing before it
                shown, earlier = problem["problem"], NO_EARLIER_STEPS
            if not shown:
                continue  # a label written before steps kept their context
            fields = {"id": f"{problem['id']}#{step['index']}", "problem": shown, "earlier_steps": earlier,
                      "current_step": step["step"]}
            if stage == "difficulty":
                example = dspy.Example(**fields, label=difficulty_label(problem, step))
            else:
                target = problem["gold"] if one_step else step.get("s2_value")
                if target is None:
                    continue
                example = dspy.Example(**fields, answer=str(target))
            examples.append(example.with_inputs("problem", "earlier_steps", "current_step"))
    if not examples:
        raise ConfigError(f"{path}: no step has a reference value and its context; label again with "
                          "`scale calibrate` (labels from this version keep each step's context).")
    return examples


def put_back(program: dspy.Module, stage: Stage, tuned_student: dspy.Module) -> dspy.Module:
    """A copy of ``program`` with the stage's predictor replaced by the tuned one (nothing else changes)."""
    tuned = program.deepcopy()
    setattr(tuned, stage.predictor, getattr(tuned_student, stage.predictor).deepcopy())
    return tuned


def _need(labels: str | Path | None, stage: str) -> str | Path:
    if not labels:
        raise ConfigError(f"`stage={stage!r}` needs `labels`: the labels.jsonl written by `scale calibrate`.")
    return labels

