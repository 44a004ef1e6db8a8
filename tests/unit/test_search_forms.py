"""Issue 26 on scripted LMs: one trial's exact tau curve, the budget form (constraints), and pruning."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dspy
import optuna
import pytest
from optuna.trial import FixedTrial, TrialState

from optimize.search.objective import SearchObjective
from optimize.search.plans import PlanStore
from tests.unit.test_search import experiment, search, toy_examples, toy_systems

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_a_curve_trial_gives_every_tau_from_one_evaluation(tmp_path: Path) -> None:
    config = experiment(tmp_path, tau="curve")
    systems = toy_systems()
    objective = SearchObjective(config, toy_examples(), run_dir=tmp_path / "run", systems=systems,
                                plans=PlanStore(tmp_path / "plans.jsonl"))
    trial = FixedTrial({})  # nothing sampled: tau comes from the curve
    accuracy, tokens = objective(trial)
    curve = trial.user_attrs["curve"]
    assert [p["low"] for p in curve] == sorted(p["low"] for p in curve) and curve[0]["low"] == 0.0
    assert curve[-1]["high"] == 1.0 and len(curve) >= 2
    # the reported point is the curve's most accurate (fewest tokens on ties), and its tau is recorded
    best = min(curve, key=lambda p: (-p["accuracy"], p["mean_tokens"]))
    assert (accuracy, tokens) == (best["accuracy"], best["mean_tokens"])
    assert trial.user_attrs["tau"] == best["low"] == trial.user_attrs["program_config"]["scale"]["threshold"]
    # every point equals an ordinary evaluation at its tau (a fresh objective, tau sampled)
    plain = SearchObjective(experiment(tmp_path), toy_examples(), run_dir=tmp_path / "plain", systems=toy_systems())
    for point in curve:
        assert plain(FixedTrial({"threshold": point["low"]})) == pytest.approx((point["accuracy"],
                                                                                point["mean_tokens"]))
    # one evaluation's calls: the reused ones (plans, shared first steps) are counted, not asked again
    attrs = trial.user_attrs
    assert attrs["spent_calls"] < attrs["true_calls"] and len(systems.system1.engine.requests) > 0


def test_a_budget_study_never_reports_an_infeasible_best(tmp_path: Path) -> None:
    # tau 0.2 routes the last step to System 2 (100 %, more tokens); 0.95 keeps it in System 1 (0 %, fewer)
    config = experiment(tmp_path, space={"threshold": {"choices": [0.2, 0.95]}, "num_waits": 0})
    costly = search(config, trials=2)  # the front form first: what each costs
    tokens = {t.params["threshold"]: t.values[1] for t in costly.study.trials}
    assert tokens[0.2] > tokens[0.95]
    between = (tokens[0.2] + tokens[0.95]) / 2
    result = search(experiment(tmp_path / "b", space={"threshold": {"choices": [0.2, 0.95]}, "num_waits": 0}),
                    trials=2, budget=between)
    trials = result.study.trials
    assert [len(t.values) for t in trials] == [1, 1]  # one objective: accuracy
    assert {t.params["threshold"]: t.user_attrs["constraint"][0] > 0 for t in trials} == {0.2: True, 0.95: False}
    assert result.choice is not None and result.choice.tokens <= between  # the less accurate, feasible one
    assert result.choice.accuracy == 0.0 and result.choice.values["threshold"] == 0.95
    assert result.study.best_trial.params["threshold"] == 0.95  # Optuna's own best reads the constraint too
    nothing = search(experiment(tmp_path / "c", space={"threshold": {"choices": [0.2, 0.95]}, "num_waits": 0}),
                     trials=2, budget=1.0)
    assert nothing.choice is None and all(t.user_attrs["constraint"][0] > 0 for t in nothing.study.trials)
    with pytest.raises(ValueError):  # no feasible trial: Optuna has no best either
        _ = nothing.study.best_trial


def test_a_losing_trial_is_pruned_early_and_recorded_as_pruned(tmp_path: Path) -> None:
    space = {"threshold": {"choices": [0.2, 0.95]}, "num_waits": 0}
    settings = [{"threshold": 0.2}, {"threshold": 0.95}]  # the winner first, then a loser (search.enqueue)

    def seeded(pruner: str, where: Path) -> object:
        cfg = experiment(where, space=space, chunk=1, enqueue_paper=False, enqueue=settings)
        return search(cfg, trials=2, budget=10_000.0, pruner=pruner)

    pruned = seeded("halving", tmp_path / "halving")
    first, second = pruned.study.trials
    assert first.state == TrialState.COMPLETE and first.user_attrs["n"] == 3
    assert second.state == TrialState.PRUNED and second.user_attrs["pruned_at"] < 3  # stopped early
    assert pruned.totals["pruned"] == 1 and pruned.choice is not None and pruned.choice.trial == 0
    unpruned = seeded("none", tmp_path / "none")
    assert [t.state for t in unpruned.study.trials] == [TrialState.COMPLETE] * 2
    assert pruned.totals["spent_calls"] < unpruned.totals["spent_calls"]  # the pruned trial asked less
    assert unpruned.choice is not None and unpruned.choice.trial == pruned.choice.trial  # the same choice


def test_a_pruner_needs_the_budget_form(tmp_path: Path) -> None:
    from optimize.experiment import SearchConfig
    from program.config import ConfigError

    with pytest.raises(ConfigError, match="needs `budget`"):
        SearchConfig(pruner="halving")
    with pytest.raises(ConfigError, match="must be halving, hyperband, wilcoxon or none"):
        SearchConfig(pruner="median", budget=100.0)


# --- held-out confirmation -------------------------------------------------------------------------

def held_out(n: int = 3) -> list[dspy.Example]:
    return [dspy.Example(id=f"held-{i}", problem=f"What is {i} + {i}?", answer=str(2 * i),
                         benchmark="toy").with_inputs("problem") for i in range(4, 4 + n)]


def test_the_heldout_slice_is_disjoint_from_dev_and_recorded_slices(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from optimize.experiment import DataConfig
    from optimize.search.confirm import heldout_slice

    pool = [dspy.Example(id=f"p-{i}", problem="q", answer="1").with_inputs("problem") for i in range(40)]
    monkeypatch.setattr("data.loading.load_benchmark", lambda name, **kw: pool)
    recorded = tmp_path / "results" / "calibration"
    recorded.mkdir(parents=True)
    recorded.joinpath("labels.jsonl").write_text('{"id": "p-6"}\n{"id": "p-7"}\n{"id": "p-2"}\n')
    config = replace(experiment(tmp_path), data=DataConfig(dev="gsm8k_train:5", seed=0))
    dev = {f"p-{i}" for i in range(5)}
    examples, name = heldout_slice(config, 10, exclude=["p-9"], recorded=[tmp_path / "results", None])
    ids = [e.id for e in examples]
    assert len(ids) == 10 and not set(ids) & (dev | {"p-6", "p-7", "p-9"})
    assert ids[0] == "p-5" and ids[-1] == "p-17"  # the next of the shuffle, 3 skipped on the way
    assert name == "gsm8k_train seed 0, shuffle positions 5-17 (10 problems; 3 skipped as dev or recorded ids)"
    with pytest.raises(ValueError, match="lower search.heldout"):
        heldout_slice(config, 40)


def test_a_pool_too_small_for_the_heldout_slice_fails_before_the_study(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from optimize.experiment import DataConfig

    pool = [dspy.Example(id=f"p-{i}", problem="q", answer="1").with_inputs("problem") for i in range(10)]
    monkeypatch.setattr("data.loading.load_benchmark", lambda name, **kw: pool)
    config = experiment(tmp_path, heldout=40)
    config = replace(config, data=DataConfig(dev="gsm8k_train:3", seed=0))
    with pytest.raises(ValueError, match="lower search.heldout"):
        search(config)
    assert not (config.run_dir / "optuna.db").exists()  # no study opened, no trial run


def test_a_front_search_across_families_is_confirmed_and_writes_its_winner(tmp_path: Path) -> None:
    from optimize.experiment import load_experiment

    space = {"num_waits": 0, "methods": {"cot": {"system1_max_tokens": 64}, "bf": {}, "scale": {}}}
    config = experiment(tmp_path, space=space, tau="curve", heldout=3, confirm=2)
    result = search(config, trials=3, heldout=held_out())
    methods = {t.params.get("method") for t in result.study.trials}
    assert methods == {"cot", "bf", "scale"}  # the seeds: each method at the base config
    assert all(t.state == TrialState.COMPLETE for t in result.study.trials)  # bf too ran on the scripted LMs
    assert any(p.tau is not None for p in result.front)  # a curve point is on the front
    top = result.confirmed[0]
    assert top.n == 3 and top.slice == "3 given held-out problems" and top.accuracy == 100.0
    assert top.description.startswith("scale") and "tau" in top.description
    # beside the best uniform method at no more dev tokens, on the same held-out problems
    assert top.versus["description"].split(",")[0] in ("cot", "bf") and top.versus["dev_tokens"] <= top.dev_tokens
    assert top.versus["difference"]["n"] == 3 and top.versus["difference"]["after"] == top.accuracy
    assert result.answer is not None and result.answer.startswith("best on held-out: scale")
    winner = load_experiment(result.winner)
    assert winner.program.method == "scale"
    held = [p for p in result.front if p.name == top.point][0]
    assert winner.program.scale.threshold == held.tau
    assert (result.run_dir / "heldout.json").is_file()
    front_json = (result.run_dir / "pareto" / "front.json").read_text()
    assert '"heldout_accuracy": 100.0' in front_json  # exported points record both scores
