"""Benchmark registry, local/Hub loading, row validation, deterministic slices and dev splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import data.loading as loading
from data import (
    BENCHMARKS,
    DataError,
    dev_split,
    find_local_file,
    get_benchmark,
    load_benchmark,
    parse_slice,
    validate_jsonl,
)

ROWS = {"aime24": 30, "aime25": 30, "amc23": 40, "math500": 500, "gsm8k": 1319, "gsm8k_train": 7473, "math_train": 7498}


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows(n: int, prefix: str = "t") -> list[dict]:
    return [{"id": f"{prefix}-{i}", "problem": f"What is {i}+1?", "answer": str(i + 1)} for i in range(n)]


# --- registry ---------------------------------------------------------------------------------

def test_registry_has_the_test_sets_and_pools() -> None:
    assert set(BENCHMARKS) == set(ROWS)
    assert {n for n, b in BENCHMARKS.items() if b.role == "pool"} == {"gsm8k_train", "math_train"}
    assert {b.answer_type for b in BENCHMARKS.values()} == {"integer", "latex"}
    assert get_benchmark("gsm8k").hub_config == "main" and get_benchmark("math500").hub_id == "HuggingFaceH4/MATH-500"


def test_unknown_benchmark_lists_the_known_ones() -> None:
    with pytest.raises(DataError, match="unknown benchmark 'aime23'.*aime24.*math_train"):
        get_benchmark("aime23")


@pytest.mark.parametrize(("name", "row", "expected"), [
    ("gsm8k", {"answer": "48/2 = 24\n#### 1,234"}, "1234"),
    ("gsm8k", {"answer": "no marker"}, ""),
    ("math_train", {"solution": r"So $x=\boxed{\frac{1}{2}}$, not \boxed{3}. Final: $\boxed{\{1,2\}}$"}, r"\{1,2\}"),
    ("math_train", {"solution": "no box"}, ""),
    ("aime25", {"answer": "025"}, "25"),
    ("amc23", {"answer": 27.0}, "27"),
    ("amc23", {"answer": 2.5}, "2.5"),
    ("math500", {"answer": r" \left( 3, \frac{\pi}{2} \right) "}, r"\left( 3, \frac{\pi}{2} \right)"),
])
def test_hub_answer_rules(name: str, row: dict, expected: str) -> None:
    assert get_benchmark(name).hub_answer(row) == expected


def test_hub_ids_fall_back_to_the_row_index() -> None:
    assert get_benchmark("gsm8k").hub_id_of({"question": "q"}, 7) == "gsm8k-0007"
    assert get_benchmark("aime24").hub_id_of({"id": 60}, 0) == "60"


# --- local loading ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ROWS))
def test_every_local_benchmark_loads(name: str, shared_data: Path) -> None:
    examples = load_benchmark(name, data_dir=shared_data)
    assert len(examples) == ROWS[name]
    first = examples[0]
    assert set(first.inputs().keys()) == {"problem"} and set(first.labels().keys()) == {"id", "answer", "benchmark"}
    assert first.benchmark == name
    assert all(isinstance(e.answer, str) and e.answer and isinstance(e.id, str) for e in examples)
    assert len({e.id for e in examples}) == len(examples)


def test_known_rows(shared_data: Path) -> None:
    aime = load_benchmark("aime24", data_dir=shared_data, limit=2)
    assert [(e.id, e.answer) for e in aime] == [("aime2024-I-01", "204"), ("aime2024-I-02", "25")]
    math = load_benchmark("math500", data_dir=shared_data, limit=1)[0]
    assert math.answer == r"\left( 3, \frac{\pi}{2} \right)"  # LaTeX kept as is, not JSON-quoted


def test_limit_and_seed_are_deterministic(shared_data: Path) -> None:
    ids = lambda **kw: [e.id for e in load_benchmark("gsm8k", data_dir=shared_data, **kw)]  # noqa: E731
    assert ids(limit=3) == ["gsm8k-test-0000", "gsm8k-test-0001", "gsm8k-test-0002"]
    sampled = ids(limit=10, seed=1)
    assert sampled == ids(limit=10, seed=1) and sampled != ids(limit=10, seed=2)
    assert sampled != ids(limit=10) and len(set(sampled)) == 10
    assert ids(limit=20, seed=1)[:10] == sampled  # a larger sample extends a smaller one
    assert len(ids(limit=5000)) == 1319


@pytest.mark.parametrize("limit", [0, -1, True, 2.5])
def test_bad_limit(limit: object, shared_data: Path) -> None:
    with pytest.raises(DataError, match="limit"):
        load_benchmark("aime24", data_dir=shared_data, limit=limit)  # type: ignore[arg-type]


def test_directory_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for folder in ("explicit", "env", "repo", "shared/data"):
        (tmp_path / folder).mkdir(parents=True)
    explicit = _write(tmp_path / "explicit" / "aime2024.jsonl", _rows(1, "explicit"))
    env = _write(tmp_path / "env" / "aime2024.jsonl", _rows(2, "env"))
    beside = _write(tmp_path / "shared" / "data" / "aime2024.jsonl", _rows(3, "beside"))  # <repo>/../shared/data
    repo = tmp_path / "repo"
    monkeypatch.setattr(loading, "_PROJECT_ROOT", repo)
    monkeypatch.setenv("SCALE_DATA_DIR", str(env.parent))
    assert find_local_file("aime24", explicit.parent) == explicit
    assert load_benchmark("aime24", data_dir=explicit.parent)[0].id == "explicit-0"
    assert find_local_file("aime24") == env and len(load_benchmark("aime24")) == 2
    monkeypatch.delenv("SCALE_DATA_DIR")
    assert find_local_file("aime24") == beside and len(load_benchmark("aime24")) == 3
    beside.unlink()
    assert find_local_file("aime24") is None


def test_offline_without_local_copy_names_both_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "_PROJECT_ROOT", tmp_path / "repo")
    monkeypatch.delenv("SCALE_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError) as info:
        load_benchmark("math500")
    message = str(info.value)
    assert "--data-dir" in message and "SCALE_DATA_DIR" in message and "HuggingFaceH4/MATH-500" in message


def test_explicit_dirs_that_lack_the_file_are_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="aime2024.jsonl not found"):
        load_benchmark("aime24", data_dir=tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        load_benchmark("aime24", data_dir=tmp_path / "missing")
    monkeypatch.setenv("SCALE_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="SCALE_DATA_DIR"):
        load_benchmark("aime24")


def test_hub_rows_are_mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    def fake_load_dataset(path: str, name: str | None = None, split: str | None = None, **kw: object) -> list[dict]:
        calls.append((path, name, split))
        return [{"question": "Q1", "answer": "x\n#### 1,000"}, {"question": "Q2", "answer": "no marker"},
                {"question": "Q3", "answer": "#### 7"}]

    monkeypatch.setattr(loading, "_PROJECT_ROOT", tmp_path / "repo")
    monkeypatch.delenv("SCALE_DATA_DIR", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    examples = load_benchmark("gsm8k_train")
    assert calls == [("openai/gsm8k", "main", "train")]
    assert [(e.id, e.problem, e.answer) for e in examples] == [("gsm8k_train-0000", "Q1", "1000"),
                                                               ("gsm8k_train-0002", "Q3", "7")]

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **kw: [{"text": "renamed columns"}])
    with pytest.raises(DataError, match="gave no rows with fields 'question' and 'answer'"):
        load_benchmark("gsm8k")

    def unreachable(*args: object, **kw: object) -> None:
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataError, match="(?s)no route to host.*--data-dir.*SCALE_DATA_DIR.*openai/gsm8k"):
        load_benchmark("gsm8k")


# --- validation -------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "pattern"), [
    ('{"id": "b", "problem": "p", "answer": "1"', "line 2: malformed JSON"),
    ('{"id": "b", "problem": "p"}', "line 2: field 'answer' is missing; expected a non-empty string"),
    ('{"id": "b", "problem": "  ", "answer": "1"}', "line 2: field 'problem' is empty"),
    ('{"id": "b", "problem": "p", "answer": ["1"]}', "line 2: field 'answer' has type list"),
    ('{"id": "b", "problem": "p", "answer": true}', "line 2: field 'answer' has type bool"),
    ('{"id": null, "problem": "p", "answer": "1"}', "line 2: field 'id' is missing"),
    ('{"id": "a", "problem": "p", "answer": "1"}', "line 2: field 'id' value 'a' repeats line 1"),
    ('["a", "p", "1"]', "line 2: a JSON list, expected a JSON object"),
    ("   ", "line 2: empty line"),
])
def test_bad_rows_name_file_line_and_field(line: str, pattern: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "aime2024.jsonl", [{"id": "a", "problem": "p", "answer": "1"}, line,
                                                {"id": "c", "problem": "r", "answer": "3"}])
    with pytest.raises(DataError, match=pattern) as info:
        load_benchmark("aime24", data_dir=tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(content: str, tmp_path: Path) -> None:
    (tmp_path / "aime2024.jsonl").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match="the file is empty"):
        load_benchmark("aime24", data_dir=tmp_path)


def test_numbers_become_strings(tmp_path: Path) -> None:
    _write(tmp_path / "amc2023.jsonl", [{"id": 1, "problem": "p", "answer": 5},
                                        {"id": "two", "problem": "q", "answer": "\\frac{1}{2}", "extra": [1]},
                                        {"id": 3, "problem": "r", "answer": 2.5}])
    examples = load_benchmark("amc23", data_dir=tmp_path)
    assert [(e.id, e.answer) for e in examples] == [("1", "5"), ("two", "\\frac{1}{2}"), ("3", "2.5")]
    assert validate_jsonl(tmp_path / "amc2023.jsonl")[1] == {"id": "two", "problem": "q", "answer": "\\frac{1}{2}"}


def test_trailing_blank_lines_and_crlf_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "aime2024.jsonl"
    path.write_bytes(b'{"id": "a", "problem": "p", "answer": "1"}\r\n'
                     b'{"id": "b", "problem": "q", "answer": "2"}\r\n\n\n')
    assert [(e.id, e.answer) for e in load_benchmark("aime24", data_dir=tmp_path)] == [("a", "1"), ("b", "2")]


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    path = _write(tmp_path / "aime2024.jsonl", _rows(2))
    assert len(load_benchmark("aime24", data_dir=tmp_path)) == 2
    _write(path, _rows(4))
    assert len(load_benchmark("aime24", data_dir=tmp_path)) == 4


# --- dev splits and slices --------------------------------------------------------------------

def test_dev_split_from_a_pool(shared_data: Path) -> None:
    first = dev_split("gsm8k_train", 20, data_dir=shared_data)
    assert len(first) == 20 and all(e.benchmark == "gsm8k_train" for e in first)
    assert [e.id for e in first] == [e.id for e in dev_split("gsm8k_train", 20, data_dir=shared_data)]
    second = dev_split("gsm8k_train", 20, offset=20, data_dir=shared_data)
    assert not {e.id for e in first} & {e.id for e in second}
    assert [e.id for e in dev_split("gsm8k_train", 40, data_dir=shared_data)] == [e.id for e in first + second]
    assert [e.id for e in dev_split("gsm8k_train", 20, seed=1, data_dir=shared_data)] != [e.id for e in first]


def test_dev_split_refuses_test_sets_and_bad_sizes(shared_data: Path) -> None:
    with pytest.raises(DataError, match="'aime24' is a test set.*gsm8k_train, math_train"):
        dev_split("aime24", 5, data_dir=shared_data)
    with pytest.raises(DataError, match="exceeds the pool's 7473 rows"):
        dev_split("gsm8k_train", 10, offset=7470, data_dir=shared_data)
    with pytest.raises(DataError, match="`n=0`"):
        dev_split("gsm8k_train", 0, data_dir=shared_data)


def test_parse_slice() -> None:
    assert parse_slice("gsm8k_train:20") == ("gsm8k_train", 20)
    assert parse_slice(" math_train:5 ") == ("math_train", 5)
    for bad in ("gsm8k_train", "gsm8k_train:x", "gsm8k_train:0", "gsm8k_train:-3", ":4"):
        with pytest.raises(DataError, match="NAME:N|unknown benchmark"):
            parse_slice(bad)
    with pytest.raises(DataError, match="unknown benchmark 'nope'"):
        parse_slice("nope:3")
