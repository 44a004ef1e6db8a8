"""Bad input files and values: every user error is one line naming the file, line or key and the
expected form; exit code 2; never a traceback.

Each case runs the real command in-process (``optimize.cli.main``) against a named (unreachable)
server, so nothing is started and no model is called; one case also runs ``.venv/bin/scale`` as a
subprocess. Where a check would only fire at the first LM call (a missing API-key variable), the
FakeServer stands in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from optimize.cli import main
from reliability.toy import TALLY, experiment_file, rows, run_scale, toy_server, write_jsonl

OFFLINE = ["--api-base", "http://127.0.0.1:9/v1", "--model", "openai/fake"]
TEST_FILE = "gsm8k_test.jsonl"


def eval_argv(tmp: Path, data: Path, *extra: str) -> list[str]:
    return ["eval", "--method", "cot", "--benchmark", "gsm8k", "--data-dir", str(data), "--output",
            str(tmp / "out"), "--no-progress", *OFFLINE, *extra]


def data_with(tmp: Path, text: str | bytes) -> Path:
    directory = tmp / "data"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / TEST_FILE
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return directory


def lines(*records: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


GOOD = [json.dumps(r) for r in rows(3)]


def config_with(tmp: Path, change: Callable[[dict], None], suffix: str = ".yaml") -> Path:
    path = experiment_file(tmp / f"exp{suffix}", data=tmp / "data", output=tmp / "out", method="cot")
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    return path


def config_argv(tmp: Path, path: Path, *extra: str) -> list[str]:
    write_jsonl(tmp / "data" / TEST_FILE, rows(3))
    return ["eval", "--config", str(path), "--no-progress", "--output", str(tmp / "out"), *OFFLINE, *extra]


# name -> (argv builder, patterns the one-line error must match)
DATA_CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "malformed JSON": (lambda t: eval_argv(t, data_with(t, lines(GOOD[0], GOOD[1], '{"id": "x", "problem": ')),),
                       [rf"{TEST_FILE}, line 3: malformed JSON", "expected one JSON object per line"]),
    "missing field": (lambda t: eval_argv(t, data_with(t, lines(GOOD[0], {"id": "b", "problem": "What?"}))),
                      [rf"{TEST_FILE}, line 2: field 'answer' is missing", "expected a non-empty string"]),
    "wrong field type": (lambda t: eval_argv(t, data_with(t, lines({"id": "a", "problem": ["x"], "answer": "1"}))),
                         [rf"{TEST_FILE}, line 1: field 'problem' has type list", "expected a non-empty string"]),
    "empty field": (lambda t: eval_argv(t, data_with(t, lines({"id": "a", "problem": "  ", "answer": "1"}))),
                    [rf"{TEST_FILE}, line 1: field 'problem' is empty"]),
    "empty file": (lambda t: eval_argv(t, data_with(t, "")),
                   [rf"{TEST_FILE}: the file is empty",
                    "expected one JSON object per line with id, problem and answer"]),
    "blank line": (lambda t: eval_argv(t, data_with(t, lines(GOOD[0], "", GOOD[1]))),
                   [rf"{TEST_FILE}, line 2: empty line", "no blank lines"]),
    "not UTF-8": (lambda t: eval_argv(t, data_with(t, GOOD[0].encode() + b"\n" + b'{"id": "\xff"}\n')),
                  [rf"{TEST_FILE}, line 2: not valid UTF-8", "expected UTF-8 JSONL"]),
    "lone surrogate": (lambda t: eval_argv(t, data_with(t, lines(GOOD[0], r'{"id": "s", "problem": "x \ud800", '
                                                                          r'"answer": "1"}'))),
                       [rf"{TEST_FILE}, line 2: field 'problem'", "Unicode"]),
    "a list, not an object": (lambda t: eval_argv(t, data_with(t, lines(GOOD[0], '["a", "b"]'))),
                              [rf"{TEST_FILE}, line 2: a JSON list, expected a JSON object"]),
    "duplicate id": (lambda t: eval_argv(t, data_with(t, lines(GOOD[0], GOOD[1], GOOD[0]))),
                     [rf"{TEST_FILE}, line 3: field 'id' value 'q000' repeats line 1", "unique ids"]),
    "wrong data directory": (lambda t: eval_argv(t, t / "no-such-dir"),
                             [r"--data-dir .*no-such-dir: not a directory",
                              rf"expected the folder holding {TEST_FILE}"]),
    "directory without the file": (lambda t: eval_argv(t, (t / "empty").mkdir() or t / "empty"),
                                   [rf"empty/{TEST_FILE} not found \(--data-dir\)", rf"expected {TEST_FILE}"]),
    "unknown benchmark": (lambda t: ["eval", "--benchmark", "gsm9k", "--no-progress", *OFFLINE],
                          [r"unknown benchmark 'gsm9k'; known benchmarks: aime24, .*gsm8k"]),
    "unknown benchmark (data show)": (lambda t: ["data", "show", "math5000"],
                                      [r"unknown benchmark 'math5000'; known benchmarks"]),
    "bad dev slice": (lambda t: ["compile", "--dev", "gsm8k_train:many", *OFFLINE],
                      [r"`dev='gsm8k_train:many'` must look like POOL:N, e.g. 'gsm8k_train:20'"]),
    "dev slice from a test set": (
        lambda t: ["compile", "--dev", "gsm8k:5", "--no-mlflow", "--output", str(t / "c"), "--data-dir",
                   str(data_with(t, lines(*GOOD))), *OFFLINE],
        [r"names the test set 'gsm8k'", "train pool only"]),
    "missing program directory": (lambda t: ["run", "--program", str(t / "nope"), "What is 1 + 1?", *OFFLINE],
                                  [r"nope: no such program directory", "written by `scale compile`"]),
}

CONFIG_CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "out-of-range value": (lambda t: config_argv(t, config_with(t, lambda c: c["scale"].update(threshold=7))),
                           [r"exp\.yaml: scale: `threshold=7.0` must be in \[-1, 1\]"]),
    "unknown key": (lambda t: config_argv(t, config_with(t, lambda c: c["scale"].update(thresold=0.3))),
                    [r"exp\.yaml: scale: unknown key\(s\) 'thresold' for ScaleConfig; known keys are: .*threshold"]),
    "unknown top-level key": (lambda t: config_argv(t, config_with(t, lambda c: c.update(modle="x"))),
                              [r"exp\.yaml: unknown key\(s\) 'modle'; known keys are: .*method"]),
    "unknown nested LM key": (lambda t: config_argv(t, config_with(t, lambda c: c["lm"].update(
                                  system1={"max_tokenz": 5}))),
                              [r"exp\.yaml: lm.system1: unknown key\(s\) 'max_tokenz' for ModeConfig; known keys"]),
    "wrong type": (lambda t: config_argv(t, config_with(t, lambda c: c["lm"].update(system1={"max_tokens": "lots"}))),
                   [r"exp\.yaml: lm.system1.max_tokens: expected int, got 'lots'"]),
    "negative budget": (lambda t: config_argv(t, config_with(
        t, lambda c: c["lm"].update(system2={"thinking": "forced", "thinking_budget": -5}))),
        [r"exp\.yaml: lm.system2: `thinking_budget=-5` must be non-negative"]),
    "bad method": (lambda t: config_argv(t, config_with(t, lambda c: c.update(method="magic"))),
                   [r"exp\.yaml: `method='magic'` must be one of scale, cot"]),
    "unknown preset": (lambda t: config_argv(t, config_with(t, lambda c: c.update(lm={"preset": "gpt9"}))),
                       [r"exp\.yaml: Unknown LM preset 'gpt9'; choose one of api, local"]),
    "model without provider": (lambda t: config_argv(t, config_with(
        t, lambda c: c.update(lm={"endpoint": {"model": "qwen"}}))), [r"`model='qwen'` must be a litellm model name"]),
    "bad dev in config": (lambda t: config_argv(t, config_with(t, lambda c: c["data"].update(dev="gsm8k_train"))),
                          [r"exp\.yaml: data: `dev='gsm8k_train'` must look like POOL:N"]),
    "bad sampler": (lambda t: config_argv(t, config_with(t, lambda c: c["search"].update(sampler="grid"))),
                    [r"exp\.yaml: search: `sampler='grid'` must be nsga2, tpe or random"]),
    "bad optimizer": (lambda t: config_argv(t, config_with(t, lambda c: c["compile"].update(optimizer="magic"))),
                      [r"exp\.yaml: compile: `optimizer='magic'` must be one of bootstrap"]),
    "not YAML": (lambda t: config_argv(t, (t / "bad.yaml").write_text("scale: {threshold: [0.2\n") and t / "bad.yaml"),
                 [r"bad\.yaml: not valid YAML", r"line 1, column 20"]),
    "not JSON": (lambda t: config_argv(t, (t / "bad.json").write_text('{"scale": ') and t / "bad.json"),
                 [r"bad\.json: not valid JSON"]),
    "a list at the top": (lambda t: config_argv(t, (t / "list.yaml").write_text("- a\n- b\n") and t / "list.yaml"),
                          [r"list\.yaml: expected a mapping at the top level, got list"]),
    "missing config file": (lambda t: config_argv(t, t / "missing.yaml"),
                            [r"Config file .*missing\.yaml does not exist", "Pass an existing YAML/JSON file"]),
    "threshold flag out of range": (lambda t: config_argv(t, config_with(t, lambda c: None), "--threshold", "3"),
                                    [r"`threshold=3.0` must be in \[-1, 1\]"]),
    "search space parameter": (
        lambda t: ["search", "--config", str(config_with(t, lambda c: c["search"].update(space={"tau": [0, 1]}))),
                   "--no-mlflow", "--no-progress", *OFFLINE],
        [r"tau"]),
    "key in place of a variable name": (lambda t: ["eval", "--api-key-env", "sk-abc-123", *OFFLINE[:2]],
                                        [r"`api_key_env` must be the NAME of an environment variable",
                                         r"got 'sk-'\.\.\. \(10 characters",
                                         r"^(?!.*abc-123)"]),
}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def tally(code: int, err: str) -> None:
    """Count one tried input in the report, from what the command did (call it after the assertions)."""
    entry = TALLY.setdefault("bad inputs", {"tried": 0, "exit 2": 0, "tracebacks": 0})
    entry["tried"] += 1
    entry["exit 2"] += code == 2
    entry["tracebacks"] += "Traceback" in err


def check_user_error(code: int, err: str, patterns: list[str]) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("error: "), err
    # one line, except a YAML parser's report, which points at the line and column with a caret
    assert len(err.strip().splitlines()) == 1 or "not valid YAML" in err, err
    for pattern in patterns:
        assert re.search(pattern, err), f"{pattern!r} not in {err!r}"


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_is_named_with_file_line_and_form(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCALE_DATA_DIR", raising=False)
    build, patterns = DATA_CASES[case]
    code, err = run_cli(build(tmp_path), capsys)
    check_user_error(code, err, patterns)
    tally(code, err)


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config_is_named_with_key_and_form(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build, patterns = CONFIG_CASES[case]
    code, err = run_cli(build(tmp_path), capsys)
    check_user_error(code, err, patterns)
    tally(code, err)


@pytest.mark.parametrize("flag", [["--workers", "0"], ["--limit", "-3"], ["--budgets", "128,abc"],
                                  ["--method", "magic"]])
def test_bad_flags_get_a_usage_error(flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["eval", *flag, *OFFLINE], capsys)
    assert code == 2 and "Traceback" not in err and "error: argument" in err
    tally(code, err)


@pytest.mark.fake_server
def test_unset_api_key_variable_stops_at_the_first_call(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found only when the first request is made: the run stops there, it does not fail every problem."""
    monkeypatch.delenv("SCALE_UNSET_KEY", raising=False)
    data = data_with(tmp_path, lines(*GOOD))
    with toy_server() as server:
        code, err = run_cli(["eval", "--method", "cot", "--benchmark", "gsm8k", "--data-dir", str(data), "--output",
                             str(tmp_path / "out"), "--no-progress", "--api-base", server.api_base, "--model",
                             "openai/fake", "--api-key-env", "SCALE_UNSET_KEY"], capsys)
        assert server.requests == []
    check_user_error(code, err, [r"The API key variable SCALE_UNSET_KEY is not set", r"export SCALE_UNSET_KEY="])
    results = tmp_path / "out" / "cot-gsm8k" / "results.jsonl"
    assert not results.exists() or results.read_text() == ""  # no problem recorded as failed for it
    tally(code, err)


def test_the_installed_command_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    bad = config_with(tmp_path, lambda c: c["scale"].update(threshold=7, thresold=1))
    write_jsonl(tmp_path / "data" / TEST_FILE, rows(3))
    broken = data_with(tmp_path / "b", lines(GOOD[0], "{oops"))
    for argv, pattern in ((["eval", "--config", str(bad), *OFFLINE], r"unknown key\(s\) 'thresold'"),
                          (["eval", "--benchmark", "gsm8k", "--data-dir", str(broken), *OFFLINE],
                           rf"{TEST_FILE}, line 2: malformed JSON")):
        done = run_scale(*argv, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and re.search(pattern, done.stderr), done.stderr
        assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
        tally(done.returncode, done.stderr)
