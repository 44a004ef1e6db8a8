"""``scale data list|show`` and ``scale grade`` through ``optimize.cli.main``."""

from __future__ import annotations

from pathlib import Path

import pytest

from data import load_benchmark
from optimize.cli import main


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_data_list(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list", "--data-dir", str(shared_data)]) == 0
    out = capsys.readouterr().out
    for text in ("aime24", "math_train", "pool", "7473", "7498", "1319", "latex", "HuggingFaceH4/MATH-500",
                 "openai/gsm8k"):
        assert text in out
    assert str(shared_data / "gsm8k_train.jsonl") in out


def test_data_list_marks_missing_local_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "aime2024.jsonl").write_text('{"id": "a", "problem": "p", "answer": "1"}\n', encoding="utf-8")
    assert main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("│")}
    assert " 1 " in lines["aime24"] and str(tmp_path / "aime2024.jsonl") in lines["aime24"]
    assert "- (math500.jsonl)" in lines["math500"]


def test_data_list_with_a_missing_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list", "--data-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "not a directory" in err


def test_data_show_first_problems(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "show", "aime24", "--limit", "2", "--data-dir", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert "aime2024-I-01  answer: 204" in out and "aime2024-I-02  answer: 25" in out
    assert "Aya goes for a $9$-kilometer-long walk" in out
    assert "aime2024-I-03" not in out


def test_data_show_with_seed_matches_the_library(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "show", "math500", "--limit", "3", "--seed", "7", "--data-dir", str(shared_data)]) == 0
    out = capsys.readouterr().out
    for example in load_benchmark("math500", data_dir=shared_data, limit=3, seed=7):
        assert f"{example.id}  answer: {example.answer}" in out


def test_data_show_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "show", "aime2099"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "unknown benchmark 'aime2099'" in err and "gsm8k_train" in err


def test_bad_file_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "aime2024.jsonl"
    path.write_text('{"id": "a", "problem": "p", "answer": "1"}\n{"id": "b", "problem": "q", answer: 2}\n',
                    encoding="utf-8")
    assert main(["data", "show", "aime24", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert err.startswith("error: ") and f"{path}, line 2: malformed JSON" in err


def test_missing_field_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "math500.jsonl").write_text('{"id": "a", "answer": "1"}\n', encoding="utf-8")
    assert main(["data", "show", "math500", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "line 1: field 'problem' is missing" in err


def test_grade_match_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grade", "--gold", r"\frac{1}{2}", "--output", r"<think>\boxed{3}</think> so \boxed{0.5}"]) == 0
    out = capsys.readouterr().out
    assert "extracted: 0.5" in out and "correct:   yes" in out and "math-verify 0.9" in out


def test_grade_mismatch_exits_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grade", "--gold", "204", "--output", "Final Answer: 240"]) == 1
    out = capsys.readouterr().out
    assert "extracted: 240" in out and "correct:   no (integer mismatch)" in out


def test_grade_no_answer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grade", "--gold", "204", "--output", "<think>never finished"]) == 1
    assert "extracted: (none)" in capsys.readouterr().out


def test_grade_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out.txt"
    output.write_text("Work.\nFinal Answer:\n1,234\n", encoding="utf-8")
    assert main(["grade", "--gold", "1234", "--output-file", str(output)]) == 0
    assert main(["grade", "--gold", "1234", "--output-file", str(tmp_path / "nope.txt")]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "nope.txt" in err


def test_grade_needs_an_output(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["grade", "--gold", "1"])
    assert info.value.code == 2
