"""SCALE's plan on scripted LMs: candidates and the judge, rewrite, fallbacks, over-long plans, the step range,
the reference rules, and traces that optimizers can read."""

from __future__ import annotations

import dspy
import pytest

from program.clients.lm import Systems
from program.config import ScaleConfig
from program.scale import Scale
from program.scale.decompose import PLAN_CEILING
from program.signatures import AssessDifficulty, Decompose, SelectDecomposition
from program.testing import function_lm
from test_scale_module import PROBLEM, STEPS, Messages, field, is_stage, run, stages_responder, systems

# --- decomposition: candidates, selection, rewrite, fallbacks -------------------------------------

def candidates_lm(select: str) -> object:
    """A stages LM whose decomposition names the seed it was asked with, and whose judge says ``select``."""
    holder: dict[str, object] = {}

    def decompose(messages: Messages) -> str:
        seed = holder["lm"].engine.configs[-1].seed  # type: ignore[attr-defined]
        return f"1. Candidate {seed} step 1\n2. Candidate {seed} step 2"

    holder["lm"] = function_lm(stages_responder(decompose=decompose, select=select), "stages")
    return holder["lm"]


def test_k_candidates_use_distinct_seeds_and_the_judge_picks_one() -> None:
    base = systems()
    lms = Systems(candidates_lm("The best is candidate 3."), base.system1, base.system2)
    prediction, ledger = run(Scale(ScaleConfig(num_candidates=3, candidate_temperature=0.9), lms))
    engine = lms.stages.engine
    configs = [c for r, c in zip(engine.requests, engine.configs, strict=True) if is_stage(r, Decompose)]
    assert [c.seed for c in configs] == [0, 1, 2]
    assert [c.temperature for c in configs] == [0.9, 0.9, 0.9]  # greedy candidates would all be the same
    assert prediction.trace["plan"]["selected"] == 2
    assert prediction.trace["plan"]["steps"] == ["Candidate 2 step 1", "Candidate 2 step 2"]
    assert ledger.by_stage()["select"]["calls"] == 1
    judge = next(r for r in engine.requests if is_stage(r, SelectDecomposition))
    assert "Candidate 1:\n  1. Candidate 0 step 1" in field(judge, "Candidates")


@pytest.mark.parametrize("reply", ["I cannot decide", "9"])
def test_an_unusable_choice_takes_the_first_candidate_and_is_recorded(reply: str) -> None:
    base = systems()
    prediction, _ = run(Scale(ScaleConfig(num_candidates=2), Systems(candidates_lm(reply), base.system1, base.system2)))
    assert prediction.trace["plan"]["selected"] == 0
    assert prediction.trace["plan"]["steps"][0] == "Candidate 0 step 1"
    assert [f["stage"] for f in prediction.trace["failures"]] == ["select"]


def test_rewrite_replaces_the_last_step_with_the_question() -> None:
    lms = systems()
    prediction, ledger = run(Scale(ScaleConfig(rewrite=True), lms))
    plan = prediction.trace["plan"]
    assert plan["question"] == "How many dollars?" and plan["conditions"] == "16 eggs, 3 eaten, $2 each."
    assert plan["steps"] == [*STEPS[:2], "How many dollars?"]
    assert ledger.by_stage()["rewrite"]["calls"] == 1


def test_an_unreadable_rewrite_keeps_the_plan_and_is_recorded() -> None:
    prediction, _ = run(Scale(ScaleConfig(rewrite=True), systems(stages_responder(rewrite="just some words"))))
    assert prediction.trace["plan"]["steps"] == STEPS and prediction.trace["plan"]["question"] is None
    assert prediction.trace["failures"][0]["stage"] == "rewrite"


def test_unreadable_decompositions_fall_back_to_a_one_step_plan() -> None:
    lms = systems(stages_responder(decompose=lambda m: "I will just solve it."),
                  s1=lambda m: "\\boxed{26}", s2=lambda m: "\\boxed{26}")
    prediction, ledger = run(Scale(ScaleConfig(), lms, decompose_retries=2))
    assert ledger.by_stage()["decompose"]["calls"] == 3
    assert prediction.trace["plan"]["steps"] == [PROBLEM] and prediction.answer == "26"
    reasons = [f["reason"] for f in prediction.trace["failures"] if f["stage"] == "decompose"]
    assert len(reasons) == 4 and "one step" in reasons[-1]


LONG = [f"Find quantity {i}." for i in range(1, 9)]


def test_an_over_long_plan_is_asked_again_then_kept_whole() -> None:
    lms = systems(stages_responder(steps=LONG))
    prediction, ledger = run(Scale(ScaleConfig(max_steps=3), lms))
    assert prediction.trace["plan"]["steps"] == LONG  # no step dropped
    assert prediction.trace["plan"]["reasked"] == LONG
    assert ledger.by_stage()["decompose"]["calls"] == 2
    asks = [r for r in lms.stages.engine.requests if is_stage(r, Decompose)]
    assert "AT MOST 3" not in asks[0][0]["content"] and "AT MOST 3 sub-problems (a plan of 8" in asks[1][0]["content"]
    reason = next(f["reason"] for f in prediction.trace["failures"] if f["stage"] == "decompose")
    assert "over max_steps=3" in reason and "kept every step of the first plan" in reason
    assert [s["index"] for s in prediction.trace["steps"]] == list(range(8))


def test_a_plan_over_the_ceiling_is_noise_and_solved_as_one_step() -> None:
    garbled = [f"Line {i} of a garbled reply." for i in range(1, PLAN_CEILING + 2)]
    lms = systems(stages_responder(steps=garbled), s1=lambda m: "\\boxed{26}", s2=lambda m: "\\boxed{26}")
    for max_steps in (3, None):  # asked again first when there is a limit; the ceiling holds without one too
        prediction, ledger = run(Scale(ScaleConfig(max_steps=max_steps), lms))
        assert prediction.trace["plan"]["steps"] == [PROBLEM] and prediction.answer == "26"
        assert ledger.by_stage()["decompose"]["calls"] == (2 if max_steps else 1)
        reason = [f["reason"] for f in prediction.trace["failures"] if f["stage"] == "decompose"][-1]
        assert f"plan of {PLAN_CEILING + 1} steps is over the ceiling of {PLAN_CEILING}" in reason


def test_traces_name_the_programs_own_predictors() -> None:
    """Optimizers find a predictor's examples in the trace (bootstrap by identity, GEPA by signature): the
    calls that add the step-range sentence (a per-call ``signature=``) are traced as the decompose predictor
    itself, whose own instruction stays as it was."""
    program = Scale(ScaleConfig(max_steps=3, rewrite=True), systems(stages_responder(steps=LONG)))
    instruction = program.decompose.signature.instructions
    with dspy.context(trace=[]):
        program(problem=PROBLEM)
        traced = [predictor for predictor, *_ in dspy.settings.trace]
    own = {id(p) for _, p in program.named_predictors()}
    assert traced and all(id(p) in own for p in traced)
    assert sum(p is program.decompose for p in traced) == 2  # the plan and the second ask
    assert program.decompose.signature.instructions == instruction


def test_the_one_digit_rating_is_traced_as_the_programs_rating_predictor() -> None:
    from program.clients.transport import Completion

    reply = Completion(text="3", logprobs=[{"token": "3", "logprob": -0.1, "top": [["3", -0.1]]}])
    program = Scale(ScaleConfig(difficulty_source="rating_logprobs", last_step_score=None),
                    systems(lambda m: reply if is_stage(m, AssessDifficulty) else stages_responder()(m)))
    program.difficulty.demos = [dspy.Example(problem="p", earlier_steps="e", current_step="s", score=0.5)]
    signature = program.difficulty.signature
    with dspy.context(trace=[]):
        prediction = program(problem=PROBLEM)
        traced = [predictor for predictor, *_ in dspy.settings.trace]
    assert [s["difficulty"]["source"] for s in prediction.trace["steps"]] == ["rating_logprobs"] * 3
    assert sum(p is program.difficulty for p in traced) == 3
    assert program.difficulty.signature is signature and len(program.difficulty.demos) == 1
    rating = next(r for r in program.systems.stages.engine.requests if is_stage(r, AssessDifficulty))
    assert "one digit from 0 to 9" in rating[0]["content"]
    assert len(rating) == 2, "the demos (scores in [0, 1]) are not shown to the one-digit rating"


def test_a_shorter_second_plan_replaces_the_over_long_one() -> None:
    def decompose(messages: Messages) -> str:
        steps = STEPS if "AT MOST" in messages[0]["content"] else LONG
        return "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))

    prediction, _ = run(Scale(ScaleConfig(max_steps=3), systems(stages_responder(decompose=decompose))))
    assert prediction.trace["plan"]["steps"] == STEPS
    assert "asked again and got 3" in prediction.trace["failures"][0]["reason"]


def test_no_limit_and_no_range_is_the_reference_instruction() -> None:
    lms = systems(stages_responder(steps=LONG))
    prediction, ledger = run(Scale(ScaleConfig(max_steps=None, range_min_steps=None, range_max_steps=None), lms))
    assert prediction.trace["plan"]["steps"] == LONG and ledger.by_stage()["decompose"]["calls"] == 1
    ask = next(r for r in lms.stages.engine.requests if is_stage(r, Decompose))
    assert "sub-problems; a simple problem needs fewer" not in ask[0]["content"]
    lms = systems()
    run(Scale(ScaleConfig(range_min_steps=1, range_max_steps=4), lms))
    ask = next(r for r in lms.stages.engine.requests if is_stage(r, Decompose))
    assert "Use 1 to 4 sub-problems; a simple problem needs fewer." in ask[0]["content"]


def test_the_range_asked_for_never_reaches_past_max_steps() -> None:
    for config, sentence in [(ScaleConfig(max_steps=3), "Use 2 to 3 sub-problems"),
                             (ScaleConfig(max_steps=2), "Use at most 2 sub-problems"),
                             (ScaleConfig(max_steps=8), "Use 2 to 5 sub-problems")]:
        lms = systems()
        run(Scale(config, lms))
        ask = next(r for r in lms.stages.engine.requests if is_stage(r, Decompose))
        assert sentence + "; a simple problem needs fewer." in ask[0]["content"], config


def test_the_decompose_instruction_holds_the_reference_rules() -> None:
    text = Decompose.instructions
    for rule in ("simpler than the original problem", "Name no theorem", "builds on the results of earlier ones",
                 "clear target"):
        assert rule in text
