"""Model garbage in the baselines, s1 budget forcing over HTTP, and every stage at once (see test_model_garbage)."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import dspy
import pytest

from data.grading import extract_answer
from optimize.evaluation.evaluate import evaluate
from optimize.evaluation.results import ResultsFile
from program.baselines import CoT, InftyThink, MajorityVote
from program.baselines.forced import BudgetForcing
from program.config import Endpoint, ForcingConfig, InftyThinkConfig, LMConfig, ModeConfig, ScaleConfig, VoteConfig
from program.scale import Scale
from program.testing import function_lm, scripted_systems
from program.testing.fakeserver import FakeServer
from program.testing.garbage import KINDS, NUMBER_FREE, BadReply, Garbage
from reliability.fuzzing import (
    MIN_BAD,
    NO_ANSWER,
    assert_clean,
    assert_reasons,
    failures_of,
    fuzz,
    row_number,
    row_of,
    stage_of,
)
from reliability.toy import TALLY, rows

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
    TALLY["garbage: cot"] = fuzzer.counts


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
    TALLY["garbage: vote"] = fuzzer.counts


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
    TALLY["garbage: inftythink summary"] = {**fuzzer.counts, "kept previous summary": kept}


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
    TALLY["garbage: inftythink segment"] = fuzzer.counts


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
    crashed = [r.error for r in results if r.failed]
    assert not crashed
    for result in results:
        assert_reasons(result)
        assert sum(c["thinking_tokens"] for c in result.calls) <= budget  # control holds on garbage too
        # at most 1 + waits thinking segments, the answer, and (an empty answer after a natural end of
        # thinking) one continuation after "Final Answer:"
        assert len(result.calls) <= waits + 3
        assert bool(result.trace["failures"]) == (result.trace["value"] is None)
        assert len(by_row[row_number(result)]) == len(result.calls) >= 1  # one bad reply per server call
    kinds = {b.kind for b in garbage.served}
    assert kinds == set(KINDS)
    TALLY["garbage: budget forcing (HTTP)"] = {"bad replies": len(garbage.served), "problems": len(results),
                                              "crashes": len(crashed), "kinds": len(kinds),
                                              "failures recorded": sum(len(r.trace["failures"]) for r in results)}


# --- everything at once -------------------------------------------------------------------------

# Stages whose reply must carry a number (a plan list, a score, an index, a boxed answer): a bad
# reply without one can never be used there, so each such reply leaves a failure of that stage.
NEEDS_A_NUMBER = {"decompose": ("decompose",), "select": ("select",), "difficulty": ("difficulty",),
                  "solve": ("system1", "system2")}


def test_every_stage_garbage_at_once_with_concurrent_workers(tmp_path: Path) -> None:
    garbage = Garbage(seed=23)
    lock = threading.Lock()
    by_row: dict[tuple[str, int], list[tuple[str, BadReply]]] = defaultdict(list)
    current = {"program": ""}

    def responder(messages: list[dict[str, str]]) -> str:
        with lock:
            bad = garbage.next()
            by_row[(current["program"], row_of(messages))].append((stage_of(messages), bad))
            return bad.text

    programs = {
        "scale": Scale(ScaleConfig(rewrite=True, num_candidates=2, threshold=0.3),
                       scripted_systems(responder, responder, responder)),
        "scale solved-context": Scale(ScaleConfig(difficulty_mode="solved_context", context="final_value"),
                                      scripted_systems(responder, responder, responder)),
        "inftythink": InftyThink(function_lm(responder), InftyThinkConfig(max_iterations=2)),
    }
    results: list[Any] = []
    unused = 0
    for name, program in programs.items():
        current["program"] = name
        problems = [dspy.Example(**row, benchmark="toy").with_inputs("problem") for row in rows(12)]
        report = evaluate(program, problems, results_path=tmp_path / name / "r.jsonl", fingerprint=name, workers=3,
                          progress=False)
        assert not [r.error for r in report.results if r.failed], name
        assert len(ResultsFile(tmp_path / name / "r.jsonl").read()) == 12
        for result in report.results:  # each problem's bad replies, matched to what its trace recorded
            assert_reasons(result)
            served = by_row[(name, row_number(result))]
            assert len(served) == len(result.calls) >= 1, (name, result.id)  # none lost to a neighbour worker
            for stage, failure_stages in NEEDS_A_NUMBER.items():
                number_free = sum(1 for s, bad in served if s == stage and bad.kind in NUMBER_FREE)
                recorded = sum(len(failures_of(result, f)) for f in failure_stages)
                assert recorded >= number_free, (name, result.id, stage)
                unused += number_free
            if result.answer:  # an answer came from a reply that carried one
                assert any(bad.kind not in NO_ANSWER for _, bad in served), (name, result.id)
        results += report.results
    assert len(garbage.served) >= MIN_BAD
    assert sum(len(v) for v in by_row.values()) == len(garbage.served)
    TALLY["garbage: all stages at once (3 workers)"] = {
        "bad replies": len(garbage.served), "problems": len(results), "crashes": sum(r.failed for r in results),
        "failures recorded": sum(len(r.trace["failures"]) for r in results),
        "number-free replies matched to a failure": unused}
