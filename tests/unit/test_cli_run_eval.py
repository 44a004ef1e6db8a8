"""``scale run`` and ``scale eval`` end to end on scripted LMs (real SCALE program, fake data loader)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dspy
import pytest

from optimize.cli import main
from optimize.evaluation import evaluate as evaluation
from program.baselines import BudgetForcing
from program.clients.transport import Completion
from program.config import ProgramConfig
from program.errors import ServerError
from program.methods import build_program
from program.testing import function_lm, scripted_systems

OFFLINE = ["--api-base", "http://127.0.0.1:9/v1"]  # a named server: the embedded one is not started
EGGS = "Janet's ducks lay 16 eggs. She eats 3 and sells the rest at $2 each. How many dollars does she make?"


def stages(messages: list[dict[str, str]]) -> str:
    text = "\n".join(m["content"] for m in messages)
    if "Break the math problem" in text:
        return "1. Find the eggs left, call it E.\n2. Find the money made from E eggs."
    return "0.1"  # every step is easy; the last-step rule still sends the last one to System 2


def solver(messages: list[dict[str, str]]) -> str:
    current = messages[-1]["content"].split("Current step:")[-1]
    return "16 - 3 = 13, so \\boxed{13}." if "eggs left" in current else "13 * 2 = 26, so \\boxed{26}."


def scripted_build(config: ProgramConfig) -> dspy.Module:
    if config.method == "bf":  # thinking grows with the budget; only budgets >= 128 get it right
        budget = config.lm.system2.thinking_budget
        answer = "26" if budget >= 128 else "25"
        lm = function_lm(lambda m: Completion(text=f"\\boxed{{{answer}}}", thinking="hm", prompt_tokens=9,
                                              completion_tokens=budget // 2 + 2, thinking_tokens=budget // 2), "bf")
        return BudgetForcing(lm=lm)
    return build_program(config, scripted_systems(stages, solver))


@pytest.fixture
def fake_setup(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Scripted programs for every method, and a loader that serves a toy benchmark."""
    calls: list[dict] = []

    def load_benchmark(name: str, *, data_dir=None, limit=None, seed=None) -> list[dspy.Example]:
        calls.append({"name": name, "limit": limit, "seed": seed})
        rows = [dspy.Example(id=f"{name}-{i}", problem=EGGS, answer="26", benchmark=name).with_inputs("problem")
                for i in range(5)]
        return rows[:limit]

    monkeypatch.setenv("COLUMNS", "200")  # rich tables on one line each, so the output can be searched
    monkeypatch.setattr("data.loading.load_benchmark", load_benchmark)
    monkeypatch.setattr(evaluation, "build_program", scripted_build)
    return calls


def test_scale_eval_writes_results_summary_config_and_resumes(tmp_path: Path, fake_setup: list[dict],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "--method", "scale", "--benchmark", "toy", "--limit", "3", "--seed", "7", "--workers", "2",
            "--output", str(tmp_path), "--threshold", "0.5", "--no-progress",
            "--export-sft", str(tmp_path / "sft.jsonl"), *OFFLINE]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert fake_setup == [{"name": "toy", "limit": 3, "seed": 7}]
    run_dir = tmp_path / "scale-toy"
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["toy-0", "toy-1", "toy-2"] and all(r["correct"] for r in rows)
    assert [s["mode"] for s in rows[0]["trace"]["steps"]] == ["system1", "system2"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accuracy"] == 100.0 and summary["system2_share"] == 50.0
    assert "threshold: 0.5" in (run_dir / "config.yaml").read_text()
    assert "100.0% (3/3)" in out and "3 new, 0 resumed" in out and "SFT data" in out
    assert len((tmp_path / "sft.jsonl").read_text().splitlines()) == 3

    assert main(argv) == 0  # the same command again: nothing is solved twice
    assert "0 new, 3 resumed" in capsys.readouterr().out
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == 3


def test_scale_eval_budget_sweep_prints_s1_metrics(tmp_path: Path, fake_setup: list[dict],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "--benchmark", "toy", "--limit", "2", "--budgets", "64,128,256", "--output", str(tmp_path),
            "--no-progress", *OFFLINE]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for budget in (64, 128, 256):
        assert (tmp_path / f"bf-toy-budget{budget}" / "results.jsonl").is_file()
        assert f"thinking_budget: {budget}" in (tmp_path / f"bf-toy-budget{budget}" / "config.yaml").read_text()
    assert "Control: 100%" in out and "Performance: 100.0%" in out
    # accuracy 0 -> 100 -> 100 at 32 -> 64 -> 128 thinking tokens: slopes 100, 50, 0 per doubling
    assert re.search(r"Scaling: \+50\.0 points per doubling", out)
    assert (tmp_path / "bf-toy-scaling.png").read_bytes()[:4] == b"\x89PNG"


def test_scale_eval_rejects_budgets_with_another_method(fake_setup: list[dict],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--method", "scale", "--budgets", "64", *OFFLINE]) == 2
    assert "--budgets runs the bf method" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--budgets", "64,zero"])


def test_scale_eval_stops_cleanly_when_the_server_is_down(tmp_path: Path, fake_setup: list[dict],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    class Down:
        def forward(self, problem: str) -> None:
            raise ServerError("The LLM server http://127.0.0.1:9/v1 failed after 4 attempts")

        __call__ = forward

    monkeypatch.setattr(evaluation, "build_program", lambda config: Down())
    argv = ["eval", "--benchmark", "toy", "--limit", "5", "--output", str(tmp_path), "--no-progress",
            "--max-server-errors", "2", *OFFLINE]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "2 problems in a row failed with server errors" in err and "run the same command again" in err
    assert len((tmp_path / "scale-toy" / "results.jsonl").read_text().splitlines()) == 2


def test_scale_run_prints_steps_tokens_and_answer(fake_setup: list[dict], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", EGGS, "--threshold", "0.5", *OFFLINE]) == 0
    out = capsys.readouterr().out
    for expected in ("Find the eggs left, call it E.", "Find the money made from E eggs.", "0.10", "0.90",
                     "system1", "system2", "decompose", "difficulty", "Tokens by stage", "Totals: 4 calls",
                     "Answer: 26"):
        assert expected in out, expected


def test_scale_run_of_a_plan_free_method_shows_the_solution(fake_setup: list[dict],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "What is 13 * 2?", "--method", "cot", *OFFLINE]) == 0
    out = capsys.readouterr().out
    assert "Solution" in out and "cot" in out
    assert re.search(r"Answer: 26\b", out), out  # the scripted solver's 13 * 2 = 26


def test_scale_eval_samples_run_sampled_configs_k_times_and_greedy_ones_once(
        tmp_path: Path, fake_setup: list[dict], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "--method", "vote", "--benchmark", "toy", "--limit", "2", "--samples", "3",
            "--output", str(tmp_path), "--no-progress", *OFFLINE]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for k in (1, 2):
        assert len((tmp_path / "vote-toy" / f"sample-{k}" / "results.jsonl").read_text().splitlines()) == 2
    assert "Samples: 100.0%, 100.0%, 100.0%; mean 100.0%" in out
    argv = ["eval", "--method", "cot", "--benchmark", "toy", "--limit", "2", "--samples", "3",
            "--output", str(tmp_path), "--no-progress", *OFFLINE]
    assert main(argv) == 0
    assert "greedy, so the other samples would be identical; ran one" in capsys.readouterr().out
    assert not (tmp_path / "cot-toy" / "sample-1").exists()
