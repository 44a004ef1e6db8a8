"""build_program: every method name builds a program with the same interface; bad names and options fail early."""

from __future__ import annotations

import dataclasses
import json

import dspy
import pytest

from program.config import METHODS, ConfigError, ProgramConfig, VoteConfig
from program.ledger import Ledger, recording
from program.methods import build_program
from program.presets import preset
from program.scale import MemoryPlanCache, Scale
from program.testing import function_lm, scripted_systems

PROBLEM = "What is 2 + 4?"


def stages(messages: list[dict[str, str]]) -> str:
    return "1. Find 2 + 4." if "Break the math problem" in messages[0]["content"] else "0.2"


def solver(messages: list[dict[str, str]]) -> str:
    return "2 + 4 = 6, so \\boxed{6}."


@pytest.mark.parametrize("method", METHODS)
def test_every_method_builds_and_answers_with_a_trace(method: str) -> None:
    config = ProgramConfig(method=method, vote=VoteConfig(samples=3))
    options = {"lm": function_lm(solver, "bf")} if method == "bf" else {}
    program = build_program(config, scripted_systems(stages, solver), **options)
    assert isinstance(program, dspy.Module)
    ledger = Ledger()
    with recording(ledger):
        prediction = program(problem=PROBLEM)
    assert prediction.answer == "6" and "boxed" in prediction.solution
    assert json.loads(json.dumps(prediction.trace))["failures"] == []
    assert all(predictor.lm is None for _, predictor in program.named_predictors())


@pytest.mark.parametrize(("method", "mode"), [("system1", "system1"), ("system2", "system2")])
def test_uniform_methods_are_scale_at_tau_one_and_minus_one_without_scoring(method: str, mode: str) -> None:
    program = build_program(ProgramConfig(method=method), scripted_systems(stages, solver))
    assert isinstance(program, Scale) and program.config.last_step_score is None
    ledger = Ledger()
    with recording(ledger):
        prediction = program(problem=PROBLEM)
    assert {s["mode"] for s in prediction.trace["steps"]} == {mode} and prediction.trace["method"] == method
    assert set(ledger.by_stage()) == {"decompose", mode}


def test_scale_options_pass_through_and_unknown_ones_are_named() -> None:
    cache = MemoryPlanCache()
    program = build_program(ProgramConfig(), scripted_systems(stages, solver), plan_cache=cache, decompose_retries=0)
    program(problem=PROBLEM)
    assert len(cache) == 1 and program.decompose_retries == 0
    with pytest.raises(ConfigError, match="'cot' takes no option.*'plan_cache'"):
        build_program(ProgramConfig(method="cot"), scripted_systems(stages, solver), plan_cache=cache)


def test_unknown_methods_raise_a_config_error() -> None:
    config = ProgramConfig()
    object.__setattr__(config, "method", "tree-of-thought")
    with pytest.raises(ConfigError, match="Unknown method 'tree-of-thought'"):
        build_program(config)


def test_bf_builds_its_budget_forced_lm_from_the_lm_config() -> None:
    config = ProgramConfig(method="bf", lm=preset("local"))
    program = build_program(config, thinking_budget=64, num_waits=2)
    engine = program._lm.value.engine
    assert engine.mode.thinking_budget == 64 and engine.forcing.num_waits == 2
    assert program.stage_name == "bf"


def test_default_systems_come_from_the_lm_config() -> None:
    program = build_program(dataclasses.replace(ProgramConfig(), lm=preset("qwen3")))
    assert [program.systems.stages.model, program.systems.system2.model] == ["scale/stages", "scale/system2"]


def test_scale_and_cascade_take_a_scale_config_and_systems_or_from_config_a_program_config() -> None:
    from program.config import ScaleConfig
    from program.scale.cascade import Cascade

    systems = scripted_systems(stages, solver)
    config = ProgramConfig(scale=ScaleConfig(threshold=0.3, system2_kind="vote"), vote=VoteConfig(samples=3))
    for kind in (Scale, Cascade):
        program = kind.from_config(config, systems)
        assert type(program) is kind and program.systems is systems and program.vote_config == config.vote
        assert program.config.threshold == 0.3 and program(problem=PROBLEM).answer == "6"
        mistake = rf"takes a ScaleConfig, got ProgramConfig; .*{kind.__name__}\.from_config"
        with pytest.raises(ConfigError, match=mistake):
            kind(config, systems)
        with pytest.raises(ConfigError, match="needs the LMs as a Systems, got NoneType"):
            kind(config.scale, None)
    assert Cascade.from_config(config, systems).config.last_step_score is None  # the cascade's one step
