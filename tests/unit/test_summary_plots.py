"""optimize.evaluation: summary, sweep + plots, sft: numbers checked by hand."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import dspy
import pytest
from rich.console import Console

from optimize.evaluation.results import ProblemResult, ResultsFile
from optimize.evaluation.sft import DEFAULT_SYSTEM, compose_solution, export_sft
from optimize.evaluation.summary import print_summary, summarize, write_summary
from optimize.evaluation.sweep import budget_config, print_sweep, sweep_budgets
from program.clients.transport import Completion
from program.config import ProgramConfig
from program.ledger import stage
from program.testing import function_lm


def totals(prompt: int, completion: int, thinking: int, calls: int = 1) -> dict[str, float]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "thinking_tokens": thinking,
            "answer_tokens": completion - thinking, "total_tokens": prompt + completion, "calls": calls}


def hand_example() -> list[ProblemResult]:
    a = ProblemResult(
        "a", correct=True, totals=totals(100, 50, 30, 2), spent=totals(100, 50, 30, 2),
        stages={"decompose": totals(40, 10, 0), "system2_thinking": totals(60, 40, 30)},
        trace={"steps": [{"mode": "system1", "difficulty": 0.1}, {"mode": "system2", "difficulty": 0.9}]},
        wall_seconds=2.0, llm_seconds=1.5, grader_version="g1", fingerprint="f")
    b = ProblemResult(  # all its calls were cache hits: it cost 90 tokens but this run paid none
        "b", correct=False, totals=totals(60, 30, 0), spent=totals(0, 0, 0, 0), stages={"decompose": totals(60, 30, 0)},
        trace={"steps": [{"mode": "system1"}, {"mode": "system1"}]}, wall_seconds=1.0, llm_seconds=0.0,
        grader_version="g1", fingerprint="f")
    c = ProblemResult("c", error="ServerError: down", error_type="ServerError", totals=totals(20, 0, 0),
                      spent=totals(20, 0, 0), stages={"decompose": totals(20, 0, 0)}, wall_seconds=0.5,
                      llm_seconds=0.5, grader_version="g1", fingerprint="f")
    return [a, b, c]


def test_summary_numbers_match_a_hand_computed_example() -> None:
    s = summarize(hand_example(), run_seconds=4.0)
    assert (s.n, s.n_correct, s.n_failed, s.failures) == (3, 1, 1, {"ServerError": 1})
    assert s.accuracy == pytest.approx(100 / 3)
    assert s.mean_tokens == pytest.approx((150 + 90 + 20) / 3)
    assert s.mean_tokens_by_kind == pytest.approx({"prompt_tokens": 60.0, "completion_tokens": 80 / 3,
                                                   "thinking_tokens": 10.0, "answer_tokens": 50 / 3})
    assert s.mean_tokens_by_stage["decompose"]["prompt_tokens"] == pytest.approx(40.0)
    assert s.mean_tokens_by_stage["decompose"]["calls"] == pytest.approx(1.0)
    assert s.mean_tokens_by_stage["system2_thinking"]["thinking_tokens"] == pytest.approx(10.0)
    assert (s.system2_share, s.steps) == (25.0, 4)
    assert (s.total_tokens, s.spent_tokens) == (260, 170)
    assert (s.wall_seconds, s.llm_seconds, s.run_seconds) == (3.5, 2.0, 4.0)
    assert (s.grader_version, s.fingerprint) == ("g1", "f")


def test_summary_of_nothing_and_of_plan_free_methods() -> None:
    empty = summarize([])
    assert (empty.n, empty.accuracy, empty.mean_tokens, empty.system2_share) == (0, 0.0, 0.0, None)
    assert summarize([ProblemResult("x", correct=True)]).system2_share is None


def test_summary_is_printed_and_saved(tmp_path: Path) -> None:
    s = summarize(hand_example(), grader_version="math-verify 0.9.0; scale grading 1")
    buffer = io.StringIO()
    print_summary(s, title="toy", console=Console(file=buffer, width=120))
    text = buffer.getvalue()
    # one of 3 failed: the accuracy is shown over the 2 answered problems and marked incomplete, not as 1/3
    for expected in ("incomplete: 1 of 3 problems failed", "50.0% (1/2)", "1 ServerError", "87", "25% of 4", "260",
                     "170", "decompose", "system2_thinking", "math-verify 0.9.0"):
        assert expected in text
    assert "33.3%" not in text
    path = write_summary(s, tmp_path / "summary.json")
    assert json.loads(path.read_text())["spent_tokens"] == 170


# --- budget sweep -------------------------------------------------------------------------------

# Per budget: thinking tokens of problems 1..4 and how many of the first problems are solved.
THINKING = {128: [64, 64, 64, 64], 256: [128, 128, 128, 128], 512: [100, 100, 100, 724]}
SOLVED = {128: 1, 256: 2, 512: 3}


class FakeForcing:
    """The bf method's shape: one forced-thinking call whose thinking tokens depend on the budget."""

    def __init__(self, config: ProgramConfig) -> None:
        assert config.method == "bf"
        self.budget = config.lm.system2.thinking_budget

    def forward(self, problem: str) -> dspy.Prediction:
        index = int(re.findall(r"\d+", problem)[0])
        tokens = THINKING[self.budget][index - 1]
        lm = function_lm(lambda m: Completion(text="\\boxed{1}", thinking="hm", prompt_tokens=5,
                                              completion_tokens=tokens + 3, thinking_tokens=tokens), "bf")
        with stage("forced_thinking"):
            lm(problem)
        answer = "1" if index <= SOLVED[self.budget] else "0"
        return dspy.Prediction(answer=answer, solution=f"\\boxed{{{answer}}}", trace={})

    __call__ = forward


def test_budget_config_overrides_only_the_system2_budget() -> None:
    config = budget_config(ProgramConfig(method="scale"), 300)
    assert (config.method, config.lm.system2.thinking_budget) == ("bf", 300)
    assert config.lm.system1 == ProgramConfig().lm.system1


def test_budget_sweep_reports_s1_metrics_and_a_plot(tmp_path: Path) -> None:
    examples = [dspy.Example(id=f"q{i}", problem=f"Problem {i}", answer="1").with_inputs("problem")
                for i in range(1, 5)]
    report = sweep_budgets(ProgramConfig(), examples, [512, 128, 256], run_dir=tmp_path, name="bf-toy",
                           build=FakeForcing, progress=False)
    assert [p.budget for p in report.points] == [128, 256, 512]
    assert [p.accuracy for p in report.points] == [25.0, 50.0, 75.0]
    assert [p.mean_thinking_tokens for p in report.points] == [64.0, 128.0, 256.0]
    assert [p.control for p in report.points] == [100.0, 100.0, 75.0]
    assert report.control == pytest.approx(100 * 11 / 12)  # pooled over the 12 runs: one went over
    assert report.scaling == pytest.approx(25.0)  # +25 points per doubling of thinking tokens
    assert report.performance == 75.0
    assert report.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "bf-toy-budget256" / "results.jsonl").is_file()
    assert json.loads(report.report_path.read_text())["performance"] == 75.0

    buffer = io.StringIO()
    print_sweep(report, console=Console(file=buffer, width=120))
    assert "Control: 92%" in buffer.getvalue() and "+25.0 points per doubling" in buffer.getvalue()


def test_budget_sweep_rejects_bad_budgets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive token counts"):
        sweep_budgets(ProgramConfig(), [], [128, 0], run_dir=tmp_path)


# --- SFT export ---------------------------------------------------------------------------------

STEPS = [{"index": 0, "step": "Find the eggs left after breakfast.", "difficulty": {"score": 0.2}, "mode": "system1",
          "visible": "16 - 3 = 13, so \\boxed{13}.", "value": "13"},
         {"index": 1, "step": "Find the money made from the eggs left.", "difficulty": {"score": 0.7},
          "mode": "system2", "visible": "13 * 2 = 26, so \\boxed{26}.", "value": "26", "thinking": "never exported"}]


def test_sft_export_writes_correct_scale_traces_as_chat(tmp_path: Path) -> None:
    store = ResultsFile(tmp_path / "results.jsonl")
    store.append(ProblemResult("good", problem="Janet's ducks...", gold="26", answer="26", extracted="26",
                               correct=True, trace={"steps": STEPS}, fingerprint="f"))
    store.append(ProblemResult("wrong", problem="p", gold="1", answer="2", correct=False,
                               trace={"steps": STEPS}, fingerprint="f"))
    store.append(ProblemResult("no-plan", problem="p", gold="1", answer="1", correct=True, trace={}, fingerprint="f"))
    store.append(ProblemResult("failed", problem="p", gold="1", error="ServerError: x", fingerprint="f"))

    export = export_sft(store.path, tmp_path / "sft" / "train.jsonl")
    assert (export.written, export.skipped) == (1, 3)
    [example] = [json.loads(line) for line in export.path.read_text().splitlines()]
    system, user, assistant = example["messages"]
    assert system == {"role": "system", "content": DEFAULT_SYSTEM}
    assert user == {"role": "user", "content": "Janet's ducks..."}
    assert assistant["role"] == "assistant"
    assert assistant["content"] == (
        "Step 1: Find the eggs left after breakfast.\n16 - 3 = 13, so \\boxed{13}.\n\n"
        "Step 2: Find the money made from the eggs left.\n13 * 2 = 26, so \\boxed{26}.\n\n"
        "Final answer: \\boxed{26}")
    assert "never exported" not in export.path.read_text()

    bare = export_sft(store.path, tmp_path / "bare.jsonl", system=None)
    assert [m["role"] for m in json.loads(bare.path.read_text())["messages"]] == ["user", "assistant"]


def test_sft_step_without_text_is_not_exported() -> None:
    assert compose_solution([{"mode": "system1"}], "1") is None
    assert (compose_solution([{"step": "Find x.", "value": "3"}], "3")
            == "Step 1: Find x.\n3\n\nFinal answer: \\boxed{3}")


def test_trace_readers_follow_the_scale_trace_shape() -> None:
    from optimize.evaluation.traces import failure_text, step_difficulty, step_solution, step_usage

    assert step_difficulty(STEPS[1]) == 0.7 and step_difficulty({"difficulty": None}) is None
    assert step_solution(STEPS[0]) == "16 - 3 = 13, so \\boxed{13}."
    assert step_usage({"usage": {"calls": 1, "prompt_tokens": 5}}) == {"calls": 1, "prompt_tokens": 5}
    assert failure_text({"stage": "difficulty", "reason": "unreadable score", "step": 1}) == \
        "difficulty (step 2): unreadable score"
