"""Loading untrusted files: saved programs, results, plans and studies load without unpickling; a
tampered or forged file is refused with one clear line naming it; nothing in a file can run code.

The pickle modules (pickle, cloudpickle, dill) are made to raise for the whole loading path,
including ``scale run --program`` answering over a FakeServer. Forgers here are careful: they
rewrite the checksums in metadata.json, so the content checks themselves must hold.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import cloudpickle
import dill
import dspy
import optuna
import pytest

from optimize.cli import main
from optimize.compiling.saved import (
    CONFIG_FILE,
    METADATA_FILE,
    PROGRAM_FILE,
    load_program,
    program_fingerprint,
    save_program,
)
from optimize.evaluation.evaluate import evaluate
from optimize.evaluation.results import ResultsFile, load_results
from optimize.evaluation.summary import summarize
from optimize.experiment import ExperimentConfig, experiment_from_dict
from optimize.search.plans import PlanStore, plan_key
from program.clients.templates import get_template
from program.config import ConfigError, ProgramConfig
from program.errors import SavedProgramError
from program.methods import build_program
from program.scale import Scale
from program.testing import scripted_systems
from reliability.toy import TALLY, rows, toy_server

PLAN = "1. Find the sum of the two numbers."


def stages(messages: list[dict[str, str]]) -> str:
    return PLAN if "Break the math problem" in messages[0]["content"] else "0.3"


def solver(messages: list[dict[str, str]]) -> str:
    import re

    a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)\?", messages[-1]["content"])[-1])
    return f"\\boxed{{{a + b}}}"


def experiment(tmp: Path) -> ExperimentConfig:
    return experiment_from_dict({"name": "u", "lm": {"preset": "qwen3"}, "scale": {"threshold": 0.5},
                                 "tracking": {"output_dir": str(tmp / "runs")}})


def builder(config: ProgramConfig, systems: Any) -> dspy.Module:
    return build_program(config, scripted_systems(stages, solver))


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    program = build_program(experiment(tmp_path).program, scripted_systems(stages, solver))
    program.decompose.demos = [dspy.Example(problem="Row 90. What is 1 + 1?", steps=["Find the sum."])]
    return save_program(program, experiment(tmp_path), tmp_path / "saved")


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every unpickling entry point raises (and is logged) for the rest of the test."""
    attempts: list[str] = []

    def refuse(name: str) -> Any:
        def call(*args: object, **kwargs: object) -> None:
            attempts.append(name)
            raise AssertionError(f"{name} was called while loading an untrusted file")
        return call

    for module in (pickle, cloudpickle, dill):
        for name in ("load", "loads"):
            monkeypatch.setattr(module, name, refuse(f"{module.__name__}.{name}"))
    monkeypatch.setattr(pickle, "Unpickler", refuse("pickle.Unpickler"))
    return attempts


def reseal(directory: Path) -> None:
    """What a careful forger does after editing: rewrite the checksums."""
    meta = json.loads((directory / METADATA_FILE).read_text())
    meta["sha256"] = {name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
                      for name in (PROGRAM_FILE, CONFIG_FILE)}
    (directory / METADATA_FILE).write_text(json.dumps(meta))


def edit_state(directory: Path, change: Any) -> None:
    state = json.loads((directory / PROGRAM_FILE).read_text())
    change(state)
    (directory / PROGRAM_FILE).write_text(json.dumps(state))


# --- nothing is unpickled ---------------------------------------------------------------------

@pytest.mark.fake_server
def test_everything_loads_without_unpickling(saved: Path, tmp_path: Path, no_unpickling: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    loaders: list[str] = []  # each kind of file read back below
    # a saved program, directly and through the command, answering over HTTP
    loaded = load_program(saved, builder=builder)
    assert loaded.program(problem="Row 3. What is 5 + 10?").answer == "15"
    assert program_fingerprint(saved)
    loaders += ["load_program", "program_fingerprint"]
    with toy_server() as server:
        code = main(["run", "--program", str(saved), "--api-base", server.api_base, "--model", "openai/fake",
                     "Row 4. What is 6 + 13?"])
    assert code == 0 and "19" in capsys.readouterr().out
    loaders.append("scale run --program")

    # results: written by an evaluation, read back and summarised
    problems = [dspy.Example(**row, benchmark="toy").with_inputs("problem") for row in rows(3)]
    report = evaluate(loaded.program, problems, results_path=tmp_path / "r.jsonl", fingerprint="f", progress=False)
    assert summarize(load_results(tmp_path / "r.jsonl")).accuracy == report.summary.accuracy == 100.0
    loaders.append("load_results")

    # plans shared by a search, and an Optuna study in sqlite
    store = PlanStore(tmp_path / "plans.jsonl")
    scale = Scale(loaded.config.program.scale, scripted_systems(stages, solver), plan_cache=store.view("k"))
    scale(problem="Row 5. What is 7 + 16?")
    assert PlanStore(tmp_path / "plans.jsonl").get("k", "Row 5. What is 7 + 16?") is not None
    loaders.append("PlanStore")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=url, directions=["maximize", "minimize"])
    study.enqueue_trial({"threshold": 0.2}, user_attrs={"seed": True})
    trial = study.ask()
    trial.suggest_float("threshold", 0.0, 1.0)
    study.tell(trial, [50.0, 10.0])
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 1
    loaders.append("optuna.load_study")
    assert no_unpickling == []
    TALLY["untrusted files: loads without unpickling"] = {"loaders checked": len(loaders),
                                                          "unpickle calls": len(no_unpickling)}


# --- tampered and forged program directories ---------------------------------------------------------

FORGERIES = {
    "tampered program.json": (lambda d: edit_state(d, lambda s: s["system1"]["demos"].append({"x": 1})), False,
                              rf"{PROGRAM_FILE} does not match its sha256 in {METADATA_FILE}"),
    "tampered config.yaml": (lambda d: (d / CONFIG_FILE).write_text((d / CONFIG_FILE).read_text()
                                                                    .replace("threshold: 0.5", "threshold: 0.1")),
                             False, rf"{CONFIG_FILE} does not match its sha256"),
    "LM settings smuggled into the state": (
        lambda d: edit_state(d, lambda s: s["system1"].update(lm={"model": "openai/x", "api_base": "http://evil/v1"})),
        True, "carry LM settings"),
    "an extra predictor": (lambda d: edit_state(d, lambda s: s.update(evil={"demos": []})), True, "holds predictors"),
    "a pickle in place of program.json": (
        lambda d: (d / PROGRAM_FILE).write_bytes(pickle.dumps({"system1": object.__new__(object)})), True,
        rf"{PROGRAM_FILE}: not valid JSON"),
    "a python object tag in config.yaml": (
        lambda d: (d / CONFIG_FILE).write_text("name: !!python/object/apply:os.system ['touch PWNED']\n"), True,
        rf"{CONFIG_FILE}: not a valid experiment config"),
    "deeply nested config.yaml": (lambda d: (d / CONFIG_FILE).write_text("a: " + "[" * 50000 + "]" * 50000 + "\n"),
                                  True, rf"{CONFIG_FILE}: not a valid experiment config"),
    "deeply nested metadata.json": (lambda d: (d / METADATA_FILE).write_text("[" * 100000 + "]" * 100000), False,
                                    rf"{METADATA_FILE}: not valid JSON"),
    "metadata.json of another format": (
        lambda d: (d / METADATA_FILE).write_text(json.dumps({"format": "pickle", "format_version": 1})), False,
        "not the metadata of a saved scale-tts program"),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_tampered_or_forged_program_is_refused_by_name(forgery: str, saved: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, no_unpickling: list[str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    edit, resealed, message = FORGERIES[forgery]
    edit(saved)
    if resealed:
        reseal(saved)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SavedProgramError, match=message):
        load_program(saved, builder=builder)
    for command in (["run", "--program", str(saved), "Row 1. What is 3 + 4?"],
                    ["eval", "--program", str(saved), "--benchmark", "gsm8k", "--no-progress"],
                    ["search", "--program", str(saved), "--no-mlflow", "--no-progress"]):
        code = main([*command, "--api-base", "http://127.0.0.1:9/v1", "--model", "openai/fake"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        assert err.startswith("error: ") and (len(err.strip().splitlines()) == 1 or "not valid YAML" in err), err
        assert str(saved) in err and __import__("re").search(message, err), err
    ran_code = (tmp_path / "PWNED").exists() or Path("PWNED").exists()
    assert not ran_code
    assert no_unpickling == []
    tally = TALLY.setdefault("untrusted files: tampered/forged programs",
                             {"forgeries refused by every loader": 0, "ran code": 0, "unpickle calls": 0})
    tally["forgeries refused by every loader"] += 1  # load_program and the three commands, asserted above
    tally["ran code"] += ran_code
    tally["unpickle calls"] += len(no_unpickling)


# --- chat template files run in a sandbox ----------------------------------------------------------

@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.system('touch PWNED') }}",
    "{{ messages.__class__.__base__.__subclasses__() }}",
    "{% for x in range(10**9) %}{% endfor %}",
    "{{ raise_exception('refused by the template') }}",
])
def test_a_chat_template_file_cannot_run_code(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.jinja"
    path.write_text(source)
    template = get_template(str(path))
    with pytest.raises(ConfigError, match=r"evil\.jinja"):
        template.render([{"role": "user", "content": "hi"}])
    ran_code = (tmp_path / "PWNED").exists()
    assert not ran_code
    tally = TALLY.setdefault("untrusted files: chat templates", {"payloads refused": 0, "ran code": 0})
    tally["payloads refused"] += 1  # the ConfigError naming the file, asserted above
    tally["ran code"] += ran_code


# --- corrupted results and plan files ---------------------------------------------------------------

JUNK_LINES = [
    "not json at all",
    "[1, 2, 3]",
    '{"no_id": true}',
    '{"id": ["a", "list"], "fingerprint": "f"}',
    '{"id": "q001", "totals": "lots", "fingerprint": "f"}',
    '{"id": "q001", "stages": [], "fingerprint": "f"}',
    '{"id": "q001", "wall_seconds": "slow", "fingerprint": "f"}',
    '{"id": "q001", "correct": "yes", "fingerprint": "f"}',
    '{"id": "q001", "totals": {"total_tokens": "many"}, "fingerprint": "f"}',
    "[" * 100000 + "]" * 100000,
]


def test_corrupt_results_lines_are_skipped_and_rerun(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "r.jsonl"
    problems = [dspy.Example(**row, benchmark="toy").with_inputs("problem") for row in rows(3)]
    program = Scale(experiment(tmp_path).program.scale, scripted_systems(stages, solver))
    evaluate(program, problems[:1], results_path=path, fingerprint="f", progress=False)
    with path.open("a") as handle:
        handle.write("\n".join(JUNK_LINES) + "\n")
    with caplog.at_level("WARNING"):
        stored = ResultsFile(path).read()
        summary = summarize(load_results(path))
        report = evaluate(program, problems, results_path=path, fingerprint="f", progress=False)
    assert [r.id for r in stored] == ["q000"]  # every junk line skipped: none half-read
    assert summary.n == 1 and summary.accuracy == 100.0
    assert caplog.text.count("unreadable results line skipped") >= len(JUNK_LINES)
    assert (report.n_resumed, report.n_new) == (1, 2) and report.summary.accuracy == 100.0
    half_read = [r.id for r in stored if r.id != "q000"]
    TALLY["untrusted files: corrupt results lines"] = {
        "junk lines": len(JUNK_LINES), "skipped with a warning": caplog.text.count("unreadable results line skipped"),
        "half-read": len(half_read), "problems rerun": report.n_new}


def test_corrupt_plan_lines_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "plans.jsonl"
    store = PlanStore(path)
    program = Scale(experiment(tmp_path).program.scale, scripted_systems(stages, solver))
    key = plan_key(program, experiment(tmp_path).program)
    program.plan_cache = store.view(key)
    program(problem="Row 1. What is 3 + 4?")
    with path.open("a") as handle:
        handle.write("\n".join(JUNK_LINES + ['{"key": "k", "problem": "p", "plan": {"problem": 1}}']) + "\n")
    with caplog.at_level("WARNING"):
        fresh = PlanStore(path)
        assert fresh.get(key, "Row 1. What is 3 + 4?") is not None
        assert fresh.get(key, "Row 2. What is 4 + 7?") is None
    assert "skipping an unreadable plan line" in caplog.text
