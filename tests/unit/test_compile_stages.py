"""Stage-level compiling: the decomposition and the rating, each on its own examples and metric."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import dspy
import pytest

from optimize.calibration.labels import ProblemLabel, StepLabel
from optimize.compiling.compile import compile_experiment, dev_and_heldout
from optimize.compiling.optimizers import optimize_program
from optimize.compiling.stage import build_stage, difficulty_label, stage_examples
from optimize.compiling.stage_programs import DifficultyMetric
from optimize.experiment import CompileConfig
from program.config import ConfigError, ProgramConfig
from program.methods import build_program
from test_saved_program import builder, experiment, scripted


def write_labels(path: Path) -> Path:
    """Two problems: a two-step plan (System 1 wrong on step 2) and a one-step plan System 1 got right."""
    def step(i: int, text: str, s1: str, s2: str, earlier: str) -> StepLabel:
        return StepLabel(i, text, s1, s2, s1 != s2, {}, {}, 10, 20, shown="Tom has 2 apples and buys 3 more.",
                         earlier=earlier)

    two = ProblemLabel("p1", "Tom has 2 apples and buys 3 more.", "5",
                       [step(0, "Find the apples bought.", "3", "3", "(none)"),
                        step(1, "Find the total.", "6", "5", "Step 1: 3")], "6", "5", False, True, 30, 40, 0, 1.0)
    one = ProblemLabel("p2", "Ann has 4 pears and gets 1 more.", "5",
                       [StepLabel(0, "Solve the whole problem.", "5", "5", False, {}, {}, 10, 20)],
                       "5", "5", True, True, 10, 20, 0, 1.0)
    path.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in (two, one)))
    return path


def test_difficulty_labels_mark_the_steps_system1_got_wrong(tmp_path: Path) -> None:
    examples = stage_examples(write_labels(tmp_path / "labels.jsonl"), "difficulty")
    assert [(e.id, e.label) for e in examples] == [("p1#0", 0.0), ("p1#1", 1.0), ("p2#0", 0.0)]
    assert examples[1].earlier_steps == "Step 1: 3" and examples[2].problem == "Ann has 4 pears and gets 1 more."
    assert difficulty_label({"steps": [{}], "s1_correct": False}, {"differs": False}) == 1.0  # one step: the problem


def test_the_rating_metric_on_hand_made_ratings() -> None:
    metric, hard, easy = DifficultyMetric(), dspy.Example(label=1.0), dspy.Example(label=0.0)
    assert metric(hard, dspy.Prediction(score=1.0)) == 1.0 and metric(easy, dspy.Prediction(score=1.0)) == 0.0
    assert metric(hard, dspy.Prediction(score=0.5)) == 0.75 and metric(easy, None) == 0.0
    assert metric(hard, dspy.Prediction(score=0.6), trace=[]) is True
    assert metric(easy, dspy.Prediction(score=0.6), trace=[]) is False
    feedback = metric.feedback(hard, dspy.Prediction(score=0.2))
    assert feedback.score == pytest.approx(0.36) and "WRONG" in feedback.feedback and "0.20" in feedback.feedback


def test_a_difficulty_stage_compile_rates_once_per_candidate_and_tunes_only_the_rating(tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "labels.jsonl")
    systems = scripted()  # rates every step 0.3: right for the two easy steps, wrong for the hard one
    config = experiment(tmp_path, optimizer="bootstrap", stage="difficulty", labels=str(labels))
    program = build_program(config.program, systems)
    stage = build_stage("difficulty", program, labels=labels, dev=[])
    assert [name for name, _ in stage.student.named_predictors()] == ["difficulty"]
    tuned = optimize_program(stage.student, stage.examples, config=config.compile, prompt_lm=systems.stages,
                             metric=stage.metric)
    assert len(systems.stages.engine.requests) <= 3  # one rating call per labelled step, nothing else
    assert systems.system1.engine.requests == systems.system2.engine.requests == []
    assert tuned.difficulty.demos and all(d.score == 0.3 for d in tuned.difficulty.demos)
    result = compile_experiment(config, output_dir=tmp_path / "c", systems=scripted(), builder=builder(scripted()),
                                track=False, progress=False)
    assert result.program.difficulty.demos and not result.program.decompose.demos
    assert not result.program.system1.demos and not result.program.system2.demos


def test_a_decompose_stage_compile_scores_plans_by_their_all_system1_solve(tmp_path: Path) -> None:
    systems = scripted()
    config = experiment(tmp_path, optimizer="bootstrap", stage="decompose")
    dev, _ = dev_and_heldout(config.data)
    program = build_program(config.program, systems)
    stage = build_stage("decompose", program, labels=None, dev=dev)
    tuned = optimize_program(stage.student, stage.examples, config=config.compile, prompt_lm=systems.stages)
    assert tuned.decompose.demos and tuned.decompose.demos[0].steps
    ratings = [r for r in systems.stages.engine.requests if "Current step:" in r[-1]["content"]]
    assert ratings == [] and systems.system2.engine.requests == []  # no rating, no System 2: the plan and System 1
    assert systems.system1.engine.requests
    result = compile_experiment(config, output_dir=tmp_path / "c", systems=scripted(), builder=builder(scripted()),
                                track=False, progress=False)
    assert result.program.decompose.demos and not result.program.difficulty.demos
    assert json.loads((tmp_path / "c" / "metadata.json").read_text())["optimizer"]["stage"] == "decompose"


def test_a_stage_the_configuration_never_runs_is_refused(tmp_path: Path) -> None:
    systems = scripted()
    cascade = build_program(ProgramConfig(method="cascade"), systems)
    with pytest.raises(ConfigError, match="never calls its `decompose` predictor"):
        build_stage("decompose", cascade, labels=None, dev=[])
    attempt = build_program(replace(ProgramConfig(), scale=replace(ProgramConfig().scale,
                                                                   difficulty_source="attempt")), systems)
    with pytest.raises(ConfigError, match="never calls its `difficulty` predictor"):
        build_stage("difficulty", attempt, labels=tmp_path / "x.jsonl", dev=[])
    with pytest.raises(ConfigError, match="needs `labels`"):
        CompileConfig(stage="difficulty")
    CompileConfig(stage="decompose")  # the decomposition is scored on dev problems: no labels needed
