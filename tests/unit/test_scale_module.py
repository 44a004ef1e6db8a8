"""The SCALE module on scripted LMs: routing, the last-step rule, context, retries, plan reuse, tokens.

The plan itself (candidates, rewrite, fallbacks, over-long plans) is in ``test_scale_decompose.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from program.clients.lm import Systems
from program.clients.transport import Completion
from program.config import ConfigError, ScaleConfig
from program.ledger import Ledger, recording
from program.scale import MemoryPlanCache, Plan, Scale
from program.signatures import AssessDifficulty, Decompose, Rewrite, SelectDecomposition
from program.testing import count_tokens, function_lm

PROBLEM = "Janet's ducks lay 16 eggs. She eats 3 and sells the rest at $2 each. How many dollars does she make?"
STEPS = ["Find the eggs left, call it E.", "Find the price per egg, call it P.", "Find the money made from E eggs."]
Messages = list[dict[str, str]]


def field(messages: Messages, label: str) -> str:
    """The value of an input labelled ``label`` in the last user message (the adapter's plain format)."""
    match = re.search(rf"^{label}:\n(.*?)(?:\n\n[A-Z][a-z ]+:\n|\n\nReply with|\Z)", messages[-1]["content"],
                      re.S | re.M)
    return match.group(1) if match else ""


def is_stage(messages: Messages, signature: type) -> bool:
    return messages[0]["content"].startswith(signature.instructions.split("\n")[0][:40])


def stages_responder(*, steps: list[str] = STEPS, scores: dict[str, str] | Callable[[str], str] | None = None,
                     select: str = "1",
                     rewrite: str = "Conditions: 16 eggs, 3 eaten, $2 each.\nQuestion: How many dollars?",
                     decompose: Callable[[Messages], str] | None = None) -> Callable[[Messages], str]:
    """Decomposition -> ``steps``; difficulty -> ``scores[step]``; selection -> ``select``; rewrite -> ``rewrite``."""
    def respond(messages: Messages) -> str:
        if is_stage(messages, Decompose):
            return decompose(messages) if decompose else "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
        if is_stage(messages, AssessDifficulty):
            step = field(messages, "Current step")
            if callable(scores):
                return scores(step)
            return (scores or {}).get(step, "0.1")
        if is_stage(messages, SelectDecomposition):
            return select
        if is_stage(messages, Rewrite):
            return rewrite
        raise AssertionError(f"unexpected stage request: {messages[0]['content'][:80]!r}")
    return respond


def boxed_solver(tag: str) -> Callable[[Messages], str]:
    """Solves any step with ``<tag> answer for <step> \\boxed{n}``, n = the step's position."""
    def respond(messages: Messages) -> str:
        step = field(messages, "Current step")
        return f"{tag} answer for {step} \\boxed{{{STEPS.index(step) + 1 if step in STEPS else 0}}}"
    return respond


def systems(stages: Callable[[Messages], str] | None = None, s1: Callable | None = None,
            s2: Callable | None = None) -> Systems:
    return Systems(stages=function_lm(stages or stages_responder(), "stages"),
                   system1=function_lm(s1 or boxed_solver("fast"), "system1"),
                   system2=function_lm(s2 or boxed_solver("slow"), "system2"))


def run(scale: Scale, problem: str = PROBLEM) -> tuple[object, Ledger]:
    ledger = Ledger()
    with recording(ledger):
        prediction = scale(problem=problem)
    return prediction, ledger


def steps_seen(lm: object) -> list[str]:
    return [field(r, "Current step") for r in lm.engine.requests]  # type: ignore[attr-defined]


# --- routing ---------------------------------------------------------------------------------

def test_score_equal_to_tau_goes_to_system1_and_above_to_system2() -> None:
    lms = systems(stages_responder(scores={STEPS[0]: "0.5", STEPS[1]: "0.51"}))
    prediction, _ = run(Scale(ScaleConfig(threshold=0.5), lms))
    assert [s["mode"] for s in prediction.trace["steps"]] == ["system1", "system2", "system2"]
    assert steps_seen(lms.system1) == [STEPS[0]]
    assert steps_seen(lms.system2) == STEPS[1:]
    assert prediction.trace["steps"][0] | {"score": 0.5, "threshold": 0.5} == prediction.trace["steps"][0]
    assert prediction.answer == "3" and prediction.solution.startswith("slow answer for")


@pytest.mark.parametrize(("threshold", "mode"), [(1.0, "system1"), (-1.0, "system2")])
def test_tau_one_routes_everything_to_system1_and_minus_one_to_system2(threshold: float, mode: str) -> None:
    scores = {STEPS[0]: "1.0", STEPS[1]: "0.0", STEPS[2]: "1.0"}
    prediction, _ = run(Scale(ScaleConfig(threshold=threshold, last_step_score=None),
                              systems(stages_responder(scores=scores))))
    assert [s["mode"] for s in prediction.trace["steps"]] == [mode] * 3


def test_last_step_score_is_forced_without_a_call_and_recorded() -> None:
    lms = systems()
    prediction, ledger = run(Scale(ScaleConfig(threshold=0.9), lms))
    last = prediction.trace["steps"][-1]
    assert last["difficulty"] == {"score": 0.9, "raw": None, "forced": True, "fallback": None, "attempts": 0,
                                  "source": "rating", "signals": None}
    assert last["mode"] == "system1"  # 0.9 is not > 0.9
    assert ledger.by_stage()["difficulty"]["calls"] == 2  # the last step was not asked
    prediction, _ = run(Scale(ScaleConfig(threshold=0.5), systems()))
    assert prediction.trace["steps"][-1]["mode"] == "system2"


def test_uniform_scale_without_scores_needs_a_deciding_threshold() -> None:
    with pytest.raises(ConfigError, match="threshold"):
        Scale(ScaleConfig(threshold=0.5), systems(), assess_difficulty=False)
    lms = systems()
    prediction, ledger = run(Scale(ScaleConfig(threshold=-1.0, last_step_score=None), lms, assess_difficulty=False))
    assert "difficulty" not in ledger.by_stage()
    assert [s["mode"] for s in prediction.trace["steps"]] == ["system2"] * 3
    assert all(s["difficulty"] is None and s["score"] is None for s in prediction.trace["steps"])


# --- what each step sees ---------------------------------------------------------------------

def test_thinking_never_reaches_a_later_request() -> None:
    def thinking_solver(messages: Messages) -> Completion:
        return Completion(text=f"visible work \\boxed{{{len(messages)}}}", thinking="SECRET plan", thinking_tokens=2,
                          completion_tokens=5, prompt_tokens=7)

    lms = systems(stages_responder(scores={s: "0.9" for s in STEPS}), s2=thinking_solver)
    mode = "solved_context"  # difficulty calls after System 2 steps must not see the thinking either
    prediction, _ = run(Scale(ScaleConfig(threshold=0.5, difficulty_mode=mode), lms))
    requests = [m["content"] for lm in (lms.stages, lms.system1, lms.system2) for r in lm.engine.requests for m in r]
    assert not any("SECRET" in content for content in requests)
    assert "SECRET" not in json.dumps(prediction.trace) and "visible work" in field(lms.system2.engine.requests[1],
                                                                                     "Earlier steps")


def test_full_context_shows_visible_answers_and_final_value_only_values() -> None:
    lms = systems()
    run(Scale(ScaleConfig(threshold=1.0, last_step_score=None, context="full"), lms))
    last = field(lms.system1.engine.requests[-1], "Earlier steps")
    assert f"Step 1: {STEPS[0]}" in last and f"fast answer for {STEPS[0]} \\boxed{{1}}" in last
    assert field(lms.system1.engine.requests[0], "Earlier steps").startswith("(none")

    lms = systems()
    run(Scale(ScaleConfig(threshold=1.0, last_step_score=None, context="final_value"), lms))
    last = field(lms.system1.engine.requests[-1], "Earlier steps")
    assert last == f"Step 1: {STEPS[0]}\nResult: 1\n\nStep 2: {STEPS[1]}\nResult: 2"
    assert field(lms.system1.engine.requests[-1], "Problem") == PROBLEM


def test_solved_context_scores_each_step_just_before_it_runs_with_earlier_answers() -> None:
    order: list[str] = []
    stages = stages_responder()
    solver = boxed_solver("fast")
    lms = systems(lambda m: (order.append("difficulty") if is_stage(m, AssessDifficulty) else None) or stages(m),
                  s1=lambda m: (order.append("solve"), solver(m))[1],
                  s2=lambda m: (order.append("solve"), solver(m))[1])
    prediction, _ = run(Scale(ScaleConfig(threshold=0.5, difficulty_mode="solved_context"), lms))
    assert order == ["difficulty", "solve", "difficulty", "solve", "solve"]
    second = [r for r in lms.stages.engine.requests if is_stage(r, AssessDifficulty)][1]
    assert "fast answer for" in field(second, "Earlier steps")
    assert prediction.trace["difficulty_mode"] == "solved_context"


# --- difficulty: retries, fallback, clamping ----------------------------------------------------

def test_unreadable_scores_are_retried_a_bounded_number_of_times_then_fall_back() -> None:
    lms = systems(stages_responder(scores=lambda step: "no idea"))
    config = ScaleConfig(threshold=0.5, difficulty_retries=2, fallback_difficulty=0.3)
    prediction, ledger = run(Scale(config, lms))
    assert ledger.by_stage()["difficulty"]["calls"] == 2 * 3  # two scored steps, 1 + 2 retries each
    first = prediction.trace["steps"][0]["difficulty"]
    assert first["score"] == 0.3 and first["attempts"] == 3 and "fallback 0.3" in first["fallback"]
    failures = [f for f in prediction.trace["failures"] if f["stage"] == "difficulty" and f["step"] == 0]
    assert len(failures) == 4 and "no number" in failures[0]["reason"]
    seeds = [c.seed for r, c in zip(lms.stages.engine.requests, lms.stages.engine.configs, strict=True)
             if is_stage(r, AssessDifficulty)][:3]
    assert seeds == [0, 1, 2]


def test_a_retry_that_reads_is_used() -> None:
    replies = iter(["hmm", "0.7", "0.2"])
    lms = systems(stages_responder(scores=lambda step: next(replies)))
    prediction, _ = run(Scale(ScaleConfig(threshold=0.5), lms))
    assert [s["difficulty"]["attempts"] for s in prediction.trace["steps"][:2]] == [2, 1]
    assert [s["score"] for s in prediction.trace["steps"]] == [0.7, 0.2, 0.9]


def test_a_difficulty_of_7_is_unreadable_and_asked_again() -> None:
    replies = iter(["7", "0.3", "0.2"])
    prediction, _ = run(Scale(ScaleConfig(threshold=0.5), systems(stages_responder(scores=lambda step: next(replies)))))
    first = prediction.trace["steps"][0]["difficulty"]
    assert (first["score"], first["raw"], first["attempts"], first["fallback"]) == (0.3, 0.3, 2, None)
    assert {"stage": "difficulty", "reason": "attempt 1: score 7.0 is outside [0, 1]", "step": 0} in (
        prediction.trace["failures"])


@pytest.mark.parametrize("reply", ["1.7", "-0.3", "7"])
def test_out_of_range_scores_end_in_the_fallback_after_the_retries(reply: str) -> None:
    config = ScaleConfig(difficulty_retries=2, fallback_difficulty=1.0)
    prediction, ledger = run(Scale(config, systems(stages_responder(scores=lambda step: reply))))
    difficulty = prediction.trace["steps"][0]["difficulty"]
    assert (difficulty["score"], difficulty["raw"], difficulty["attempts"]) == (1.0, None, 3)
    assert "used fallback 1.0" in difficulty["fallback"]
    assert ledger.by_stage()["difficulty"]["calls"] == 2 * 3  # two steps asked, three times each


def test_a_percentage_reads_as_a_fraction() -> None:
    prediction, _ = run(Scale(ScaleConfig(), systems(stages_responder(scores=lambda step: "Score: 30%"))))
    assert prediction.trace["steps"][0]["difficulty"]["score"] == pytest.approx(0.3)


# --- what a step sees --------------------------------------------------------------------------

def test_with_rewrite_a_step_sees_the_conditions_not_the_original_question() -> None:
    lms = systems()
    prediction, _ = run(Scale(ScaleConfig(rewrite=True, threshold=1.0, last_step_score=None), lms))
    requests = lms.system1.engine.requests
    assert [field(r, "Problem") for r in requests] == ["16 eggs, 3 eaten, $2 each."] * 3
    assert not any("does she make" in m["content"] for r in requests for m in r)  # the original question
    assert field(requests[-1], "Current step") == "How many dollars?"
    assert "Find the eggs left" in field(requests[-1], "Earlier steps")
    assert prediction.trace["step_layout"] == "conditions"


def test_the_problem_layout_and_a_failed_rewrite_show_the_whole_problem() -> None:
    lms = systems()
    prediction, _ = run(Scale(ScaleConfig(rewrite=True, step_layout="problem", threshold=1.0), lms))
    assert {field(r, "Problem") for r in lms.system1.engine.requests} == {PROBLEM}
    assert prediction.trace["step_layout"] == "problem"
    lms = systems(stages_responder(rewrite="just some words"))
    prediction, _ = run(Scale(ScaleConfig(rewrite=True, threshold=1.0), lms))
    assert {field(r, "Problem") for r in lms.system1.engine.requests} == {PROBLEM}
    assert prediction.trace["step_layout"] == "problem"


# --- plan reuse and token accounting -----------------------------------------------------------

def test_a_cached_plan_is_reused_with_its_calls_booked_as_cached() -> None:
    cache = MemoryPlanCache()
    lms = systems(stages_responder(scores={STEPS[0]: "0.3", STEPS[1]: "0.6"}))
    first, first_ledger = run(Scale(ScaleConfig(threshold=0.5), lms, plan_cache=cache))
    stage_calls = len(lms.stages.engine.requests)
    second, second_ledger = run(Scale(ScaleConfig(threshold=0.2), lms, plan_cache=cache))
    assert len(lms.stages.engine.requests) == stage_calls  # no decompose/difficulty call the second time
    assert [s["mode"] for s in second.trace["steps"]] == ["system2"] * 3
    assert second.trace["plan"]["cached"] and not first.trace["plan"]["cached"]
    planning = [c for c in second_ledger.calls if c.stage in ("decompose", "difficulty")]
    assert planning and all(c.cached for c in planning)
    assert {k: v for k, v in second_ledger.by_stage()["decompose"].items() if k != "cached_calls"} == \
        {k: v for k, v in first_ledger.by_stage()["decompose"].items() if k != "cached_calls"}
    assert second_ledger.totals(spent_only=True)["calls"] == 3


def test_plans_round_trip_and_other_settings_do_not_reuse_them() -> None:
    cache = MemoryPlanCache()
    lms = systems()
    scale = Scale(ScaleConfig(), lms, plan_cache=cache)
    plan = scale.plan(PROBLEM)
    restored = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert restored == plan
    calls = len(lms.stages.engine.requests)
    Scale(ScaleConfig(max_steps=2), lms, plan_cache=cache).plan(PROBLEM)
    assert len(lms.stages.engine.requests) > calls


def test_ledger_tokens_by_stage_equal_the_scripted_usage() -> None:
    def usage(prompt: int, completion: int, thinking: int = 0) -> Callable[[Messages, str], Completion]:
        return lambda messages, text: Completion(text=text, prompt_tokens=prompt, completion_tokens=completion,
                                                 thinking_tokens=thinking, thinking="t" if thinking else "")

    stages = stages_responder(scores={STEPS[0]: "0.2", STEPS[1]: "0.8"})

    def staged(messages: Messages) -> Completion:
        prompt, completion = (100, 20) if is_stage(messages, Decompose) else (50, 1)
        return usage(prompt, completion)(messages, stages(messages))

    lms = systems(staged, s1=lambda m: usage(30, 10)(m, boxed_solver("f")(m)),
                  s2=lambda m: usage(40, 64, 60)(m, boxed_solver("s")(m)))
    prediction, ledger = run(Scale(ScaleConfig(threshold=0.5), lms))
    by_stage = ledger.by_stage()
    assert by_stage["decompose"]["total_tokens"] == 120
    assert by_stage["difficulty"]["total_tokens"] == 2 * 51
    assert by_stage["system1"]["total_tokens"] == 40
    assert by_stage["system2"]["prompt_tokens"] == 80 and by_stage["system2"]["thinking_tokens"] == 120
    assert by_stage["system2"]["answer_tokens"] == 8
    assert ledger.totals()["total_tokens"] == 120 + 102 + 40 + 2 * 104
    assert [s["usage"]["thinking_tokens"] for s in prediction.trace["steps"]] == [0, 60, 60]


def test_trace_is_json_and_the_program_holds_no_lm() -> None:
    lms = systems()
    scale = Scale(ScaleConfig(), lms)
    prediction, _ = run(scale)
    trace = json.loads(json.dumps(prediction.trace))
    assert set(trace) >= {"plan", "steps", "failures", "threshold"}
    assert set(trace["steps"][0]) >= {"step", "difficulty", "mode", "score", "threshold", "visible", "value", "usage"}
    assert all(predictor.lm is None for _, predictor in scale.named_predictors())
    copy = scale.deepcopy()
    assert copy.systems is scale.systems and copy.decompose is not scale.decompose
    assert json.dumps(scale.dump_state())
    assert count_tokens(prediction.solution) > 0
