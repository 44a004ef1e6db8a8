"""Compile: every optimizer on a tiny scripted dev set, the metric, feedback, budgets, MLflow, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import dspy
import mlflow
import pytest

from data.errors import DataError
from optimize.cli import main
from optimize.compiling.compile import compile_experiment, dev_and_heldout, log_program_model
from optimize.compiling.optimizers import CompileMetric, Metered, budget_warnings
from optimize.compiling.saved import load_program
from optimize.experiment import CompileConfig, save_experiment
from program.methods import build_program
from test_saved_program import PROBLEM, builder, experiment, requests, scripted

OFFLINE = ["--api-base", "http://127.0.0.1:9/v1"]  # a named server: the embedded one is not started
APPLES = dspy.Example(id="x", problem=PROBLEM, answer="7").with_inputs("problem")


def instructions(program: dspy.Module) -> str:
    return " ".join(p.signature.instructions for _, p in program.named_predictors())


def test_a_dev_split_from_a_test_set_is_refused(tmp_path: Path) -> None:
    config = experiment(tmp_path)
    config = replace(config, data=replace(config.data, dev="gsm8k:5"))
    with pytest.raises(DataError, match="names the test set 'gsm8k'.*train pool only"):
        compile_experiment(config, systems=scripted(), track=False)


def test_dev_and_heldout_are_disjoint_slices_of_one_pool(tmp_path: Path) -> None:
    dev, heldout = dev_and_heldout(experiment(tmp_path).data)
    assert len(dev) == 5 and len(heldout) == 2
    assert not {e.id for e in dev} & {e.id for e in heldout}


def test_token_penalty_charges_the_problems_own_ledger(tmp_path: Path) -> None:
    program = Metered(build_program(experiment(tmp_path).program, scripted()))
    prediction = program(problem=PROBLEM)
    tokens = prediction._scale_ledger.totals()["total_tokens"]
    assert tokens > 0 and prediction.answer == "7"
    assert CompileMetric(0.5)(APPLES, prediction) == pytest.approx(1 - 0.5 * tokens / 1000)
    assert CompileMetric(0.5)(APPLES, prediction, trace=[]) is True  # bootstrapping wants a verdict
    wrong = dspy.Example(problem=PROBLEM, answer="8")
    assert CompileMetric(0.5)(wrong, prediction) < 0 and CompileMetric(0.5)(wrong, prediction, trace=[]) is False
    assert CompileMetric()(APPLES, None) == 0.0  # a program that raised (SIMBA passes None)


def test_gepa_feedback_says_what_went_wrong_and_where(tmp_path: Path) -> None:
    program = Metered(build_program(experiment(tmp_path).program, scripted(careless=True)))
    prediction = program(problem=PROBLEM)
    outputs = dspy.Prediction(steps=["Find the total number of apples."])
    result = CompileMetric(0.1).feedback(APPLES, prediction, None, "decompose", [(None, {}, outputs)])
    assert result.score == CompileMetric(0.1)(APPLES, prediction) < 0
    lines = result.feedback.splitlines()
    assert lines[0] == "Wrong: the gold answer is 7, the program answered 8."
    assert lines[1].startswith("It used ") and "of the score" in lines[1]
    assert "Step 1 (difficulty 0.90, system2): Find the total number of apples. -> result 8" in lines
    assert lines[-1].startswith("The predictor being tuned (decompose) produced: {'steps': ['Find the total")
    right = CompileMetric().feedback(APPLES, dspy.Prediction(answer="7"))
    assert right.score == 1.0 and right.feedback.startswith("Correct")


@pytest.mark.parametrize("options, dev, expected", [
    ({"optimizer": "bootstrap"}, 4, "dev set has 4 problems"),
    ({"optimizer": "bootstrap", "max_bootstrapped_demos": 0, "max_labeled_demos": 0}, 20, "nothing will change"),
    ({"optimizer": "mipro", "num_trials": 1}, 20, "nothing to choose between"),
    ({"optimizer": "random-search", "num_candidates": 1}, 20, "no search"),
    ({"optimizer": "gepa", "max_metric_calls": 30}, 20, "max_metric_calls=30 < 2 x dev size"),
    ({"optimizer": "simba", "num_trials": 1}, 20, "one step"),
])
def test_budgets_too_small_to_mean_anything_are_named(options: dict, dev: int, expected: str) -> None:
    found = budget_warnings(CompileConfig(**options), dev_size=dev, val_size=5)
    assert len(found) == 1 and expected in found[0]
    assert budget_warnings(CompileConfig(optimizer="none"), dev_size=1) == []
    assert "val = 0" in budget_warnings(CompileConfig(), dev_size=20, val_size=0)[0]


@pytest.mark.parametrize("optimizer, careless, tuned", [
    ("none", False, None),
    ("bootstrap", False, "demos"),
    ("random-search", False, None),  # every candidate scores 100%: the zero-shot one may win
    ("mipro", True, "instructions"),
    ("gepa", True, "instructions"),
    ("simba", True, None),  # runs; whether its advice lands is up to its sampling
])
def test_each_optimizer_compiles_saves_and_loads(tmp_path: Path, optimizer: str, careless: bool,
                                                 tuned: str | None) -> None:
    result = compile_experiment(experiment(tmp_path, optimizer=optimizer), systems=scripted(careless),
                                track=False, progress=False)
    assert result.scores["dev"]["n"] == 5 and result.scores["heldout"]["n"] == 2
    demos = sum(len(p.demos) for _, p in result.program.named_predictors())
    if tuned == "demos":
        assert demos > 0
    if tuned == "instructions":  # the baseline is wrong on every problem; the tuned plan says "carefully"
        assert "carefully" in instructions(result.program) or "A fine" in instructions(result.program)
        assert result.scores["dev"]["accuracy"] == 100.0
    systems = scripted(careless)
    loaded = load_program(result.directory, systems=systems, builder=builder(systems))
    assert loaded.metadata["optimizer"]["name"] == optimizer
    assert loaded.metadata["scores"]["dev"] == result.scores["dev"]
    assert loaded.metadata["data"]["dev"]["ids"] == [e.id for e in dev_and_heldout(result.config.data)[0]]


@pytest.mark.parametrize("optimizer, careless", [("bootstrap", False), ("gepa", True)])
def test_compile_save_load_round_trip_sends_the_same_requests(tmp_path: Path, optimizer: str, careless: bool) -> None:
    result = compile_experiment(experiment(tmp_path, optimizer=optimizer), systems=scripted(careless),
                                track=False, progress=False)
    compiled_systems, loaded_systems = scripted(careless), scripted(careless)
    original = build_program(result.config.program, compiled_systems)
    original.load_state(result.program.dump_state())
    loaded = load_program(result.directory, systems=loaded_systems, builder=builder(loaded_systems)).program
    other = "Sue has 10 apples and buys 5 more. How many apples?"
    assert loaded(problem=other).answer == original(problem=other).answer == "15"
    assert requests(loaded_systems) == requests(compiled_systems)


def test_mlflow_run_has_params_scores_artifacts_traces_and_a_loadable_model(tmp_path: Path) -> None:
    result = compile_experiment(experiment(tmp_path, optimizer="bootstrap"), systems=scripted(),
                                trace=True, progress=False, log_model=True)  # the MLflow model is opt-in
    client = mlflow.MlflowClient(result.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["compile.optimizer"] == "bootstrap" and run.data.params["dev_size"] == "5"
    assert run.data.metrics["dev_accuracy"] == 100.0 and "heldout_score" in run.data.metrics
    files = {a.path for a in client.list_artifacts(result.run_id, "program_dir")}
    assert {"program_dir/program.json", "program_dir/config.yaml", "program_dir/metadata.json"} <= files
    assert run.data.metrics["optimizer_seconds"] >= 0
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(result.tracking_uri)  # traces and models:/ URIs resolve through the tracking store
    assert mlflow.get_active_model_id() is None  # compiling leaves no global MLflow model behind
    try:
        assert mlflow.search_traces(locations=[run.info.experiment_id], run_id=result.run_id, return_type="list")
        model = mlflow.dspy.load_model(result.model_uri)
    finally:  # load_model makes the model "active" for the process: later metrics would link to it
        mlflow.clear_active_model()
        mlflow.set_tracking_uri(previous)
    assert model(problem=PROBLEM).answer == "7"
    assert sum(len(p.demos) for _, p in model.named_predictors()) > 0


def test_a_model_holding_a_key_value_is_not_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PROVIDER_API_KEY", "planted-secret-value-9000")
    program = build_program(experiment(tmp_path).program, scripted())
    program.system1.signature = program.system1.signature.with_instructions("key planted-secret-value-9000")
    with mlflow.start_run(), pytest.raises(RuntimeError, match="Refusing to log"):
        log_program_model(program)


def test_cli_compile_prints_where_things_are_and_refuses_a_test_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("program.clients.lm.build_systems", lambda lm: scripted())
    config_file = save_experiment(experiment(tmp_path), tmp_path / "experiment.yaml")
    out_dir = tmp_path / "compiled"
    argv = ["compile", "--config", str(config_file), "--optimizer", "none", "--dev", "gsm8k_train:3", "--val", "1",
            "--output", str(out_dir), "--no-mlflow", "--no-progress", *OFFLINE]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"Program:  {out_dir}" in out and "Dev:      accuracy 100.0% on 3 problems" in out
    assert json.loads((out_dir / "metadata.json").read_text())["optimizer"]["name"] == "none"
    assert main([*argv[:5], "--dev", "gsm8k:3", *argv[7:]]) == 2
    assert "names the test set 'gsm8k'" in capsys.readouterr().err


def test_tokens_fall_back_to_the_traces_step_usage() -> None:
    from optimize.compiling.optimizers import prediction_tokens

    trace = {"steps": [{"usage": {"prompt_tokens": 10, "completion_tokens": 5}}, {"usage": {"prompt_tokens": 1}}]}
    assert prediction_tokens(dspy.Prediction(answer="7", trace=trace)) == 16
    assert prediction_tokens(dspy.Prediction(answer="7")) == 0 and prediction_tokens(None) == 0


def test_a_predictor_that_never_runs_is_not_offered_to_the_optimizer(monkeypatch: pytest.MonkeyPatch) -> None:
    from optimize.compiling import optimizers
    from program.config import ScaleConfig
    from program.scale import Scale
    from program.scale.cascade import Cascade
    from program.testing import scripted_systems

    seen: list[list[str]] = []

    class Recording:
        def compile(self, student: dspy.Module, trainset: list) -> dspy.Module:
            seen.append(sorted(name.removeprefix("program.") for name, _ in student.named_predictors()))
            tuned = student.deepcopy()
            for _, predictor in tuned.named_predictors():
                predictor.demos = [dspy.Example(problem="tuned")]
            return tuned

    monkeypatch.setattr(optimizers, "build_optimizer", lambda *a, **k: Recording())
    trainset = [dspy.Example(problem="p", answer="1").with_inputs("problem")]
    systems = scripted_systems(str, str)
    scale = Scale(ScaleConfig(threshold=0.5), systems)
    tuned = optimizers.optimize_program(scale, trainset, config=CompileConfig(optimizer="bootstrap"), prompt_lm=None)
    assert seen[-1] == ["decompose", "difficulty", "system1", "system2"]  # k = 1, rewrite off
    assert sorted(name for name, _ in tuned.named_predictors()) == [
        "decompose", "difficulty", "rewrite", "select", "system1", "system2"]  # all back, for saving
    assert tuned.select.demos == [] and tuned.system1.demos  # the idle ones untouched, the others tuned
    assert tuned.select is not scale.select and scale.system1.demos == []
    optimizers.optimize_program(Cascade(ScaleConfig(difficulty_source="attempt"), systems), trainset,
                                config=CompileConfig(optimizer="bootstrap"), prompt_lm=None)
    assert seen[-1] == ["system1", "system2"]  # no plan, and the attempt needs no rating


def test_every_compile_scores_the_untuned_program_on_the_same_problems(tmp_path: Path) -> None:
    systems = scripted(careless=True)
    result = compile_experiment(experiment(tmp_path, optimizer="bootstrap"), output_dir=tmp_path / "c",
                                systems=systems, builder=builder(systems), track=False, progress=False)
    for split in ("dev", "heldout"):
        change = result.scores[f"{split}_change"]
        assert change["n"] == result.scores[split]["n"] == result.scores[f"{split}_before"]["n"]
        assert change["difference"] == result.scores[split]["accuracy"] - result.scores[f"{split}_before"]["accuracy"]
        assert change["low"] <= change["difference"] <= change["high"]
    metadata = json.loads((tmp_path / "c" / "metadata.json").read_text())
    assert set(metadata["scores"]) >= {"dev", "heldout", "dev_before", "heldout_before", "heldout_change"}


def test_auto_budgets_go_to_mipro_and_gepa_only() -> None:
    from optimize.compiling.optimizers import build_optimizer
    from program.testing import function_lm

    lm = function_lm(str)
    mipro = build_optimizer(CompileConfig(optimizer="mipro", auto="light"), CompileMetric(), prompt_lm=lm, dev_size=10)
    gepa = build_optimizer(CompileConfig(optimizer="gepa", auto="medium"), CompileMetric(), prompt_lm=lm, dev_size=10)
    assert mipro.auto == "light" and gepa.auto == "medium"
    with pytest.raises(Exception, match="sizes MIPROv2 and GEPA budgets only"):
        CompileConfig(optimizer="bootstrap", auto="light")


def test_a_system1_stage_compile_costs_one_call_per_candidate_and_tunes_only_system1(tmp_path: Path) -> None:
    from optimize.calibration.labels import ProblemLabel, StepLabel
    from program.scale.cascade import WHOLE_PROBLEM

    labels = tmp_path / "labels.jsonl"
    with labels.open("w") as out:
        for i in range(20, 26):  # pool problems outside the dev and held-out slices
            problem = f"Tom has {i + 2} apples and buys {i + 3} more. How many apples?"
            step = StepLabel(0, WHOLE_PROBLEM, None, None, True, {}, {}, 1, 1)  # one step: its context is implied
            out.write(json.dumps(ProblemLabel(f"a{i}", problem, str(2 * i + 5), [step], None, None, False, True,
                                              1, 1, 0, 1.0).to_dict()) + "\n")
    systems = scripted()
    config = experiment(tmp_path, optimizer="bootstrap", stage="system1", labels=str(labels))
    result = compile_experiment(config, output_dir=tmp_path / "c", systems=systems, builder=builder(systems),
                                track=False, progress=False)
    tuned = result.program
    assert tuned.system1.demos and tuned.system1.demos[0].current_step == WHOLE_PROBLEM
    assert not tuned.decompose.demos and not tuned.difficulty.demos and not tuned.system2.demos
    metadata = json.loads((tmp_path / "c" / "metadata.json").read_text())
    assert metadata["optimizer"]["stage"] == "system1" and metadata["optimizer"]["labels"] == str(labels)
    assert result.scores["heldout_change"]["n"] == 2
    label_problems = [f"Tom has {i + 2} apples" for i in range(20, 26)]
    planned = [r for r in systems.stages.engine.requests if any(p in r[-1]["content"] for p in label_problems)]
    solved = [r for r in systems.system1.engine.requests if any(p in r[-1]["content"] for p in label_problems)]
    assert planned == [] and 1 <= len(solved) <= 6  # each candidate: one System 1 call, no plan, no rating


def test_stage_examples_need_a_labels_file_with_step_contexts(tmp_path: Path) -> None:
    from optimize.compiling.stage import stage_examples
    from program.config import ConfigError

    with pytest.raises(ConfigError, match="scale calibrate"):
        stage_examples(tmp_path / "none.jsonl", "system1")
    with pytest.raises(ConfigError, match="needs `labels`"):
        CompileConfig(stage="system1")


def test_gepa_reflects_with_the_configured_reflection_lm(tmp_path: Path) -> None:
    from optimize.compiling.optimizers import build_optimizer
    from optimize.experiment import experiment_from_dict, experiment_to_dict
    from program.clients.lm import build_mode_lm
    from program.config import ConfigError

    data = experiment_to_dict(experiment(tmp_path, optimizer="gepa"))
    data["compile"]["reflection"] = {"endpoint": {"model": "openai/strong", "api_base": "http://h:9/v1"},
                                     "temperature": 1.0, "max_tokens": 8000}
    config = experiment_from_dict(data, where="test")
    reflection = build_mode_lm(config.program.lm, config.compile.reflection, "reflection")
    assert reflection.kwargs["temperature"] == 1.0 and reflection.kwargs["max_tokens"] == 8000
    assert reflection.engine.endpoint.model == "openai/strong"
    stages = scripted().stages
    gepa = build_optimizer(config.compile, CompileMetric(), prompt_lm=stages, dev_size=5, reflection_lm=reflection)
    assert gepa.reflection_lm is reflection
    assert build_optimizer(config.compile, CompileMetric(), prompt_lm=stages, dev_size=5).reflection_lm is stages
    data["compile"]["optimizer"] = "bootstrap"
    with pytest.raises(ConfigError, match="GEPA's reflection LM"):
        experiment_from_dict(data, where="test")
