"""Model garbage at every stage: fuzz each one with at least 100 seeded bad replies (``program.testing.garbage``).

For each stage (rewrite, decomposition, selection, difficulty in both modes, step solving, CoT,
majority vote, s1 budget forcing, InftyThink segments and summaries) one scripted LM serves bad
replies to that stage and right ones to the others. Every problem runs through
``optimize.evaluation.evaluate`` (results file, grading), and for each bad reply the test checks the
accounting: it was either used as documented (a score in [0, 1], a plan of any length) or it
left a failure with a reason in the trace, and the stage fell back as documented (the fallback
score, the one-step plan, the first candidate, no answer). Zero crashes:
no problem may end with an error. The counts are printed at the end of the session.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from data.grading import extract_answer
from program.config import ScaleConfig
from program.scale import Scale
from program.scale.decompose import PLAN_CEILING
from program.testing import scripted_systems
from program.testing.garbage import NUMBER_FREE
from reliability.fuzzing import NO_ANSWER, Fuzzer, assert_clean, assert_reasons, failures_of, fuzz, row_number
from reliability.toy import TALLY

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
    TALLY["garbage: rewrite"] = {**fuzzer.counts, "used as documented": used}


@pytest.mark.parametrize("retries", [0, 1])
def test_decomposition_garbage(tmp_path: Path, retries: int) -> None:
    config = ScaleConfig(threshold=0.5, max_steps=4)
    fuzzer, results = fuzz("decompose", lambda f: Scale(config, scripted_systems(f, f, f), decompose_retries=retries),
                           tmp_path, seed=12 + retries, per_problem=retries + 1)
    one_step = ceilinged = 0
    for result in results:
        assert_reasons(result)
        served = fuzzer.by_row[row_number(result)]
        plan = result.trace["plan"]
        attempts = [f for f in failures_of(result, "decompose") if f["reason"].startswith("candidate")]
        # accounting: each bad reply is the candidate used, a recorded failure, or the second ask of
        # an over-long plan
        assert len(served) == len(attempts) + len(plan["candidates"]) + (plan["reasked"] is not None)
        assert len(plan["steps"]) >= 1
        if len(plan["steps"]) > config.max_steps:  # never cut: kept whole, with a warning
            assert any("kept every step" in f["reason"] for f in failures_of(result, "decompose"))
            assert len(plan["steps"]) <= PLAN_CEILING
        over_ceiling = any("over the ceiling" in f["reason"] for f in failures_of(result, "decompose"))
        if over_ceiling:  # a garbled list that long is not a plan: one step, the problem itself
            ceilinged += 1
            assert plan["steps"] == [result.problem] and plan["candidates"]
        for step in plan["steps"]:
            assert step.strip()
            assert_clean(step)
        if not plan["candidates"]:  # fallback: the problem itself as a one-step plan
            one_step += 1
            assert plan["steps"] == [result.problem]
            assert any("no usable decomposition" in f["reason"] for f in failures_of(result, "decompose"))
        elif not over_ceiling:
            assert served[-1].kind not in NUMBER_FREE  # no digit and no list: never a plan
        if any(len(c) > config.max_steps for c in plan["candidates"]):
            assert plan["reasked"] is not None
            assert any("asked again" in f["reason"] for f in failures_of(result, "decompose"))
        assert [s["index"] for s in result.trace["steps"]] == list(range(len(plan["steps"])))
    TALLY[f"garbage: decompose (retries {retries})"] = {**fuzzer.counts, "one-step fallbacks": one_step,
                                                       "plans over the ceiling": ceilinged}


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
    TALLY["garbage: select"] = {**fuzzer.counts, "first-candidate fallbacks": first}


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
                counts["read"] += 1
                assert 0.0 <= d["raw"] <= 1.0 and d["score"] == d["raw"]  # out of range is unreadable
                assert mine[-1].kind not in NUMBER_FREE
                assert len(failed) == d["attempts"] - 1  # every earlier attempt left a reason
            else:  # every attempt failed: the fallback score, said so
                counts["fallback"] += 1
                assert d["score"] == config.fallback_difficulty and d["fallback"]
                assert len(failed) == d["attempts"] + 1 and d["attempts"] == config.difficulty_retries + 1
                assert "used fallback 1.0" in failed[-1]["reason"]
        assert served == []  # no bad reply unaccounted for
    TALLY[f"garbage: difficulty ({mode})"] = {**fuzzer.counts, **counts}


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
        for i, (step, reply) in enumerate(zip(steps, served, strict=True)):
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
    TALLY["garbage: step solving (System 1/2)"] = {**fuzzer.counts, "steps without an answer": no_answer}
