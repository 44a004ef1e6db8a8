"""The plain-text adapter: what a stage's prompt looks like, and how forgiving its reading of replies is."""

from __future__ import annotations

import os

import dspy
import pytest

from program.adapter import PlainAdapter, parse_index, parse_number, parse_steps
from program.calls import call
from program.clients.templates import get_template
from program.signatures import (
    AssessDifficulty,
    Decompose,
    InftyThinkSegment,
    InftyThinkSummary,
    Rewrite,
    SelectDecomposition,
    SolveProblem,
    SolveStep,
)
from program.testing import chat_fields, function_lm

STEPS_REPLIES = [
    ("1. Find A.\n2. Find B.", ["Find A.", "Find B."]),
    ("Here is the plan:\n1) Find A\n   of the eggs\n2) Find B\n\nThis leads to the answer.",
     ["Find A of the eggs", "Find B"]),
    ("**Step 1:** Find A\n**Step 2:** Find B", ["Find A", "Find B"]),
    ("Sub-problem 1: Find A\nSub-problem 2: Find B", ["Find A", "Find B"]),
    ('```json\n{"step1": "Find A", "step2": "Find B"}\n```', ["Find A", "Find B"]),
    ('{"steps": ["Find A", "Find B"]}', ["Find A", "Find B"]),
    ('[{"id": 1, "description": "Find A"}, {"id": 2, "description": "Find B"}]', ["Find A", "Find B"]),
    (chat_fields(steps='["Find A", "Find B"]'), ["Find A", "Find B"]),
    ("- Find A\n- Find B", ["Find A", "Find B"]),
    ("1. It takes 3.5 hours to find A.\n2. Find B.", ["It takes 3.5 hours to find A.", "Find B."]),
]


@pytest.mark.parametrize(("reply", "steps"), STEPS_REPLIES)
def test_step_lists_are_read_from_many_shapes(reply: str, steps: list[str]) -> None:
    assert parse_steps(reply) == steps


@pytest.mark.parametrize("reply", ["", "I will just solve it: 16 - 3 = 13.", "{}"])
def test_replies_without_a_list_raise_with_a_reason(reply: str) -> None:
    with pytest.raises(ValueError, match="no list"):
        parse_steps(reply)


@pytest.mark.parametrize(("reply", "value"), [
    ("0.3", 0.3), ("Difficulty: 0.35", 0.35), ("Step 2: 0.4", 0.4), ("30%", 0.3), ("7/10", 0.7),
    ("The score is 1", 1.0), ("7", 7.0), ("-0.2", -0.2), (".5", 0.5), (chat_fields(score="0.8"), 0.8),
])
def test_scores_are_read_from_a_number_anywhere(reply: str, value: float) -> None:
    assert parse_number(reply) == pytest.approx(value)


def test_indexes_and_missing_numbers() -> None:
    assert parse_index("Candidate 2 is the best.") == 2
    with pytest.raises(ValueError, match="no number"):
        parse_number("hard")
    with pytest.raises(ValueError, match="no number"):
        parse_index("the second one")


def test_prompt_is_the_instruction_and_reply_hint_then_only_the_labelled_inputs() -> None:
    messages = PlainAdapter().format(AssessDifficulty, [], {
        "problem": "P", "earlier_steps": "Step 1: A", "current_step": "B"})
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == (AssessDifficulty.instructions.strip() + "\n\n"
                                      "Reply with the difficulty, between 0 and 1 (one number) and nothing else.")
    assert messages[1]["content"] == "Problem:\nP\n\nEarlier steps:\nStep 1: A\n\nCurrent step:\nB"
    assert "[[ ##" not in messages[0]["content"] + messages[1]["content"]


STAGES = [Decompose, SelectDecomposition, Rewrite, AssessDifficulty, SolveStep, SolveProblem, InftyThinkSegment,
          InftyThinkSummary]


def _inputs(signature: type, problem: str) -> dict[str, str]:
    return {name: problem if name == "problem" else f"{name} of {problem[:10]}" for name in signature.input_fields}


@pytest.mark.parametrize("signature", STAGES)
def test_each_stage_prompt_starts_with_a_fixed_part_byte_identical_across_problems(signature: type) -> None:
    """Instruction, reply format and demos come first and do not depend on the problem (prefix caching)."""
    demo = {**_inputs(signature, "Demo problem."), **{name: "1. A" for name in signature.output_fields}}
    template = get_template("chatml")  # the embedded model's rendering, as budget forcing sends it
    one, two = (template.render(PlainAdapter().format(signature, [demo], _inputs(signature, problem)))
                for problem in ("Janet has 16 eggs.", "A robe takes 2 bolts."))
    shared = len(os.path.commonprefix([one, two]))
    fixed = one[:one.rindex("<|im_start|>user\n") + len("<|im_start|>user\n")]
    assert shared >= len(fixed)  # everything up to the last user message is shared
    assert one[len(fixed):].startswith(next(f"{n.replace('_', ' ').capitalize()}:\n" for n in signature.input_fields))
    assert "Janet" not in fixed and PlainAdapter._reply_hint(signature) in fixed


REPLIES = {  # every reply kind of the tests above, through the full compacted prompt path (call)
    Decompose: [(r, {"steps": s}) for r, s in STEPS_REPLIES],
    AssessDifficulty: [("0.3", {"score": 0.3}), ("Difficulty: 0.35", {"score": 0.35}), ("30%", {"score": 0.3}),
                       (chat_fields(score="0.8"), {"score": 0.8})],
    SelectDecomposition: [("Candidate 2 is the best.", {"best": 2})],
    Rewrite: [("Conditions: 16 eggs, 3 eaten. Question: How many are left?",
               {"conditions": "16 eggs, 3 eaten.", "question": "How many are left?"})],
    SolveStep: [("16 - 3 = 13, so \\boxed{13}", {"solution": "16 - 3 = 13, so \\boxed{13}"})],
}


@pytest.mark.parametrize(("signature", "reply", "expected"),
                         [(sig, r, e) for sig, cases in REPLIES.items() for r, e in cases])
def test_compacted_prompts_still_parse_every_reply_kind(signature: type, reply: str, expected: dict) -> None:
    attempt = call(dspy.Predict(signature), function_lm(lambda m: reply), "stage", **_inputs(signature, "P?"))
    assert attempt.ok, attempt.reason
    assert {k: attempt.prediction[k] for k in expected} == expected


def test_demos_become_user_and_assistant_turns_in_the_same_plain_format() -> None:
    demo = {"problem": "Q", "steps": ["Find A.", "Find B."]}
    messages = PlainAdapter().format(Decompose, [demo], {"problem": "P"})
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "Problem:\nQ" and messages[2]["content"] == "1. Find A.\n2. Find B."


def test_free_text_output_is_the_whole_reply() -> None:
    reply = "Step 1: 16 - 3 = 13.\nSolution: so \\boxed{13}"
    assert PlainAdapter().parse(SolveStep, reply) == {"solution": reply}


@pytest.mark.parametrize("reply", [
    "Conditions: 16 eggs, 3 eaten.\nQuestion: How many are left?",
    "**Conditions:** 16 eggs, 3 eaten.\n\n**Question:** How many are left?",
    "Conditions: 16 eggs, 3 eaten. Question: How many are left?",
    chat_fields(conditions="16 eggs, 3 eaten.", question="How many are left?"),
])
def test_several_outputs_are_read_from_labelled_sections(reply: str) -> None:
    assert PlainAdapter().parse(Rewrite, reply) == {"conditions": "16 eggs, 3 eaten.", "question": "How many are left?"}


def test_an_unreadable_reply_becomes_a_reason_not_an_exception() -> None:
    attempt = call(dspy.Predict(Rewrite), function_lm(lambda m: "Just words."), "rewrite", problem="P")
    assert not attempt.ok and "missing section(s) conditions, question" in attempt.reason
    attempt = call(dspy.Predict(AssessDifficulty), function_lm(lambda m: ""), "difficulty", problem="P",
                   earlier_steps="", current_step="S")
    assert not attempt.ok and attempt.reason


@pytest.mark.parametrize(("reply", "index"), [
    ("Of the 3 candidates, 2 is best", 2), ("Candidate 2", 2), ("Candidate 2 is the best.", 2),
    ("After comparing all 4 decompositions: candidate #3.", 3), ("1", 1), ("The best is 2 of 3.", 2),
])
def test_index_is_the_pick_not_the_count(reply: str, index: int) -> None:
    assert parse_index(reply) == index
