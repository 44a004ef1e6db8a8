"""optimize.evaluation.evaluate: resumable, concurrent evaluation with per-problem ledgers and durable lines."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import dspy
import pytest

from optimize.evaluation.evaluate import ServerDownError, evaluate, solve_one
from optimize.evaluation.results import ResultsFile, config_fingerprint, legacy_fingerprint, load_results
from program.clients.transport import Completion
from program.config import ConfigError, ProgramConfig
from program.errors import ModelOutputError, ServerError
from program.ledger import stage
from program.testing import count_tokens, function_lm


def add_problem(i: int) -> dspy.Example:
    return dspy.Example(id=f"p{i}", problem=f"What is {i} + {i}?", answer=str(2 * i),
                        benchmark="toy").with_inputs("problem")


EXAMPLES = [add_problem(i) for i in range(1, 7)]


def _solver(messages: list[dict[str, str]]) -> str:
    a, b = map(int, re.findall(r"\d+", messages[-1]["content"])[:2])
    return f"{a} + {b} = {a + b}, so \\boxed{{{a + b}}}"


class ToyProgram:
    """Two scripted LM calls per problem (a 'decompose' and a 'system1' stage), like a tiny SCALE.

    ``hook(problem)`` runs first in ``forward``: tests use it to raise or to wait.
    """

    def __init__(self, hook=None, wrong: set[str] = frozenset()) -> None:
        self.planner = function_lm(lambda m: "add the two numbers", "stages")
        self.solver = function_lm(_solver, "system1")
        self.hook, self.wrong = hook, wrong
        self.problems: list[str] = []
        self._lock = threading.Lock()

    @property
    def llm_calls(self) -> int:
        return len(self.planner.engine.requests) + len(self.solver.engine.requests)

    def forward(self, problem: str) -> dspy.Prediction:
        with self._lock:
            self.problems.append(problem)
        if self.hook:
            self.hook(problem)
        with stage("decompose"):
            plan = self.planner(f"Plan: {problem}")[0]
        with stage("system1"):
            solution = self.solver(problem)[0]
        answer = "0" if problem in self.wrong else re.findall(r"boxed\{(\d+)\}", solution)[-1]
        steps = [{"index": 0, "step": plan, "difficulty": {"score": 0.3}, "mode": "system1", "visible": solution,
                  "value": answer}]
        return dspy.Prediction(answer=answer, solution=solution, trace={"steps": steps, "failures": []})

    __call__ = forward


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resume_after_interrupt_runs_only_unfinished_problems(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    k = 3

    def interrupt_after_k(problem: str) -> None:
        if problem == EXAMPLES[k].problem:
            raise KeyboardInterrupt

    first = ToyProgram(hook=interrupt_after_k)
    with pytest.raises(KeyboardInterrupt):
        evaluate(first, EXAMPLES, results_path=results, fingerprint="cfg", progress=False)
    assert [r["id"] for r in lines(results)] == ["p1", "p2", "p3"]
    assert first.llm_calls == 2 * k  # the interrupted problem made no call

    second = ToyProgram()
    report = evaluate(second, EXAMPLES, results_path=results, fingerprint="cfg", progress=False)
    assert second.problems == [ex.problem for ex in EXAMPLES[k:]]
    assert second.llm_calls == 2 * (len(EXAMPLES) - k)
    assert (report.n_resumed, report.n_new) == (k, len(EXAMPLES) - k)
    assert sorted(r["id"] for r in lines(results)) == sorted(ex.id for ex in EXAMPLES)  # none twice
    assert report.summary.n == len(EXAMPLES) and report.summary.accuracy == 100.0
    assert report.summary.n_resumed == k  # its run_seconds covers only the problems solved now

    third = ToyProgram()
    done = evaluate(third, EXAMPLES, results_path=results, fingerprint="cfg", progress=False)
    assert third.llm_calls == 0  # all done: nothing is paid twice
    assert json.loads((tmp_path / "summary.json").read_text())["n_resumed"] == done.n_resumed == len(EXAMPLES)


def test_other_config_fingerprint_is_not_resumed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    results = tmp_path / "results.jsonl"
    evaluate(ToyProgram(), EXAMPLES[:2], results_path=results, config=ProgramConfig(method="cot"), progress=False)
    program = ToyProgram()
    with caplog.at_level("WARNING"):
        report = evaluate(program, EXAMPLES[:2], results_path=results, config=ProgramConfig(method="scale"),
                          progress=False)
    assert "2 problem(s) from another config" in caplog.text
    assert program.llm_calls == 4 and report.n_resumed == 0
    assert report.fingerprint == config_fingerprint(ProgramConfig(method="scale"))
    assert {r.fingerprint for r in report.results} == {report.fingerprint}


# What main's config_fingerprint (every field hashed) gave ProgramConfig(method="cot") before
# defaults were left out; results recorded then carry it.
OLD_COT_FINGERPRINT = "1270633375226079"


def test_results_under_the_old_fingerprint_resume_and_are_marked_once(tmp_path: Path) -> None:
    config = ProgramConfig(method="cot")
    assert legacy_fingerprint(config) == OLD_COT_FINGERPRINT != config_fingerprint(config)
    results = tmp_path / "results.jsonl"
    evaluate(ToyProgram(), EXAMPLES[:2], results_path=results, fingerprint=OLD_COT_FINGERPRINT, progress=False)
    program = ToyProgram()
    report = evaluate(program, EXAMPLES[:3], results_path=results, config=config, progress=False)
    assert program.problems == [EXAMPLES[2].problem] and (report.n_resumed, report.n_new) == (2, 1)
    assert {r.fingerprint for r in report.results} == {config_fingerprint(config)}
    # mapped once: the reused lines are appended under the new fingerprint, so any reader sees one config
    assert [r["fingerprint"] for r in lines(results)] == [OLD_COT_FINGERPRINT] * 2 + [config_fingerprint(config)] * 3
    assert [r.id for r in load_results(results)] == ["p1", "p2", "p3"]
    again = ToyProgram()
    evaluate(again, EXAMPLES[:3], results_path=results, config=config, progress=False)
    assert again.llm_calls == 0 and len(lines(results)) == 5


def test_integer_ids_resume(tmp_path: Path) -> None:
    examples = [ex.copy(id=number) for number, ex in enumerate(EXAMPLES[:3])]
    evaluate(ToyProgram(), examples, results_path=tmp_path / "r.jsonl", fingerprint="cfg", progress=False)
    again = ToyProgram()
    report = evaluate(again, examples, results_path=tmp_path / "r.jsonl", fingerprint="cfg", progress=False)
    assert again.llm_calls == 0 and [r.id for r in report.results] == ["0", "1", "2"]


def test_truncated_last_line_is_ignored_and_rewritten(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    results = tmp_path / "results.jsonl"
    evaluate(ToyProgram(), EXAMPLES[:3], results_path=results, fingerprint="cfg", progress=False)
    with results.open("a") as handle:
        handle.write('{"id": "p4", "benchmark": "toy", "gold": "8", "ans')  # killed mid-write
    program = ToyProgram()
    with caplog.at_level("WARNING"):
        report = evaluate(program, EXAMPLES[:5], results_path=results, fingerprint="cfg", progress=False)
    assert "truncated last line" in caplog.text
    assert program.problems == [EXAMPLES[3].problem, EXAMPLES[4].problem]
    assert [r["id"] for r in lines(results)] == ["p1", "p2", "p3", "p4", "p5"]  # every line parses
    assert report.summary.n == 5


def test_failed_problem_is_recorded_and_the_run_continues(tmp_path: Path) -> None:
    def bad_output(problem: str) -> None:
        if problem == EXAMPLES[1].problem:
            raise ModelOutputError("the plan could not be parsed after 3 attempts")

    report = evaluate(ToyProgram(hook=bad_output), EXAMPLES[:4], results_path=tmp_path / "r.jsonl",
                      fingerprint="cfg", progress=False)
    failed = [r for r in report.results if r.failed]
    assert [r.id for r in failed] == ["p2"]
    assert failed[0].error == "ModelOutputError: the plan could not be parsed after 3 attempts"
    assert failed[0].error_type == "ModelOutputError" and not failed[0].correct
    assert report.summary.n == 4 and report.summary.n_failed == 1 and report.summary.accuracy == 75.0

    retry = ToyProgram()  # a rerun retries the failed problem only
    again = evaluate(retry, EXAMPLES[:4], results_path=tmp_path / "r.jsonl", fingerprint="cfg", progress=False)
    assert retry.problems == [EXAMPLES[1].problem]
    assert again.summary.n_failed == 0 and again.summary.n == 4


def test_consecutive_server_errors_stop_the_run(tmp_path: Path) -> None:
    def server_down(problem: str) -> None:
        if problem != EXAMPLES[0].problem:
            raise ServerError("The LLM server http://127.0.0.1:9/v1 failed after 4 attempts")

    program = ToyProgram(hook=server_down)
    with pytest.raises(ServerDownError, match=r"3 problems in a row .* 1 finished problems are saved .* resume"):
        evaluate(program, EXAMPLES, results_path=tmp_path / "r.jsonl", fingerprint="cfg", progress=False,
                 max_server_errors=3)
    assert len(program.problems) == 4  # p1 ok, then three server failures, then stop
    stored = lines(tmp_path / "r.jsonl")
    assert [r["error_type"] for r in stored] == [None, "ServerError", "ServerError", "ServerError"]

    back = ToyProgram()  # the server is back: the rerun resumes and retries the failures
    report = evaluate(back, EXAMPLES, results_path=tmp_path / "r.jsonl", fingerprint="cfg", progress=False)
    assert len(back.problems) == len(EXAMPLES) - 1 and report.summary.n_failed == 0


def test_server_errors_wrapped_by_dspy_still_count(tmp_path: Path) -> None:
    class DownEngine(ToyProgram):  # the engine raises; DSPy wraps it in its own LM error
        def __init__(self) -> None:
            super().__init__()
            self.solver = function_lm(self._down, "system1")

        @staticmethod
        def _down(messages: list[dict[str, str]]) -> str:
            raise ServerError("The LLM server http://127.0.0.1:9/v1 failed after 4 attempts")

    with pytest.raises(ServerDownError):
        evaluate(DownEngine(), EXAMPLES, results_path=tmp_path / "r.jsonl", fingerprint="cfg", progress=False)
    stored = lines(tmp_path / "r.jsonl")
    assert [r["error_type"] for r in stored] == ["ServerError"] * 3
    assert stored[0]["error"].startswith("ServerError: The LLM server")
    assert [c["stage"] for c in stored[0]["calls"]] == ["decompose"]  # the calls made before the failure count


def test_config_errors_stop_the_run_at_once(tmp_path: Path) -> None:
    def missing_key(problem: str) -> None:
        raise ConfigError("API key variable OPENAI_API_KEY is not set")

    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        evaluate(ToyProgram(hook=missing_key), EXAMPLES, results_path=tmp_path / "r.jsonl", progress=False)
    assert not (tmp_path / "r.jsonl").exists()


def test_isolated_server_errors_do_not_stop_the_run(tmp_path: Path) -> None:
    flaky = {EXAMPLES[0].problem, EXAMPLES[1].problem, EXAMPLES[3].problem, EXAMPLES[4].problem}

    def sometimes_down(problem: str) -> None:
        if problem in flaky:
            raise ServerError("timeout")

    report = evaluate(ToyProgram(hook=sometimes_down), EXAMPLES, results_path=tmp_path / "r.jsonl",
                      fingerprint="cfg", progress=False, max_server_errors=3)
    assert report.summary.n == 6 and report.summary.n_failed == 4


def test_four_workers_write_exactly_one_line_per_problem(tmp_path: Path) -> None:
    examples = [add_problem(i) for i in range(1, 21)]
    running, peak, lock = [0], [0], threading.Lock()

    def slow(problem: str) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    program = ToyProgram(hook=slow)
    report = evaluate(program, examples, results_path=tmp_path / "r.jsonl", fingerprint="cfg", workers=4,
                      progress=False)
    stored = lines(tmp_path / "r.jsonl")
    assert sorted(r["id"] for r in stored) == sorted(ex.id for ex in examples)
    assert peak[0] > 1  # problems really ran at once
    # each problem's ledger holds its own two calls, never a neighbour's
    assert all([c["stage"] for c in row["calls"]] == ["decompose", "system1"] for row in stored)
    assert all(row["correct"] for row in stored)
    assert [r.id for r in report.results] == [ex.id for ex in examples]  # report in example order


def test_factory_builds_one_program_per_worker_thread(tmp_path: Path) -> None:
    built: list[ToyProgram] = []

    def factory() -> ToyProgram:
        built.append(ToyProgram(hook=lambda p: time.sleep(0.01)))
        return built[-1]

    evaluate(factory, EXAMPLES, results_path=tmp_path / "r.jsonl", fingerprint="cfg", workers=2, progress=False)
    # one built up front (fails fast on a bad config) plus at most one per worker thread
    assert 2 <= len(built) <= 3
    assert sum(len(p.problems) for p in built) == len(EXAMPLES)


def test_by_stage_tokens_equal_the_scripted_usage() -> None:
    class Thinker(ToyProgram):
        def __init__(self) -> None:
            super().__init__()
            self.solver = function_lm(lambda m: Completion(text="\\boxed{4}", thinking="hmm " * 15, prompt_tokens=11,
                                                           completion_tokens=20, thinking_tokens=15), "system2")

        def forward(self, problem: str) -> dspy.Prediction:
            with stage("decompose"):
                self.planner(f"Plan: {problem}")
            with stage("system2_thinking"):
                self.solver(problem)
                self.solver(problem)
            return dspy.Prediction(answer="4", solution="\\boxed{4}", trace={})

        __call__ = forward

    example = dspy.Example(id="q", problem="What is 2 + 2?", answer="4")
    result = solve_one(Thinker(), example)
    plan_prompt = count_tokens("Plan: What is 2 + 2?")
    assert result.stages["decompose"]["prompt_tokens"] == plan_prompt
    assert result.stages["decompose"]["completion_tokens"] == count_tokens("add the two numbers")
    thinking = result.stages["system2_thinking"]
    assert (thinking["prompt_tokens"], thinking["completion_tokens"], thinking["thinking_tokens"],
            thinking["answer_tokens"], thinking["calls"]) == (22, 40, 30, 10, 2)
    assert result.totals["total_tokens"] == plan_prompt + 4 + 22 + 40
    assert result.spent == result.totals  # no cache hits
    assert result.correct and result.reason == "integer match"


def test_caller_context_reaches_workers(tmp_path: Path) -> None:
    lm = function_lm(_solver, "ctx")

    class UsesConfiguredLM:
        def forward(self, problem: str) -> dspy.Prediction:
            with stage("cot"):
                text = dspy.settings.lm(problem)[0]
            return dspy.Prediction(answer=text, solution=text, trace={})

        __call__ = forward

    report = evaluate(UsesConfiguredLM(), EXAMPLES[:3], results_path=tmp_path / "r.jsonl", fingerprint="cfg",
                      workers=2, progress=False, context={"lm": lm})
    assert report.summary.accuracy == 100.0
    with dspy.context(lm=lm):  # a caller's own dspy.context reaches the worker threads too
        report = evaluate(UsesConfiguredLM(), EXAMPLES[3:], results_path=tmp_path / "r2.jsonl", fingerprint="cfg",
                          workers=2, progress=False)
    assert report.summary.accuracy == 100.0


def test_wrong_answers_and_summary_file(tmp_path: Path) -> None:
    program = ToyProgram(wrong={EXAMPLES[0].problem})
    report = evaluate(program, EXAMPLES[:2], results_path=tmp_path / "run" / "results.jsonl", fingerprint="cfg",
                      progress=False)
    assert [r.correct for r in report.results] == [False, True]
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["accuracy"] == 50.0 and saved["n"] == 2 and saved["grader_version"].startswith("math-verify")
    assert report.results[0].problem == EXAMPLES[0].problem and report.results[0].trace["steps"]


def test_bad_examples_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duplicate id 'p1'"):
        evaluate(ToyProgram(), [EXAMPLES[0], EXAMPLES[0]], results_path=tmp_path / "r.jsonl", progress=False)
    with pytest.raises(ValueError, match="has no `id`"):
        evaluate(ToyProgram(), [dspy.Example(problem="x", answer="1")], results_path=tmp_path / "r.jsonl",
                 progress=False)
    with pytest.raises(ValueError, match="workers=0"):
        evaluate(ToyProgram(), EXAMPLES, results_path=tmp_path / "r.jsonl", workers=0, progress=False)
    assert ResultsFile(tmp_path / "r.jsonl").read() == []


def test_a_field_added_since_leaves_the_old_fingerprint_alone_at_its_default() -> None:
    """Endpoint.max_concurrency came after the old fingerprints were recorded: at its default it is not in
    them, so those results still resume; set, the configuration is another one."""
    from dataclasses import replace

    config = ProgramConfig(method="cot")
    assert legacy_fingerprint(config) == OLD_COT_FINGERPRINT
    lm = config.lm
    busy = replace(config, lm=replace(lm, endpoint=replace(lm.endpoint, max_concurrency=2)))
    assert legacy_fingerprint(busy) != OLD_COT_FINGERPRINT
