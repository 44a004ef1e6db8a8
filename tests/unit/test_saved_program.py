"""Program directories: save -> load gives the same program; a bad directory is refused by name.

Also home of the scripted LMs the compile tests share (``scripted``): a SCALE program on apple
problems whose answers are right, or right only once an optimizer's instruction made the plan say
"carefully" (so a tuned instruction is visible in the answers).
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import cloudpickle
import dspy
import pytest
import yaml

from optimize.compiling.saved import (
    CONFIG_FILE,
    METADATA_FILE,
    PROGRAM_FILE,
    load_program,
    program_fingerprint,
    read_metadata,
    save_program,
)
from optimize.experiment import ExperimentConfig, experiment_from_dict, with_program
from program.clients.lm import Systems
from program.config import ProgramConfig
from program.errors import SavedProgramError
from program.methods import build_program
from program.testing import chat_fields, scripted_systems

PROBLEM = "Tom has 3 apples and buys 4 more. How many apples does he have?"
MARKERS = ("carefully", "A fine")  # what the optimizers' scripted proposals put into instructions


def _optimizer_reply(system: str) -> str:
    """An optimizer's own DSPy call (MIPROv2 proposer, SIMBA advice, GEPA's JSON proposer): all fields filled."""
    part = system.split("Your output fields are:")[-1].split("All interactions")[0]
    fields: dict[str, object] = {}
    for name, kind in re.findall(r"\d+\. `(\w+)` \(([^)]*)\)", part):
        fields[name] = ({"decompose": "Plan carefully."} if kind.startswith("dict") else
                        ["x"] if kind.startswith("list") else 1 if kind == "int" else f"A fine {name}.")
    if "JSON object" in system:
        return json.dumps(fields)
    return chat_fields(**{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in fields.items()})


def scripted(careless: bool = False) -> Systems:
    """Scripted stages and solvers. ``careless``: answers are off by one unless the plan says "carefully"."""

    def stages(messages: list[dict[str, str]]) -> str:
        system, last = messages[0]["content"], messages[-1]["content"]
        if "Provide the new instructions within ``` blocks" in last:  # GEPA's reflection
            return "```\nPlan carefully: name each quantity.\n```"
        if "Your output fields are:" in system:
            return _optimizer_reply(system)
        if "Current step:" in last:
            return "0.3"
        if "Candidates:" in last:
            return "1"
        careful = ", carefully" if any(marker in system for marker in MARKERS) else ""
        return f"1. Find the total number of apples{careful}."

    def solver(messages: list[dict[str, str]]) -> str:
        last = messages[-1]["content"]
        a, b = map(int, re.findall(r"\d+", last.split("Problem:", 1)[-1])[:2])
        wrong = careless and "carefully" not in last.split("Current step:")[-1]
        return f"{a} + {b} = {a + b}, so \\boxed{{{a + b + wrong}}}."

    return scripted_systems(stages, solver)


def requests(systems: Systems) -> list[list[dict[str, str]]]:
    """Every request the three LMs received, in order per LM."""
    return [r for lm in (systems.stages, systems.system1, systems.system2) for r in lm.engine.requests]


def experiment(tmp_path: Path, **compile_options: object) -> ExperimentConfig:
    """A small experiment on a tmp apple pool (12 problems) with tiny budgets."""
    pool = tmp_path / "data"
    pool.mkdir(exist_ok=True)
    rows = [{"id": f"a{i}", "problem": f"Tom has {i + 2} apples and buys {i + 3} more. How many apples?",
             "answer": str(2 * i + 5)} for i in range(12)]
    (pool / "gsm8k_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    budgets = {"max_bootstrapped_demos": 1, "max_labeled_demos": 1, "num_candidates": 2, "num_trials": 2,
               "max_metric_calls": 20, **compile_options}
    return experiment_from_dict({"name": "t", "lm": {"preset": "qwen3"}, "scale": {"threshold": 0.5},
                                 "data": {"dev": "gsm8k_train:5", "val": 2, "data_dir": str(pool)},
                                 "compile": budgets, "tracking": {"output_dir": str(tmp_path / "runs")}})


def builder(systems: Systems):
    return lambda config, _systems: build_program(config, systems)


@pytest.fixture
def config(tmp_path: Path) -> ExperimentConfig:
    return experiment(tmp_path)


@pytest.fixture
def saved(tmp_path: Path, config: ExperimentConfig) -> Path:
    """A SCALE program with a demo and a changed instruction (System 2 solves the one, last step), saved."""
    program = build_program(config.program, scripted())
    program.decompose.demos = [dspy.Example(problem="Ann has 1 pear and gets 1 more.", steps=["Find the pears."])]
    program.system2.signature = program.system2.signature.with_instructions("Solve the step carefully; box it.")
    return save_program(program, config, tmp_path / "saved", scores={"dev": {"accuracy": 100.0}})


def test_round_trip_gives_the_same_answers_and_the_same_requests(saved: Path, config: ExperimentConfig) -> None:
    original_systems, loaded_systems = scripted(), scripted()
    original = build_program(config.program, original_systems)
    original.load(str(saved / PROGRAM_FILE))
    loaded = load_program(saved, systems=loaded_systems, builder=builder(loaded_systems))
    assert loaded.program(problem=PROBLEM).answer == original(problem=PROBLEM).answer == "7"
    assert requests(loaded_systems) == requests(original_systems)
    text = json.dumps(requests(loaded_systems))
    assert "Ann has 1 pear" in text and "Solve the step carefully; box it." in text  # demo and instruction survived
    assert loaded.config == config and loaded.metadata["scores"]["dev"]["accuracy"] == 100.0


def test_directory_holds_json_yaml_and_metadata_without_lm_settings_or_pickles(saved: Path) -> None:
    assert sorted(p.name for p in saved.iterdir()) == sorted([PROGRAM_FILE, CONFIG_FILE, METADATA_FILE])
    state = json.loads((saved / PROGRAM_FILE).read_text())
    assert all(state[name]["lm"] is None for name in state if name != "metadata")
    assert "api_base" not in (saved / PROGRAM_FILE).read_text()
    assert yaml.safe_load((saved / CONFIG_FILE).read_text())["scale"]["threshold"] == 0.5
    meta = read_metadata(saved)
    assert meta["format_version"] == 1 and meta["method"] == "scale"
    assert set(meta["versions"]) >= {"dspy", "optuna", "mlflow", "litellm", "math-verify", "scale-tts"}
    assert set(meta["sha256"]) == {PROGRAM_FILE, CONFIG_FILE} and meta["created"]


def test_loading_never_unpickles(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("load_program unpickled something")

    for module, name in ((pickle, "load"), (pickle, "loads"), (cloudpickle, "load"), (cloudpickle, "loads")):
        monkeypatch.setattr(module, name, refuse)
    systems = scripted()
    assert load_program(saved, systems=systems, builder=builder(systems)).program(problem=PROBLEM).answer == "7"


def test_config_override_applies_and_a_method_change_is_refused(saved: Path, config: ExperimentConfig) -> None:
    systems = scripted()
    override = with_program(config, scale=config.program.scale.__class__(threshold=0.9))
    loaded = load_program(saved, config=override, systems=systems, builder=builder(systems))
    assert loaded.program.config.threshold == 0.9 and loaded.fingerprint != program_fingerprint(saved)
    with pytest.raises(SavedProgramError, match="holds a `scale` program"):
        load_program(saved, config=with_program(config, method="cot"), systems=systems)


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _reseal(directory: Path) -> None:
    """Rewrite the checksums, as a careful forger would: the content checks must still catch it."""
    import hashlib

    _edit_json(directory / METADATA_FILE, lambda m: m["sha256"].update(
        {n: hashlib.sha256((directory / n).read_bytes()).hexdigest() for n in (PROGRAM_FILE, CONFIG_FILE)}))


@pytest.mark.parametrize("case, message", [
    ("missing dir", "no such program directory"),
    ("missing program.json", "program.json is missing"),
    ("missing metadata.json", "metadata.json is missing"),
    ("tampered program.json", "program.json does not match its sha256"),
    ("tampered config.yaml", "config.yaml does not match its sha256"),
    ("metadata not JSON", "metadata.json: not valid JSON"),
    ("not our metadata", "not the metadata of a saved scale-tts program"),
    ("newer format", "format version 2.*upgrade scale-tts"),
    ("older format", "format version 0.*scale compile"),
    ("program.json not JSON", "program.json: not valid JSON"),
    ("config.yaml invalid", "config.yaml: not a valid experiment config"),
    ("predictor missing", "holds predictors .* but this program has"),
    ("lm in state", "carry LM settings"),
    ("state does not fit", "does not fit a `scale` program"),
])
def test_bad_directories_are_refused_with_the_file_named(saved: Path, case: str, message: str) -> None:
    program_file, config_file, meta_file = saved / PROGRAM_FILE, saved / CONFIG_FILE, saved / METADATA_FILE
    edits = {
        "missing dir": lambda: None,
        "missing program.json": program_file.unlink,
        "missing metadata.json": meta_file.unlink,
        "tampered program.json": lambda: _edit_json(program_file, lambda s: s["system1"].update(demos=[{"x": 1}])),
        "tampered config.yaml": lambda: config_file.write_text(config_file.read_text().replace("0.5", "0.1")),
        "metadata not JSON": lambda: meta_file.write_text("{oops"),
        "not our metadata": lambda: _edit_json(meta_file, lambda m: m.update(format="other")),
        "newer format": lambda: _edit_json(meta_file, lambda m: m.update(format_version=2)),
        "older format": lambda: _edit_json(meta_file, lambda m: m.update(format_version=0)),
        "program.json not JSON": lambda: (program_file.write_text("{not json"), _reseal(saved)),
        "config.yaml invalid": lambda: (config_file.write_text("scale: {threshold: 7}\n"), _reseal(saved)),
        "predictor missing": lambda: (_edit_json(program_file, lambda s: s.pop("select")), _reseal(saved)),
        "lm in state": lambda: (_edit_json(program_file, lambda s: s["system2"].update(
            lm={"model": "openai/x", "api_base": "http://evil.example/v1"})), _reseal(saved)),
        "state does not fit": lambda: (_edit_json(program_file, lambda s: s["select"].update(
            signature={"instructions": 3})), _reseal(saved)),
    }
    edits[case]()
    target = saved.parent / "nowhere" if case == "missing dir" else saved
    systems = scripted()
    with pytest.raises(SavedProgramError, match=message) as caught:
        load_program(target, systems=systems, builder=builder(systems))
    assert str(target) in str(caught.value)


def test_saving_a_program_whose_predictor_holds_an_lm_is_refused(tmp_path: Path, config: ExperimentConfig) -> None:
    program = build_program(config.program, scripted())
    program.system1.lm = dspy.LM("openai/some-model", api_base="http://127.0.0.1:9/v1")
    with pytest.raises(SavedProgramError, match="system1 carry their own LM"):
        save_program(program, config, tmp_path / "bad")
    assert not (tmp_path / "bad" / PROGRAM_FILE).exists()


def test_default_builder_builds_from_the_saved_config(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[ProgramConfig] = []

    def fake_build(config: ProgramConfig, systems: Systems | None = None) -> dspy.Module:
        seen.append(config)
        return build_program(config, scripted())

    monkeypatch.setattr("program.methods.build_program", fake_build)
    assert load_program(saved).program(problem=PROBLEM).answer == "7"
    assert seen[0].scale.threshold == 0.5


# --- scale run / scale eval --program DIR --------------------------------------------------------------

OFFLINE = ["--api-base", "http://127.0.0.1:9/v1"]  # a named server: the embedded one is not started


@pytest.fixture
def scripted_default_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI builds programs with LMs from the config: give it scripted ones instead."""
    monkeypatch.setattr("program.methods.build_program", lambda config, systems=None: build_program(config, scripted()))
    monkeypatch.setenv("COLUMNS", "200")


def test_cli_run_loads_the_saved_program_with_overrides_on_top(saved: Path, scripted_default_builder: None,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from optimize.cli import main

    assert main(["run", "--program", str(saved), "--threshold", "0.95", PROBLEM, *OFFLINE]) == 0
    out = capsys.readouterr().out
    assert "Answer: 7" in out and "system1" in out  # tau 0.95 > the last step's 0.9: System 1 now
    assert main(["run", "--program", str(saved), "--config", str(saved / CONFIG_FILE), PROBLEM]) == 2
    assert "brings its own config" in capsys.readouterr().err
    (saved / PROGRAM_FILE).write_text((saved / PROGRAM_FILE).read_text().replace("pear", "plum"))
    assert main(["run", "--program", str(saved), PROBLEM, *OFFLINE]) == 2
    assert "program.json does not match its sha256" in capsys.readouterr().err


def test_cli_eval_keeps_a_saved_programs_results_apart(saved: Path, tmp_path: Path, scripted_default_builder: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from optimize.cli import main

    rows = [dspy.Example(id=f"toy-{i}", problem=PROBLEM, answer="7", benchmark="toy").with_inputs("problem")
            for i in range(3)]
    monkeypatch.setattr("data.loading.load_benchmark", lambda name, **kwargs: rows)
    argv = ["eval", "--program", str(saved), "--benchmark", "toy", "--output", str(tmp_path / "ev"), "--no-progress",
            *OFFLINE]
    assert main(argv) == 0
    results = [json.loads(line) for line in (tmp_path / "ev" / "saved-toy" / "results.jsonl").read_text().splitlines()]
    assert len(results) == 3 and all(r["correct"] for r in results)
    assert results[0]["fingerprint"] == program_fingerprint(saved)  # tuned state in the fingerprint
    assert main([*argv, "--budgets", "128"]) == 2


def test_a_saved_config_cannot_render_a_template_file_outside_its_directory(tmp_path: Path) -> None:
    """A forged config naming /etc/... as chat template would send that file to the program's server."""
    from optimize.compiling.saved import _resolve_template
    from program.errors import SavedProgramError

    base = experiment_from_dict({"lm": {"preset": "local"}})
    outside = experiment_from_dict({"lm": {"preset": "local", "forcing": {"template": "/etc/hostname"}}})
    escaping = experiment_from_dict({"lm": {"preset": "local", "forcing": {"template": "../secret.jinja"}}})
    inside = experiment_from_dict({"lm": {"preset": "local", "forcing": {"template": "mine.jinja"}}})
    assert _resolve_template(tmp_path, base) == base
    for forged in (outside, escaping):
        with pytest.raises(SavedProgramError, match="points outside the program directory"):
            _resolve_template(tmp_path, forged)
    resolved = _resolve_template(tmp_path, inside).program.lm.forcing.template
    assert resolved == str((tmp_path / "mine.jinja").resolve())
