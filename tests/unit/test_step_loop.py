"""One step loop: SCALE's ``solve_in_order``, reused by the decomposition's compile stage and the calibration labels."""

from __future__ import annotations

import ast
from pathlib import Path

import dspy
import pytest

from optimize.calibration.labels import label_problem
from optimize.compiling.stage_programs import DecomposeStage
from program.clients.lm import Systems
from program.config import ScaleConfig
from program.scale import Scale
from program.testing import function_lm
from tests.unit.test_scale_module import PROBLEM, STEPS, boxed_solver, field, stages_responder

ROOT = Path(__file__).resolve().parents[2]


def _calls_render_context(path: Path) -> bool:
    return any(isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
               == "render_context" for node in ast.walk(ast.parse(path.read_text())))


@pytest.mark.parametrize("package", ["program", "optimize"])
def test_only_the_step_loop_renders_the_earlier_steps(package: str) -> None:
    """A module that renders solved steps itself has written its own step loop again."""
    own = [str(p.relative_to(ROOT)) for p in sorted((ROOT / package).rglob("*.py"))
           if p != ROOT / "program" / "scale" / "steps.py" and _calls_render_context(p)]
    assert not own, f"{own} render earlier steps: use program.scale.steps.solve_in_order"


def systems() -> Systems:
    """Scripted LMs; System 1 has a cap (the labels' attempt source reads it)."""
    return Systems(stages=function_lm(stages_responder(), "stages"),
                   system1=function_lm(boxed_solver("fast"), "system1", max_tokens=200),
                   system2=function_lm(boxed_solver("slow"), "system2"))


def earlier_seen(requests: list) -> list[str]:
    return [field(messages, "Earlier steps") for messages in requests]


def test_the_compile_stage_and_the_labels_see_the_context_scale_shows() -> None:
    config = ScaleConfig(threshold=1.0, last_step_score=None, context="final_value")
    scale_systems = systems()
    Scale(config, scale_systems)(problem=PROBLEM)  # all System 1: tau = 1
    expected = earlier_seen(scale_systems.system1.engine.requests)
    assert len(expected) == 3 and "Result: 1" in expected[1] and "Result: 2" in expected[2]

    stage_systems = systems()
    prediction = DecomposeStage(Scale(config, stage_systems))(problem=PROBLEM)
    assert prediction.steps == STEPS and earlier_seen(stage_systems.system1.engine.requests) == expected

    label_systems = systems()
    label = label_problem(Scale(config, label_systems), dspy.Example(id="p", problem=PROBLEM, answer="3"),
                          ["attempt:length"])
    assert earlier_seen(label_systems.system1.engine.requests) == expected  # the all-System-1 chain
    s2 = earlier_seen(label_systems.system2.engine.requests)
    assert s2[:3] == expected  # each step's label call, in System 1's context
    assert s2[3:] == expected[1:]  # the all-System-2 chain (its step 1 is step 1's label call)
    assert label.s2_answer == "3" and label.s1_answer == "3"
