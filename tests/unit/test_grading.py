"""Answer grading, driven by the case file data/cases/grading.jsonl (the lighteval habit)."""

from __future__ import annotations

import importlib.metadata
import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dspy
import pytest

import data.grading as grading
from data import extract_answer, grade, grade_answer, grader_version, metric, shutdown_grader

CASES_FILE = Path(grading.__file__).parent / "cases" / "grading.jsonl"
CASES = [json.loads(line) for line in CASES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
TOWER = r"\boxed{2^{2^{2^{2^{2^{2^{2^{2^{2^{99}}}}}}}}}}"
SHORT_TIMEOUT = 1.0


def _timeout_for(case: dict) -> float:
    return SHORT_TIMEOUT if case["id"].startswith("timeout") else 5.0


def test_case_file_is_well_formed() -> None:
    assert len(CASES) >= 60
    assert len({c["id"] for c in CASES}) == len(CASES)
    for case in CASES:
        assert set(case) == {"id", "gold", "output", "expected_extracted", "expected_correct", "note"}, case["id"]
        assert isinstance(case["expected_correct"], bool)
        assert case["expected_extracted"] is None or isinstance(case["expected_extracted"], str)
    assert any(c["id"].startswith("timeout") for c in CASES)
    assert sum(c["expected_correct"] for c in CASES) > 10 and sum(not c["expected_correct"] for c in CASES) > 10


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_grading_case(case: dict) -> None:
    started = time.monotonic()
    result = grade(case["gold"], case["output"], timeout=_timeout_for(case))
    elapsed = time.monotonic() - started
    assert result.extracted == case["expected_extracted"], case["note"]
    assert result.correct is case["expected_correct"], f"{case['note']}: {result.reason}"
    if case["id"].startswith("timeout"):
        assert result.reason == "timeout"
        assert elapsed < SHORT_TIMEOUT + 3.0, "a stuck check must not hang the caller"


def test_grading_still_works_after_a_timeout() -> None:
    assert grade("5", TOWER, timeout=0.5).reason == "timeout"
    after = grade(r"\frac{1}{2}", r"\boxed{0.5}")
    assert after.correct and after.reason == "math-verify equivalent"


def test_eight_threads_give_the_sequential_results() -> None:
    cases = [c for c in CASES if not c["id"].startswith("timeout")]
    sequential = [grade(c["gold"], c["output"]) for c in cases]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda c: grade(c["gold"], c["output"]), cases * 2))
    assert threaded == sequential * 2


def test_a_timeout_in_one_thread_does_not_break_the_others() -> None:
    normal = [c for c in CASES
              if c["id"] in ("frac-vs-decimal", "sqrt", "sqrt-wrong", "interval", "pi-coarse", "tuple-order")]
    assert len(normal) == 6
    jobs = [("tower", None)] + [("case", c) for c in normal * 3]
    results: dict[int, object] = {}

    def run(i: int) -> None:
        kind, case = jobs[i]
        results[i] = (grade("5", TOWER, timeout=SHORT_TIMEOUT) if kind == "tower"
                      else grade(case["gold"], case["output"]))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(run, range(len(jobs))))
    assert results[0].reason == "timeout" and not results[0].correct
    for i, (_, case) in enumerate(jobs[1:], start=1):
        assert results[i].correct is case["expected_correct"], (case["id"], results[i])


def test_shutdown_then_grade_restarts_the_pool() -> None:
    shutdown_grader()
    assert grade_answer(r"2\sqrt{2}", r"\sqrt{8}").correct


def test_a_killed_caller_leaves_no_grading_workers_holding_its_output() -> None:
    """SIGKILL skips every shutdown: the workers must notice on their own, or a script reading the
    caller's output (subprocess.run with capture_output) waits for them forever."""
    code = ("from data.grading import grade; import time; grade('1/2', '\\\\boxed{0.5}'); "
            "print('ready', flush=True); time.sleep(300)")
    caller = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    assert caller.stdout is not None and caller.stdout.readline() == "ready\n"
    caller.send_signal(signal.SIGKILL)
    caller.communicate(timeout=20)  # EOF on both pipes: every worker holding them has exited
    assert caller.returncode == -signal.SIGKILL


def _grade_in_a_child() -> None:
    assert grade_answer("1/2", "0.5").correct  # reaches the worker processes (not an integer pair)


def test_a_multiprocessing_child_that_graded_exits() -> None:
    """A multiprocessing child runs no atexit hooks and joins its children at exit: the grading
    workers must be stopped before that join, or the child (a search worker) never ends."""
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(target=_grade_in_a_child)
    child.start()
    child.join(timeout=60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0


@pytest.mark.parametrize(("text", "expected"), [
    (r"\boxed{\frac{a}{\sqrt{b}}}", r"\frac{a}{\sqrt{b}}"),
    ("<THINK>x</THINK>Answer: 4", "4"),
    ("Final answer: \\(x+1\\)", "x+1"),
    ("answer: ", None),
    (r"\boxed{1}</think>", None),
])
def test_extract_answer_edges(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_grade_answer_takes_an_extracted_answer() -> None:
    assert grade_answer("1,234", "1234 dollars").reason == "integer match"
    assert grade_answer("7", "  ").reason == "no answer"
    assert grade_answer(r"\frac{1}{2}", r"\dfrac{1}{2}").reason == "string match"


@pytest.mark.parametrize(("answer", "expected"), [
    ("72", True),
    (r"We add them: \boxed{72}", True),
    ("Final Answer: 71", False),
    ("<think>it is 72", False),
    ("", False),
    (None, False),
    ("no numbers here, and a long explanation\nover two lines", False),
])
def test_metric_reads_prediction_answer(answer: str | None, expected: bool) -> None:
    example = dspy.Example(problem="48 + 24?", answer="72").with_inputs("problem")
    assert metric(example, dspy.Prediction(answer=answer)) is expected
    assert metric(example, dspy.Prediction(answer=answer), trace=object()) is expected


def test_grader_version_names_math_verify_and_our_rules() -> None:
    version = grader_version()
    expected = f"math-verify {importlib.metadata.version('math-verify')}; scale grading {grading.GRADING_VERSION}"
    assert version == expected
