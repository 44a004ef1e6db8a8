"""Model garbage at every stage: fuzz each one with at least 100 seeded bad replies (``program.garbage``).

For each stage (rewrite, decomposition, selection, difficulty in both modes, step solving, CoT,
majority vote, s1 budget forcing, InftyThink segments and summaries) one scripted LM serves bad
replies to that stage and right ones to the others. Every problem runs through
``optimize.evaluate`` (results file, grading), and for each bad reply the test checks the
accounting: it was either used as documented (a score of 7 clamped to 1, a plan cut to
``max_steps``) or it left a failure with a reason in the trace, and the stage fell back as
documented (the fallback score, the one-step plan, the first candidate, no answer). Zero crashes:
no problem may end with an error. The counts are printed at the end of the session.
"""

from __future__ import annotations

import math
import random
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dspy
import pytest

from data.grading import extract_answer
from optimize.evaluate import evaluate
from optimize.results import ResultsFile
from program.baselines import CoT, InftyThink, MajorityVote
from program.baselines.forced import BudgetForcing
from program.config import Endpoint, ForcingConfig, InftyThinkConfig, LMConfig, ModeConfig, ScaleConfig, VoteConfig
from program.fakeserver import FakeServer
from program.garbage import KINDS, NUMBER_FREE, BadReply, Garbage
from program.scale import Scale
from program.testing import function_lm, scripted_systems
from reliability.toy import TALLY, rows

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
    """Run problems through ``evaluate`` until ``target`` got at least MIN_BAD bad replies."""
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
    failures = sum(len(r.trace.get("failures", [])) for r in results)
    TALLY[f"garbage: {target}"] = {"bad replies": len(fuzzer.served), "problems": len(results), "crashes": 0,
                                   "failures recorded": failures,
                                   "kinds": len({b.kind for b in fuzzer.served})}
    assert {b.kind for b in fuzzer.served} == set(KINDS)  # every kind reached the stage
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


# --- SCALE stages ---------------------------------------------------------------------------------

def scale(config: ScaleConfig) -> Callable[[Fuzzer], Scale]:
    return lambda fuzzer: Scale(config, scripted_systems(fuzzer, fuzzer, fuzzer))


def test_rewrite_garbage(tmp_path: Path) -> None:
    fuzzer, results = fuzz("rewrite", scale(ScaleConfig(rewrite=True, threshold=0.5)), tmp_path, seed=11)
    used = 0
    for result in results:
        assert_reasons(result)
        served = fuzzer.by_row[row_number(result)]
        plan = result.trace["plan"]
        assert len(served) == 1
        if failures_of(result, "rewrite"):  # fallback: the problem as it is, a normal decomposition
            assert plan["conditions"] is None and plan["question"] is None
            assert "kept the problem as it is" in failures_of(result, "rewrite")[0]["reason"]
        else:
            used += 1
            assert plan["conditions"].strip() and plan["question"].strip()
            assert plan["steps"][-1] == plan["question"]  # the last step answers what was asked
        assert result.correct  # the rest of the pipeline is sound: the answer survives
    TALLY["garbage: rewrite"]["used as documented"] = used


@pytest.mark.parametrize("retries", [0, 1])
def test_decomposition_garbage(tmp_path: Path, retries: int) -> None:
    config = ScaleConfig(threshold=0.5, max_steps=4)
    fuzzer, results = fuzz("decompose", lambda f: Scale(config, scripted_systems(f, f, f), decompose_retries=retries),
                           tmp_path, seed=12 + retries, per_problem=retries + 1)
    one_step = 0
    for result in results:
        assert_reasons(result)
        served = fuzzer.by_row[row_number(result)]
        plan = result.trace["plan"]
        attempts = [f for f in failures_of(result, "decompose") if f["reason"].startswith("candidate")]
        # accounting: each bad reply is either the candidate that was used or a recorded failure
        assert len(served) == len(attempts) + len(plan["candidates"])
        assert 1 <= len(plan["steps"]) <= config.max_steps
        for step in plan["steps"]:
            assert step.strip()
            assert_clean(step)
        if not plan["candidates"]:  # fallback: the problem itself as a one-step plan
            one_step += 1
            assert plan["steps"] == [result.problem]
            assert any("no usable decomposition" in f["reason"] for f in failures_of(result, "decompose"))
        else:
            assert served[-1].kind not in NUMBER_FREE  # no digit and no list: never a plan
        if any(len(c) > config.max_steps for c in plan["candidates"]):
            assert any("cut to" in f["reason"] for f in failures_of(result, "decompose"))
        assert [s["index"] for s in result.trace["steps"]] == list(range(len(plan["steps"])))
    TALLY[f"garbage: decompose (retries {retries})"] = {**TALLY.pop("garbage: decompose"), "one-step fallbacks": one_step}


def test_selection_garbage(tmp_path: Path) -> None:
    fuzzer, results = fuzz("select", scale(ScaleConfig(num_candidates=3, threshold=0.5)), tmp_path, seed=14)
    first = 0
    for result in results:
        assert_reasons(result)
        plan = result.trace["plan"]
        assert len(fuzzer.by_row[row_number(result)]) == 1 and len(plan["candidates"]) == 3
        assert 0 <= plan["selected"] < 3
        if failures_of(result, "select"):
            first += 1
            assert plan["selected"] == 0 and "took the first candidate" in failures_of(result, "select")[0]["reason"]
        assert result.correct
    TALLY["garbage: select"]["first-candidate fallbacks"] = first


@pytest.mark.parametrize("mode", ["upfront", "solved_context"])
def test_difficulty_garbage(tmp_path: Path, mode: str) -> None:
    config = ScaleConfig(threshold=0.5, difficulty_mode=mode, difficulty_retries=2, fallback_difficulty=1.0)
    fuzzer, results = fuzz("difficulty", scale(config), tmp_path, seed=15 if mode == "upfront" else 16,
                           per_problem=2)
    counts = Counter()
    for result in results:
        assert_reasons(result)
        served = list(fuzzer.by_row[row_number(result)])
        steps = result.trace["steps"]
        assert len(steps) == 3
        for i, step in enumerate(steps):
            d = step["difficulty"]
            assert 0.0 <= d["score"] <= 1.0 and step["score"] == d["score"]
            assert step["mode"] == ("system2" if d["score"] > config.threshold else "system1")  # routing obeys tau
            if d["forced"]:  # the last step: the reference rule, no call
                assert i == 2 and d["score"] == 0.9 and d["attempts"] == 0
                continue
            mine, served = served[:d["attempts"]], served[d["attempts"]:]
            assert len(mine) == d["attempts"] >= 1
            failed = failures_of(result, "difficulty", i)
            if d["raw"] is not None:  # the last reply was read: used as documented
                counts["clamped" if d["clamped"] else "read"] += 1
                assert math.isfinite(d["raw"]) and d["score"] == min(1.0, max(0.0, d["raw"]))
                assert d["clamped"] == (d["raw"] != d["score"])
                assert mine[-1].kind not in NUMBER_FREE
                assert len(failed) == d["attempts"] - 1  # every earlier attempt left a reason
            else:  # every attempt failed: the fallback score, said so
                counts["fallback"] += 1
                assert d["score"] == config.fallback_difficulty and d["fallback"]
                assert len(failed) == d["attempts"] + 1 and d["attempts"] == config.difficulty_retries + 1
                assert "used fallback 1.0" in failed[-1]["reason"]
        assert served == []  # no bad reply unaccounted for
    TALLY[f"garbage: difficulty ({mode})"] = {**TALLY.pop("garbage: difficulty"), **counts}


def test_step_solving_garbage(tmp_path: Path) -> None:
    """System 1 and System 2 replies (tau 0.5: steps 1-2 in System 1, the last in System 2)."""
    fuzzer, results = fuzz("solve", scale(ScaleConfig(threshold=0.5)), tmp_path, seed=17, per_problem=3)
    no_answer = 0
    for result in results:
        assert_reasons(result)
        served = fuzzer.by_row[row_number(result)]
        steps = result.trace["steps"]
        assert len(served) == len(steps) == 3
        assert [s["mode"] for s in steps] == ["system1", "system1", "system2"]
        for i, (step, reply) in enumerate(zip(steps, served)):
            assert_clean(step["visible"])
            failed = failures_of(result, step["mode"], i)
            assert step["value"] == extract_answer(step["visible"])
            if step["value"] is None:
                no_answer += 1
                assert len(failed) == 1, failed  # the reason: no box, unclosed thinking, an empty reply...
            else:
                assert failed == [] and reply.kind not in NO_ANSWER
        assert result.answer == (steps[-1]["value"] or "")
    # earlier thinking never reaches a later step's prompt
    for prompt in fuzzer.prompts:
        earlier = prompt.split("Earlier steps:")[-1].split("Current step:")[0]
        assert "<think>" not in earlier.lower()
    TALLY["garbage: step solving (System 1/2)"] = {**TALLY.pop("garbage: solve"), "steps without an answer": no_answer}


# --- baselines ------------------------------------------------------------------------------------

def test_cot_garbage(tmp_path: Path) -> None:
    fuzzer, results = fuzz("solve", lambda f: CoT(function_lm(f)), tmp_path, seed=18)
    for result in results:
        assert_reasons(result)
        reply = fuzzer.by_row[row_number(result)][0]
        assert_clean(result.trace["visible"])
        assert result.trace["value"] == extract_answer(result.trace["visible"])
        assert bool(result.trace["failures"]) == (result.trace["value"] is None)
        assert result.trace["value"] is None or reply.kind not in NO_ANSWER
    TALLY["garbage: cot"] = TALLY.pop("garbage: solve")


def test_majority_vote_garbage(tmp_path: Path) -> None:
    fuzzer, results = fuzz("solve", lambda f: MajorityVote(function_lm(f), VoteConfig(samples=3)), tmp_path,
                           seed=19, per_problem=3)
    for result in results:
        assert_reasons(result)
        votes = result.trace["votes"]
        assert len(votes) == 3 and len(fuzzer.by_row[row_number(result)]) == 3
        assert len(result.trace["failures"]) == sum(v["answer"] is None for v in votes)
        counted = [v["answer"] for v in votes if v["answer"] is not None]
        assert (result.answer == "") == (not counted)
    TALLY["garbage: vote"] = TALLY.pop("garbage: solve")


def test_inftythink_summary_garbage(tmp_path: Path) -> None:
    config = InftyThinkConfig(max_iterations=3, segment_tokens=64, summary_max_tokens=32)
    fuzzer, results = fuzz("summary", lambda f: InftyThink(function_lm(f), config), tmp_path, seed=20, per_problem=3)
    kept = 0
    for result in results:
        assert_reasons(result)
        iterations = result.trace["iterations"]
        served = fuzzer.by_row[row_number(result)]
        assert len(iterations) == 3 and len(served) == 3  # no segment answers: a summary call each time
        failed = failures_of(result, "inftythink_summary")
        for i, record in enumerate(iterations):
            assert_clean(record["progress"])
            assert_clean(record["summary"])
            reasons = [f for f in failed if f["reason"].startswith(f"iteration {i}:")]
            if record["summary"]:
                assert not reasons  # a summary was used: it is the next segment's progress
                if i + 1 < len(iterations):
                    assert iterations[i + 1]["progress"] == record["summary"]
            else:  # unusable: recorded, and the previous summary carried on
                kept += 1
                assert len(reasons) == 1 and "kept the previous summary" in reasons[0]["reason"]
                if i + 1 < len(iterations):
                    assert iterations[i + 1]["progress"] == record["progress"]
        assert failures_of(result, "inftythink")  # no answer after max_iterations: recorded
    TALLY["garbage: inftythink summary"] = {**TALLY.pop("garbage: summary"), "kept previous summary": kept}


def test_inftythink_segment_garbage(tmp_path: Path) -> None:
    config = InftyThinkConfig(max_iterations=2, segment_tokens=64, summary_max_tokens=32)
    fuzzer, results = fuzz("segment", lambda f: InftyThink(function_lm(f), config), tmp_path, seed=21, per_problem=2)
    for result in results:
        assert_reasons(result)
        iterations = result.trace["iterations"]
        for record in iterations:
            assert_clean(record["progress"])
        answered = [r for r in iterations if r["answer"] is not None]
        assert len(answered) <= 1 and (not answered or answered[0] is iterations[-1])  # an answer stops the loop
        assert bool(failures_of(result, "inftythink")) == (not answered)
        assert result.answer == (iterations[-1]["answer"] or "")
    TALLY["garbage: inftythink segment"] = TALLY.pop("garbage: segment")


# --- s1 budget forcing, over HTTP ----------------------------------------------------------------

@pytest.mark.fake_server
def test_budget_forcing_garbage_over_http(tmp_path: Path) -> None:
    """Thinking segments and answers from a garbage /v1/completions server (real HTTP, litellm)."""
    garbage, rng = Garbage(seed=22), random.Random(22)
    by_row: dict[int, list[BadReply]] = defaultdict(list)

    def reply(body: dict[str, Any]) -> str:
        bad = garbage.next()
        by_row[row_of([{"content": str(body.get("prompt", ""))}])].append(bad)
        return bad.text

    budget, waits = 24, 2
    with FakeServer(default=reply) as server:
        server.finish_reason = "stop"
        endpoint = Endpoint(model="openai/fake", api_base=server.api_base, retries=0, timeout=10)
        mode = ModeConfig(temperature=0.0, top_p=None, top_k=None, max_tokens=16, thinking="forced",
                          thinking_budget=budget)
        lm = LMConfig(endpoint=endpoint, stages=mode, system1=mode, system2=mode,
                      forcing=ForcingConfig(num_waits=waits, template="chatml"))
        program = BudgetForcing(lm)
        results: list[Any] = []
        start = 0
        while len(garbage.served) < MIN_BAD:
            server.finish_reason = rng.choice(["stop", "length"])
            problems = [dspy.Example(**row, benchmark="toy").with_inputs("problem") for row in rows(10, start)]
            start += 10
            results += evaluate(program, problems, results_path=tmp_path / "r.jsonl", fingerprint="bf",
                                progress=False).results
    assert not [r.error for r in results if r.failed]
    for result in results:
        assert_reasons(result)
        assert sum(c["thinking_tokens"] for c in result.calls) <= budget  # control holds on garbage too
        assert len(result.calls) <= waits + 2  # at most 1 + waits thinking segments, then the answer
        assert bool(result.trace["failures"]) == (result.trace["value"] is None)
        assert len(by_row[row_number(result)]) == len(result.calls) >= 1  # one bad reply per server call
    TALLY["garbage: budget forcing (HTTP)"] = {"bad replies": len(garbage.served), "problems": len(results),
                                              "crashes": 0, "kinds": len({b.kind for b in garbage.served}),
                                              "failures recorded": sum(len(r.trace["failures"]) for r in results)}
    assert {b.kind for b in garbage.served} == set(KINDS)


# --- everything at once -------------------------------------------------------------------------

def test_every_stage_garbage_at_once_with_concurrent_workers(tmp_path: Path) -> None:
    garbage = Garbage(seed=23)
    lock = threading.Lock()

    def responder(messages: list[dict[str, str]]) -> str:
        with lock:
            return garbage.next().text

    programs = {
        "scale": Scale(ScaleConfig(rewrite=True, num_candidates=2, threshold=0.3),
                       scripted_systems(responder, responder, responder)),
        "scale solved-context": Scale(ScaleConfig(difficulty_mode="solved_context", context="final_value"),
                                      scripted_systems(responder, responder, responder)),
        "inftythink": InftyThink(function_lm(responder), InftyThinkConfig(max_iterations=2)),
    }
    total = 0
    for name, program in programs.items():
        problems = [dspy.Example(**row, benchmark="toy").with_inputs("problem") for row in rows(12)]
        report = evaluate(program, problems, results_path=tmp_path / name / "r.jsonl", fingerprint=name, workers=3,
                          progress=False)
        assert not [r.error for r in report.results if r.failed], name
        assert len(ResultsFile(tmp_path / name / "r.jsonl").read()) == 12
        total += sum(len(r.trace["failures"]) for r in report.results)
    TALLY["garbage: all stages at once (3 workers)"] = {"bad replies": len(garbage.served), "problems": 36,
                                                        "crashes": 0, "failures recorded": total}
    assert len(garbage.served) >= MIN_BAD
