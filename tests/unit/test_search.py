"""optimize.search.run / objective / space / study: the Optuna search on scripted LMs (no network, no model)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import dspy
import optuna
import pytest
from optuna.trial import FixedTrial, TrialState

from optimize.experiment import DataConfig, ExperimentConfig, SearchConfig, TrackingConfig, load_experiment
from optimize.search.objective import SearchObjective
from optimize.search.plans import PlanStore, plan_key
from optimize.search.run import PARENT_RUN_ATTR, run_search
from program.clients.lm import Systems
from program.config import ConfigError, ProgramConfig
from program.testing import scripted_systems

optuna.logging.set_verbosity(optuna.logging.WARNING)

DECOMPOSE = "Break the math problem"
RATE = "Rate how hard"
PLAN = "1. Find the first number, call it A.\n2. Find the second number, call it B.\n3. Find the sum of A and B."


def toy_examples(n: int = 3) -> list[dspy.Example]:
    return [dspy.Example(id=f"toy-{i}", problem=f"What is {i} + {i}?", answer=str(2 * i),
                         benchmark="toy").with_inputs("problem") for i in range(1, n + 1)]


def _text(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


def stages(messages: list[dict[str, str]]) -> str:
    text = _text(messages)
    if DECOMPOSE in text:
        return PLAN
    current = messages[-1]["content"].split("Current step:")[-1]
    return "0.3" if "first" in current else "0.6"  # the last step is forced to 0.9 (reference rule)


def _solver(slow: bool) -> Any:
    def solve(messages: list[dict[str, str]]) -> str:
        current = messages[-1]["content"].split("Current step:")[-1]  # earlier messages may be demos
        number = int(re.search(r"What is (\d+) \+", messages[-1]["content"]).group(1))
        if "sum" in current:  # only the careful solver gets the final step right
            value = 2 * number if slow else 0
        else:
            value = number
        return (f"Thinking it through carefully, one step at a time, the value is \\boxed{{{value}}}" if slow
                else f"\\boxed{{{value}}}")
    return solve


def toy_systems() -> Systems:
    return scripted_systems(stages, _solver(slow=False), _solver(slow=True))


def stage_requests(systems: Systems) -> dict[str, int]:
    requests = systems.stages.engine.requests
    return {"decompose": sum(DECOMPOSE in _text(r) for r in requests),
            "difficulty": sum(RATE in _text(r) for r in requests)}


def experiment(tmp_path: Path, **search: Any) -> ExperimentConfig:
    """The toy study; tau is sampled (the mechanics of trials, resume, workers), unless ``tau="curve"``."""
    space = search.pop("space", {"threshold": [0.0, 1.0], "num_waits": 0})
    search.setdefault("tau", "sample")
    search.setdefault("heldout", 0)  # no confirmation unless a test asks (it would load the real pool)
    return ExperimentConfig(name="toy", program=ProgramConfig(method="scale"),
                            data=DataConfig(dev="gsm8k_train:3"),
                            search=SearchConfig(trials=4, study="toy-study", space=space, **search),
                            tracking=TrackingConfig(output_dir=str(tmp_path / "runs"),
                                                    mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))


def search(config: ExperimentConfig, systems: Systems | None = None, **kwargs: Any) -> Any:
    kwargs.setdefault("tracking", False)
    return run_search(config, systems=systems or toy_systems(), examples=toy_examples(), progress=False, **kwargs)


# --- the objective -----------------------------------------------------------------------------

def test_objective_runs_under_fixed_trial(tmp_path: Path) -> None:
    config = experiment(tmp_path)
    objective = SearchObjective(config, toy_examples(), run_dir=tmp_path / "run", systems=toy_systems())
    careful, fast = FixedTrial({"threshold": 0.2}), FixedTrial({"threshold": 0.95})
    accuracy, tokens = objective(careful)
    fast_accuracy, fast_tokens = objective(fast)
    assert (accuracy, fast_accuracy) == (100.0, 0.0)  # tau 0.95: the last step stays in System 1
    assert tokens > fast_tokens > 0
    attrs = careful.user_attrs
    assert attrs["values"] == {"method": "scale", "threshold": 0.2, "num_waits": 0}
    assert attrs["program_config"]["scale"]["threshold"] == 0.2
    assert attrs["system2_share"] == 100.0 and attrs["n"] == 3
    assert attrs["true_cost_tokens"] == attrs["spent_tokens"] > 0  # no plan reuse without a store
    # the minimised tokens are response tokens (the papers' "Tok"); prompts are reported beside them
    assert attrs["token_objective"] == "completion" and tokens == attrs["objective_tokens"] < attrs["mean_tokens"]
    assert Path(attrs["results_path"]).is_file()
    saved = load_experiment(Path(attrs["results_path"]).parent / "config.yaml")  # what the results are of
    assert saved.program.scale.threshold == 0.2


def test_plans_are_made_once_and_reused_by_every_trial_and_process(tmp_path: Path) -> None:
    systems = toy_systems()
    store = PlanStore(tmp_path / "plans.jsonl")
    objective = SearchObjective(experiment(tmp_path), toy_examples(), run_dir=tmp_path / "run", systems=systems,
                                plans=store)
    first = FixedTrial({"threshold": 0.2})
    objective(first)
    after_first = stage_requests(systems)
    assert after_first == {"decompose": 3, "difficulty": 6}  # 3 problems, 2 rated steps each
    second = FixedTrial({"threshold": 0.5}, number=1)
    objective(second)
    assert stage_requests(systems) == after_first  # no decomposition or difficulty call in trial 2
    # the reused plan still counts in the configuration's true cost, not in what the search spent
    assert second.user_attrs["true_cost_tokens"] > second.user_attrs["spent_tokens"]
    plan_tokens = first.user_attrs["true_cost_tokens"] - first.user_attrs["spent_tokens"]
    assert plan_tokens == 0 and len(store) == 3

    # another process (a new store on the same file) reuses them too
    fresh = toy_systems()
    other = SearchObjective(experiment(tmp_path), toy_examples(), run_dir=tmp_path / "run2", systems=fresh,
                            plans=PlanStore(tmp_path / "plans.jsonl"))
    other(FixedTrial({"threshold": 0.7}))
    assert stage_requests(fresh) == {"decompose": 0, "difficulty": 0}


def test_plans_are_not_shared_across_plan_settings(tmp_path: Path) -> None:
    systems = toy_systems()
    config = experiment(tmp_path, space={"threshold": [0.0, 1.0], "num_candidates": {"choices": [1, 2]}})
    objective = SearchObjective(config, toy_examples(1), run_dir=tmp_path / "run", systems=systems,
                                plans=PlanStore(tmp_path / "plans.jsonl"))
    objective(FixedTrial({"threshold": 0.2, "num_candidates": 1}))
    objective(FixedTrial({"threshold": 0.2, "num_candidates": 2}))
    assert stage_requests(systems)["decompose"] == 1 + 2  # k = 2 is a new plan: two candidates


def test_a_search_over_system2_kind_plans_each_problem_once(tmp_path: Path) -> None:
    """What System 2 is does not change a plan (``Scale.plan_settings``): the second kind reuses the first's plans."""
    systems = toy_systems()
    config = experiment(tmp_path, space={"threshold": 0.2, "system2_kind": {"choices": ["think", "vote"]}})
    objective = SearchObjective(config, toy_examples(), run_dir=tmp_path / "run", systems=systems,
                                plans=PlanStore(tmp_path / "plans.jsonl"))
    objective(FixedTrial({"system2_kind": "think"}))
    planned = stage_requests(systems)
    objective(FixedTrial({"system2_kind": "vote"}, number=1))
    assert planned == stage_requests(systems) == {"decompose": 3, "difficulty": 6}  # 3 problems, planned once


def test_the_plan_key_follows_the_plan_settings() -> None:
    from program.config import ScaleConfig
    from program.methods import build_program

    def key(method: str = "scale", **scale: Any) -> str:
        config = ProgramConfig(method=method, scale=ScaleConfig(**scale))
        return plan_key(build_program(config, toy_systems()), config)

    assert key() == key(threshold=0.9) == key(system2_kind="vote") == key(context="final_value")
    assert key() != key("cascade")  # a one-step plan is no SCALE plan
    assert key(num_candidates=2) != key(num_candidates=2, candidate_temperature=1.0)  # k > 1 samples candidates
    assert key() == key(candidate_temperature=1.0)  # k = 1 samples nothing


# --- the study ---------------------------------------------------------------------------------

def test_paper_settings_run_first_and_a_resume_runs_only_the_missing_trials(tmp_path: Path) -> None:
    config = experiment(tmp_path)
    first = search(config, trials=2)
    assert first.ran == 2
    trials = first.study.get_trials()
    assert [t.params["threshold"] for t in trials] == [0.2, 0.5]  # the paper's best, the reference default
    second = search(config, trials=4)
    assert second.ran == 2
    trials = second.study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sum(bool(t.user_attrs.get("seed")) for t in trials) == 2  # not enqueued again on resume
    assert search(config, trials=4).ran == 0
    assert second.totals["spent_tokens"] < second.totals["true_cost_tokens"]  # plans were reused


def test_named_settings_run_before_the_paper_ones_and_a_bad_one_fails_before_any_call(tmp_path: Path) -> None:
    config = experiment(tmp_path, enqueue=[{"threshold": 0.95}, {"threshold": 0.7}])
    trials = search(config, trials=3).study.get_trials()
    assert [t.params["threshold"] for t in trials] == [0.95, 0.7, 0.2]  # then the paper's best
    systems = toy_systems()
    with pytest.raises(ConfigError, match=r"threshold=-0.5 lies outside scale's space: \[0.0, 1.0\]"):
        search(experiment(tmp_path / "bad", enqueue=[{"threshold": -0.5}]), systems=systems, trials=1)
    assert not systems.stages.engine.requests and not (tmp_path / "bad" / "runs").exists()  # nothing asked, no study
    with pytest.raises(ConfigError, match="must be a list of settings"):
        SearchConfig(enqueue={"threshold": 0.5})  # type: ignore[arg-type]


def test_a_failed_trial_is_recorded_with_its_reason_and_the_study_goes_on(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    original = SearchObjective.build
    calls = {"n": 0}

    def flaky(self: SearchObjective, config: ProgramConfig) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the GPU caught fire")
        return original(self, config)

    monkeypatch.setattr(SearchObjective, "build", flaky)
    result = search(experiment(tmp_path), trials=3)
    states = [t.state for t in result.study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    failed = result.study.trials[1]
    assert failed.user_attrs["fail_reason"] == "RuntimeError: the GPU caught fire"
    assert result.totals == {**result.totals, "trials": 3, "failed": 1, "complete": 2}
    assert search(experiment(tmp_path), trials=3).ran == 0  # a failed trial is finished: never redone


def test_a_trial_whose_every_problem_failed_is_a_failed_trial(tmp_path: Path) -> None:
    def broken(messages: list[dict[str, str]]) -> str:
        raise ConnectionError("solver unreachable")

    objective = SearchObjective(experiment(tmp_path), toy_examples(2), run_dir=tmp_path / "run",
                                systems=scripted_systems(stages, broken))
    trial = FixedTrial({"threshold": 0.5})
    with pytest.raises(RuntimeError, match="all 2 problems failed"):
        objective(trial)
    assert "solver unreachable" in trial.user_attrs["fail_reason"]


def test_an_interrupted_trial_is_retried_on_resume_and_does_not_count(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    original = SearchObjective.build
    calls = {"n": 0}

    def interrupted(self: SearchObjective, config: ProgramConfig) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, config)

    monkeypatch.setattr(SearchObjective, "build", interrupted)
    config = experiment(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        search(config, trials=3)
    result = search(config, trials=3)
    trials = result.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE,
                                         TrialState.COMPLETE]
    assert trials[1].user_attrs["interrupted"] and trials[2].user_attrs["retry_of"] == 1
    assert trials[2].params == trials[1].params and result.totals["trials"] == 3


def test_a_server_that_stays_down_stops_the_search_and_the_trial_runs_again(tmp_path: Path) -> None:
    from program.errors import ServerError

    def down(messages: list[dict[str, str]]) -> str:
        raise ServerError("The LLM server http://127.0.0.1:9/v1 failed after 4 attempts")

    config = experiment(tmp_path)
    with pytest.raises(ServerError, match="problems in a row failed with server errors"):
        search(config, systems=scripted_systems(down, down), trials=2)
    result = search(config, trials=2)
    trials = result.study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[0].user_attrs["interrupted"] and "server errors" in trials[0].user_attrs["fail_reason"]
    assert trials[2].user_attrs["retry_of"] == 0 and result.totals["trials"] == 2


def test_a_trial_left_running_by_a_dead_worker_runs_again(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from optimize.search.study import WORKER_ATTR

    config = experiment(tmp_path)
    first = search(config, trials=1)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = first.study.ask({"threshold": optuna.distributions.FloatDistribution(0.0, 1.0)})
    orphan.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{dead.stdout.strip()}")  # killed mid-trial
    result = search(config, trials=2)
    trials = result.study.get_trials()
    assert trials[orphan.number].state == TrialState.FAIL and trials[orphan.number].user_attrs["interrupted"]
    assert [t.user_attrs.get("retry_of") for t in trials if t.state == TrialState.COMPLETE] == [None, orphan.number]
    assert trials[-1].params == trials[orphan.number].params and result.totals["trials"] == 2


def test_every_trial_is_a_child_run_of_the_study_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from optimize.tracking import Tracker

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact folder is relative to the working directory
    config = experiment(tmp_path)
    result = search(config, trials=3, tracking=True)
    parent = result.study.user_attrs[PARENT_RUN_ATTR]
    assert parent == result.parent_run_id
    tracker = Tracker.create(config.tracking.mlflow_uri, config.tracking.mlflow_experiment)
    children = tracker.children(parent)
    assert sorted(run.data.params["trial"] for run in children) == ["0", "1", "2"]
    child = children[0]
    assert {"accuracy", "mean_tokens", "true_cost_tokens", "spent_tokens", "wall_seconds"} <= set(child.data.metrics)
    assert {a.path for a in tracker.client.list_artifacts(child.info.run_id)} >= {"results.jsonl", "summary.json"}
    assert tracker.client.get_run(parent).info.status == "FINISHED"
    assert "pareto" in {a.path for a in tracker.client.list_artifacts(parent)}
    assert result.artifact_uri == tracker.client.get_run(parent).info.artifact_uri
    # a resume logs under the same parent run
    more = search(config, trials=4, tracking=True)
    assert more.parent_run_id == parent and len(tracker.children(parent)) == 4


def test_front_is_exported_plotted_and_loadable(tmp_path: Path) -> None:
    config = experiment(tmp_path)
    result = search(config, trials=4)
    assert result.front and result.plot.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in result.exported] == [f"trial-{p.trial}.yaml" for p in result.front]
    for point, path in zip(result.front, result.exported, strict=True):
        loaded = load_experiment(path)
        assert loaded.program.scale.threshold == result.study.trials[point.trial].params["threshold"]
        assert loaded.name == f"toy-trial-{point.trial}"
    assert result.dashboard_command == f"optuna-dashboard sqlite:///{(config.run_dir / 'optuna.db').resolve()}"


def test_journal_storage(tmp_path: Path) -> None:
    journal = tmp_path / "shared.journal"
    result = search(experiment(tmp_path), trials=2, storage=f"journal:{journal}")
    assert journal.is_file() and len(result.study.trials) == 2
    assert result.dashboard_command == f"optuna-dashboard {journal}"


# --- the space ---------------------------------------------------------------------------------

def test_a_space_of_only_fixed_values_runs_the_one_configuration(tmp_path: Path) -> None:
    config = experiment(tmp_path, space={"threshold": 0.8})  # not the base program's 0.5
    assert config.program.scale.threshold == 0.5
    result = search(config, trials=2)
    trials = result.study.trials
    assert len(trials) == 2 and all(t.state == TrialState.COMPLETE for t in trials)
    assert [t.params for t in trials] == [{}, {}]  # nothing was sampled
    # what each trial ran with: its program, and the config saved beside its results
    assert [t.user_attrs["program_config"]["scale"]["threshold"] for t in trials] == [0.8, 0.8]
    assert len({t.user_attrs["fingerprint"] for t in trials}) == 1  # one configuration
    saved = load_experiment(Path(trials[0].user_attrs["results_path"]).parent / "config.yaml")
    assert saved.program.scale.threshold == 0.8


def test_quickstart_compiles_searches_and_tests_the_best_configuration(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from optimize.commands.quickstart import quickstart
    from optimize.experiment import CompileConfig

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact folder is relative to the working directory
    monkeypatch.setattr("data.loading.dev_split", lambda pool, n, **kw: toy_examples(3)[kw.get("offset", 0):][:n])
    monkeypatch.setattr("data.loading.load_benchmark", lambda name, **kw: toy_examples(4)[1:])
    config = replace(experiment(tmp_path), compile=CompileConfig(optimizer="bootstrap", max_bootstrapped_demos=1,
                                                                 max_labeled_demos=0))
    config = replace(config, search=replace(config.search, trials=3))
    outcome = quickstart(config, track=True, progress=False, systems=toy_systems())
    saved = json.loads((config.run_dir / "quickstart.json").read_text())
    assert saved["best_trial"] == outcome["best_trial"] and saved["dev"]["accuracy"] == 100.0
    assert saved["test"]["accuracy"] == 100.0
    assert saved["test"]["n"] == 3 and Path(saved["program_dir"], "program.json").is_file()
    assert saved["baseline"] is None and saved["difference"] is None  # a SCALE-only space has no uniform method
    assert set(saved["seconds"]) == {"compile", "search", "test", "total"}


def test_scale_search_command_prints_the_front_and_the_dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from optimize.cli import main
    from optimize.experiment import save_experiment
    from program import methods

    real_build = methods.build_program
    monkeypatch.setattr(methods, "build_program",
                        lambda config, systems=None, **kw: real_build(config, toy_systems(), **kw))
    monkeypatch.setattr("data.loading.dev_split", lambda pool, n, **kw: toy_examples(n))
    monkeypatch.setenv("COLUMNS", "200")
    config_file = save_experiment(experiment(tmp_path), tmp_path / "search.yaml")
    code = main(["search", "--config", str(config_file), "--trials", "3", "--no-mlflow", "--no-progress",
                 "--api-base", "http://127.0.0.1:9/v1"])  # a named server: the embedded one is not started
    out = capsys.readouterr().out
    assert code == 0
    assert "Pareto front" in out and "optuna-dashboard sqlite:///" in out and "3 trials (3 complete" in out
    assert main(["search", "--config", str(config_file), "--trials", "3", "--no-mlflow", "--no-progress",
                 "--api-base", "http://127.0.0.1:9/v1"]) == 0
    assert "0 run now" in capsys.readouterr().out


def test_scale_search_command_names_a_bad_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from optimize.cli import main
    from optimize.experiment import save_experiment

    config_file = save_experiment(experiment(tmp_path, space={"threshold": [0.9, 0.1]}), tmp_path / "bad.yaml")
    assert main(["search", "--config", str(config_file), "--api-base", "http://127.0.0.1:9/v1"]) == 2
    assert "search.space.threshold: low 0.9 must be below high 0.1" in capsys.readouterr().err
