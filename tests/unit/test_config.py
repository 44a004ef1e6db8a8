"""Configs are validated on construction and loaded from files with precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from optimize.experiment import experiment_from_dict, experiment_to_dict, load_experiment, save_experiment
from program.config import ConfigError, Endpoint, ForcingConfig, ModeConfig, ProgramConfig, ScaleConfig, VoteConfig
from program.config_data import from_dict
from program.presets import preset


@pytest.mark.parametrize(("build", "message"), [
    (lambda: ScaleConfig(threshold=1.5), "threshold=1.5"),
    (lambda: ScaleConfig(num_candidates=0), "num_candidates=0"),
    (lambda: ScaleConfig(context="all"), "context='all'"),
    (lambda: ModeConfig(temperature=-1), "temperature=-1"),
    (lambda: ModeConfig(thinking="forced"), "thinking_budget"),
    (lambda: ModeConfig(thinking="sometimes"), "thinking='sometimes'"),
    (lambda: Endpoint(model="no-provider"), "provider prefix"),
    (lambda: Endpoint(model="openai/x", api_key_env="sk-abc.def"), "NAME of an environment variable"),
    (lambda: VoteConfig(temperature=0.0), "greedy"),
    (lambda: ForcingConfig(wait="  "), "wait"),
    (lambda: ProgramConfig(method="magic"), "method='magic'"),
])
def test_bad_values_fail_on_construction_naming_the_field(build, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()


def test_from_dict_names_unknown_keys_and_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"config\.lm: unknown key\(s\) 'temprature'.*known keys are"):
        from_dict(ProgramConfig, {"lm": {"endpoint": {"model": "openai/x"}, "temprature": 1}})


def test_from_dict_converts_nested_configs_and_ints_to_floats() -> None:
    config = from_dict(ProgramConfig, {"scale": {"threshold": 0}, "lm": {"endpoint": {"model": "openai/m"}}})
    assert config.scale.threshold == 0.0 and isinstance(config.scale.threshold, float)
    assert config.lm.endpoint.model == "openai/m"


def test_presets_exist_and_the_local_one_is_embedded_with_forced_thinking() -> None:
    local = preset("local")
    assert local.embedded and local.system2.thinking == "forced" and local.system2.thinking_budget > 0
    assert preset("qwen3").system2.thinking == "qwen3"
    assert preset("reasoning-pair").system2.endpoint is not None
    assert preset("api").endpoint.api_key_env == "OPENAI_API_KEY"
    with pytest.raises(ConfigError, match="Unknown LM preset 'nope'"):
        preset("nope")


def test_endpoint_overrides_turn_off_the_embedded_server() -> None:
    config = preset("local").with_overrides(api_base="http://10.0.0.5:8000/v1")
    assert config.endpoint.api_base == "http://10.0.0.5:8000/v1" and not config.embedded
    assert preset("local").with_overrides() == preset("local")


def test_experiment_round_trips_through_a_file(tmp_path: Path) -> None:
    config = experiment_from_dict({"name": "t", "method": "vote", "lm": {"preset": "qwen3"},
                                   "vote": {"samples": 3}, "search": {"trials": 5}})
    path = save_experiment(config, tmp_path / "t.yaml")
    assert load_experiment(path) == config
    assert experiment_to_dict(config)["vote"]["samples"] == 3


def test_experiment_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: scale\nscale:\n  threshold: 7\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: scale: `threshold=7"):
        load_experiment(bad)
    bad.write_text("method: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_experiment(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(tmp_path / "missing.yaml")


def test_saved_configs_hold_the_key_variable_name_never_the_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-secret-42")
    path = save_experiment(experiment_from_dict({"lm": {"preset": "api"}}), tmp_path / "api.yaml")
    text = path.read_text()
    assert "OPENAI_API_KEY" in text and "sk-planted-secret-42" not in text


def test_workers_follow_the_embedded_servers_slots_unless_the_config_names_them() -> None:
    from program.serving.local import DEFAULT_SLOTS

    assert experiment_from_dict({}).workers == DEFAULT_SLOTS  # the embedded default: one problem per slot
    own_server = {"lm": {"preset": "local", "endpoint": {"api_base": "http://gpu-box:8000/v1"}}}
    assert experiment_from_dict(own_server).workers == 1  # another server's batch is unknown: one at a time
    assert experiment_from_dict({**own_server, "tracking": {"workers": 16}}).workers == 16
    assert experiment_from_dict({"tracking": {"workers": 1}}).workers == 1


@pytest.mark.parametrize("workers", [0, -2, True])
def test_workers_below_one_are_refused_with_the_fix(workers: object) -> None:
    with pytest.raises(ConfigError, match="tracking.workers.*at least 1"):
        experiment_from_dict({"tracking": {"workers": workers}})
