"""Shared pieces of the model-garbage fuzz tests: the scripted fuzzer, stage markers, checks."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dspy

from optimize.evaluation.evaluate import evaluate
from optimize.evaluation.results import ResultsFile
from program.testing.garbage import KINDS, NUMBER_FREE, BadReply, Garbage
from reliability.toy import rows

MIN_BAD = 100  # bad replies per stage, at least
# Kinds that can never carry a final answer (no digit, no box, or thinking that never closes).
NO_ANSWER = NUMBER_FREE | {"missing_box", "broken_box", "unterminated_think"}
PLAN3 = "1. Find the first number, call it A.\n2. Find the second number, call it B.\n3. Find the sum of A and B."

MARKERS = {
    "rewrite": "Restate the math problem",
    "decompose": "Break the math problem",
    "select": "Choose the best one",
    "difficulty": "Rate how hard",
    "summary": "Summarise the progress",
    "segment": "Work on the math problem",
}


def stage_of(messages: list[dict[str, str]]) -> str:
    system = messages[0]["content"] if messages else ""
    return next((stage for stage, marker in MARKERS.items() if marker in system), "solve")


def row_of(messages: list[dict[str, str]]) -> int:
    found = re.findall(r"Row (\d+)\.", "\n".join(m["content"] for m in messages))
    return int(found[-1]) if found else -1


def answer_for(messages: list[dict[str, str]]) -> str:
    a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)\?", "\n".join(m["content"] for m in messages))[-1])
    return f"So the result is \\boxed{{{a + b}}}."


VALID: dict[str, Callable[[list[dict[str, str]]], str]] = {
    "rewrite": lambda m: "Conditions: two numbers are given.\nQuestion: What is their sum?",
    "decompose": lambda m: PLAN3,
    "select": lambda m: "2",
    "difficulty": lambda m: "0.3",
    "summary": lambda m: "- the two numbers are known",
    "segment": lambda m: "Working on it: the numbers are read, the adding is next.",  # no answer, no summary
    "solve": answer_for,
}


class Fuzzer:
    """Scripted LMs that serve bad replies to ``target`` and right replies elsewhere; logs per problem."""

    def __init__(self, target: str, seed: int) -> None:
        self.target, self.garbage = target, Garbage(seed=seed)
        self.by_row: dict[int, list[BadReply]] = defaultdict(list)
        self.prompts: list[str] = []
        self.counts: dict[str, int] = {}  # what ``fuzz`` measured, for the report (``TALLY``)

    def __call__(self, messages: list[dict[str, str]]) -> str:
        self.prompts.append("\n".join(m["content"] for m in messages))
        stage = stage_of(messages)
        if stage == self.target:
            reply = self.garbage.next()
            self.by_row[row_of(messages)].append(reply)
            return reply.text
        return VALID[stage](messages)

    @property
    def served(self) -> list[BadReply]:
        return self.garbage.served


def fuzz(target: str, build: Callable[[Fuzzer], Any], tmp_path: Path, *, seed: int,
         per_problem: int = 1) -> tuple[Fuzzer, list[Any]]:
    """Run problems through ``evaluate`` until ``target`` got at least MIN_BAD bad replies.

    The counts go to ``fuzzer.counts``; each test reports them in ``TALLY`` after its own assertions.
    """
    fuzzer = Fuzzer(target, seed)
    program = build(fuzzer)
    results: list[Any] = []
    start = 0
    while len(fuzzer.served) < MIN_BAD:
        n = max(1, (MIN_BAD - len(fuzzer.served)) // per_problem + 1)
        problems = [dspy.Example(**row, benchmark="toy").with_inputs("problem") for row in rows(n, start)]
        start += n
        report = evaluate(program, problems, results_path=tmp_path / "results.jsonl", fingerprint=target,
                          progress=False)
        results += report.results
    crashed = [f"{r.id}: {r.error}" for r in results if r.failed]
    assert not crashed, crashed
    # every problem is on disk, once, and reads back
    stored = ResultsFile(tmp_path / "results.jsonl").read()
    assert sorted(r.id for r in stored) == sorted(r.id for r in results)
    kinds = {b.kind for b in fuzzer.served}
    assert kinds == set(KINDS)  # every kind reached the stage
    fuzzer.counts = {"bad replies": len(fuzzer.served), "problems": len(results), "crashes": len(crashed),
                     "failures recorded": sum(len(r.trace.get("failures", [])) for r in results),
                     "kinds": len(kinds)}
    return fuzzer, results


def failures_of(result: Any, stage: str, step: int | None = None) -> list[dict[str, Any]]:
    return [f for f in result.trace["failures"] if f["stage"] == stage and (step is None or f["step"] == step)]


def row_number(result: Any) -> int:
    return int(result.id[1:])


def assert_reasons(result: Any) -> None:
    for failure in result.trace["failures"]:
        assert failure["stage"] and isinstance(failure["reason"], str) and failure["reason"].strip(), failure


def assert_clean(text: str) -> None:
    """Text that reaches a later prompt or a file: valid Unicode, no thinking tags."""
    text.encode("utf-8")
    assert "<think>" not in text.lower()
