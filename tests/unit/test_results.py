"""optimize.evaluation.results: durable appends, a forgiving reader, and config fingerprints."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from optimize.evaluation.results import ProblemResult, ResultsFile, config_fingerprint, latest_by_id, load_results
from program.config import ProgramConfig, ScaleConfig
from program.presets import preset


def row(problem_id: str, **fields: object) -> ProblemResult:
    return ProblemResult(id=problem_id, benchmark="toy", gold="1", fingerprint="f", **fields)  # type: ignore[arg-type]


def test_append_then_read_round_trips(tmp_path: Path) -> None:
    store = ResultsFile(tmp_path / "deep" / "results.jsonl")
    original = row("a", answer="1", correct=True, trace={"steps": [{"mode": "system2", "difficulty": 0.8}]},
                   stages={"system1": {"prompt_tokens": 3}}, error=None)
    store.append(original)
    assert store.read() == [original]
    assert store.path.read_text().endswith("\n")


def test_unserialisable_trace_values_are_stored_as_text(tmp_path: Path) -> None:
    store = ResultsFile(tmp_path / "r.jsonl")
    store.append(row("a", trace={"object": object()}))
    assert store.read()[0].trace["object"].startswith("<object object")


def test_truncated_last_line_is_cut_and_next_append_is_clean(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = ResultsFile(tmp_path / "r.jsonl")
    store.append(row("a"))
    with store.path.open("a") as handle:
        handle.write('{"id": "b", "gold": "2", "tra')
    with caplog.at_level("WARNING"):
        assert [r.id for r in store.read()] == ["a"]
    assert "truncated last line" in caplog.text
    store.append(row("c"))
    assert [json.loads(line)["id"] for line in store.path.read_text().splitlines()] == ["a", "c"]


def test_complete_last_line_missing_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(row("a").to_dict()))
    store = ResultsFile(path)
    assert [r.id for r in store.read()] == ["a"]
    store.append(row("b"))
    assert [r.id for r in store.read()] == ["a", "b"]


def test_bad_line_in_the_middle_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join([json.dumps(row("a").to_dict()), "garbage", "[1, 2]", "",
                               json.dumps(row("b").to_dict())]) + "\n")
    with caplog.at_level("WARNING"):
        assert [r.id for r in ResultsFile(path).read()] == ["a", "b"]
    assert "r.jsonl:2: unreadable" in caplog.text and "r.jsonl:3: unreadable" in caplog.text


def test_unknown_keys_from_newer_files_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({**row("a").to_dict(), "added_later": 1}) + "\n")
    assert ResultsFile(path).read()[0].id == "a"


def test_missing_file_reads_empty(tmp_path: Path) -> None:
    assert ResultsFile(tmp_path / "none.jsonl").read() == []


def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    store = ResultsFile(tmp_path / "r.jsonl")
    threads = [threading.Thread(target=lambda i=i: [store.append(row(f"{i}-{j}", solution="x" * 5000))
                                                     for j in range(10)]) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.id for r in store.read()}) == 80


def test_latest_line_wins_and_fingerprints_filter() -> None:
    rows = [row("a", error="ServerError: down"), row("b"), row("a", correct=True),
            replace(row("c"), fingerprint="other")]
    latest = latest_by_id(rows, "f")
    assert list(latest) == ["a", "b"] and latest["a"].correct


def test_load_results_uses_the_latest_config(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = ResultsFile(tmp_path / "r.jsonl")
    store.append(replace(row("a"), fingerprint="old"))
    store.append(row("b"))
    with caplog.at_level("WARNING"):
        assert [r.id for r in load_results(store.path)] == ["b"]
    assert "1 other config" in caplog.text
    assert [r.id for r in load_results(store.path, fingerprint="old")] == ["a"]


def test_fingerprint_tracks_answers_not_connections() -> None:
    base = ProgramConfig()
    moved = replace(base, lm=base.lm.with_overrides(api_base="http://elsewhere:9000/v1"))
    assert config_fingerprint(base) == config_fingerprint(moved)
    assert config_fingerprint(base) != config_fingerprint(replace(base, scale=ScaleConfig(threshold=0.2)))
    assert config_fingerprint(base) != config_fingerprint(replace(base, lm=preset("qwen3")))
    assert config_fingerprint({"a": 1}) == config_fingerprint({"a": 1, "timeout": 5})


def test_lone_surrogate_in_model_text_is_stored_exactly(tmp_path: Path) -> None:
    store = ResultsFile(tmp_path / "r.jsonl")
    store.append(row("a", solution="broken \ud800 text", answer="é"))
    [result] = store.read()
    assert result.solution == "broken \ud800 text" and result.answer == "é"


def test_a_new_optional_field_leaves_the_fingerprint_alone() -> None:
    """A field added with a default (here by subclassing, at the top and inside ``scale``) orphans no result."""
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class NewScale(ScaleConfig):
        server_kind: str = "vllm"

    @dataclass(frozen=True)
    class NewProgram(ProgramConfig):
        concurrency: int | None = None
        scale: ScaleConfig = field(default_factory=NewScale)

    assert config_fingerprint(NewProgram()) == config_fingerprint(ProgramConfig())
    assert config_fingerprint(NewProgram(scale=NewScale(threshold=0.2))) == config_fingerprint(
        ProgramConfig(scale=ScaleConfig(threshold=0.2)))
    assert config_fingerprint(NewProgram(concurrency=4)) != config_fingerprint(ProgramConfig())
    assert config_fingerprint(NewProgram(scale=NewScale(server_kind="sglang"))) != config_fingerprint(ProgramConfig())
