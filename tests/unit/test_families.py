"""The conditional space across methods: a trial samples only the knobs of the method it picked."""

from __future__ import annotations

import optuna
import pytest

from optimize.search.families import FAMILY_KNOBS, MethodSpace
from program.config import ConfigError, ProgramConfig

RAW = {"num_waits": 0, "methods": {
    "cot": {"system1_max_tokens": {"choices": [512, 768]}},
    "bf": {"system2_thinking_budget": {"choices": [256, 512]}},
    "vote": {"vote_samples": [3, 5], "vote_stop_rule": {"choices": ["majority", "beta"]}},
    "cascade": {"system2_kind": {"choices": ["think", "vote"]}, "vote_samples": [3, 5]},
    "scale": {"threshold": [0.2, 0.8], "system1_max_tokens": [160, 320]}}}


def test_a_fixed_trial_needs_only_its_method_knobs() -> None:
    space = MethodSpace.parse(RAW, "scale")
    # FixedTrial raises on any parameter it was not given: only cot's knob is asked for
    choice = space.suggest(optuna.trial.FixedTrial({"method": "cot", "cot.system1_max_tokens": 768}))
    assert (choice.method, choice.values, choice.curve) == ("cot", {"system1_max_tokens": 768, "num_waits": 0}, None)
    config = space.apply(ProgramConfig(), choice)
    assert config.method == "cot" and config.lm.system1.max_tokens == 768
    with pytest.raises(ValueError):  # bf's knob is not cot's
        space.suggest(optuna.trial.FixedTrial({"method": "bf", "cot.system1_max_tokens": 768}))


def test_bf_budget_sets_the_forced_thinking_budget() -> None:
    space = MethodSpace.parse(RAW, "scale")
    choice = space.suggest(optuna.trial.FixedTrial({"method": "bf", "bf.system2_thinking_budget": 256}))
    assert space.apply(ProgramConfig(), choice).lm.system2.thinking_budget == 256


def test_score_routed_methods_take_tau_from_the_curve() -> None:
    space = MethodSpace.parse(RAW, "scale")
    cascade = space.suggest(optuna.trial.FixedTrial({"method": "cascade", "cascade.system2_kind": "vote",
                                                     "cascade.vote_samples": 3}))
    assert cascade.curve == (0.0, 1.0) and "threshold" not in cascade.values
    scale = space.suggest(optuna.trial.FixedTrial({"method": "scale", "scale.system1_max_tokens": 200}))
    assert scale.curve == (0.2, 0.8)
    sampled = MethodSpace.parse(RAW, "scale", tau="sample")
    trial = optuna.trial.FixedTrial({"method": "scale", "scale.system1_max_tokens": 200, "scale.threshold": 0.3})
    assert sampled.suggest(trial).values["threshold"] == 0.3


def test_a_study_records_only_the_chosen_method_knobs() -> None:
    space = MethodSpace.parse(RAW, "scale")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        choice = space.suggest(trial)
        own = {f"{choice.method}.{knob}" for knob in FAMILY_KNOBS[choice.method]}
        assert {k for k in trial.params if k != "method"} <= own
        study.tell(trial, 0.0)
    assert len({t.params["method"] for t in study.trials}) == 5


def test_a_flat_space_searches_the_config_method_as_before() -> None:
    space = MethodSpace.parse({"threshold": [0.0, 1.0], "num_waits": 0}, "scale", tau="sample")
    choice = space.suggest(optuna.trial.FixedTrial({"threshold": 0.3}))
    assert (choice.method, choice.values) == ("scale", {"threshold": 0.3, "num_waits": 0})


def test_a_knob_the_method_does_not_read_is_refused() -> None:
    with pytest.raises(ConfigError, match="cot: system2_thinking_budget .* its knobs are: system1_max_tokens"):
        MethodSpace.parse({"methods": {"cot": {"system2_thinking_budget": [64, 512]}}}, "scale")
    with pytest.raises(ConfigError, match="unknown method 'sc'"):
        MethodSpace.parse({"methods": {"sc": {}}}, "scale")


def test_seeds_start_each_method_at_the_base_config() -> None:
    seeds = MethodSpace.parse(RAW, "scale").seeds(ProgramConfig(), (0.2, 0.5))
    assert [s["method"] for s in seeds if s] == ["cot", "bf", "vote", "cascade", "scale"]


def test_a_named_setting_becomes_the_trial_params_and_a_setting_outside_the_space_is_refused() -> None:
    space = MethodSpace.parse(RAW, "scale")
    base = ProgramConfig()
    assert space.setting(base, {"method": "bf", "system2_thinking_budget": 512}) == {
        "method": "bf", "bf.system2_thinking_budget": 512}
    # a knob left out takes the base config's value, as a seed does (the vote's stop rule here)
    vote = space.setting(base, {"method": "vote", "vote_samples": 5})
    assert vote == {"method": "vote", "vote.vote_samples": 5, "vote.vote_stop_rule": base.vote.stop_rule}
    # the params run as they read: the trial samples exactly them
    choice = space.suggest(optuna.trial.FixedTrial(vote))
    assert choice.values["vote_samples"] == 5
    with pytest.raises(ConfigError, match=r"system2_thinking_budget=300 lies outside bf's space: one of \[256, 512\]"):
        space.setting(base, {"method": "bf", "system2_thinking_budget": 300})
    with pytest.raises(ConfigError, match="name the method, one of cot, bf, vote, cascade, scale"):
        space.setting(base, {"system2_thinking_budget": 512})
    with pytest.raises(ConfigError, match="'threshold' is not a knob of cascade's space .*computes the whole curve"):
        space.setting(base, {"method": "cascade", "threshold": 0.5})
    with pytest.raises(ConfigError, match="'vote_samples' is not a knob of cot's space"):
        space.setting(base, {"method": "cot", "vote_samples": 3})
    flat = MethodSpace.parse({"threshold": [0.0, 1.0], "num_waits": 0}, "scale", tau="sample")
    assert flat.setting(base, {"threshold": 0.3}) == {"threshold": 0.3}  # one method: no `method` needed
