"""Baselines on scripted LMs: CoT, majority voting, prompted InftyThink, budget forcing alone."""

from __future__ import annotations

import json

import pytest

from program.baselines import BudgetForcing, CoT, InftyThink, MajorityVote, majority, split_summary
from program.clients.transport import Completion
from program.config import InftyThinkConfig, VoteConfig
from program.ledger import Ledger, recording
from program.testing import function_lm, replies

PROBLEM = "What is 2 + 4?"


def run(program: object) -> tuple[object, Ledger]:
    ledger = Ledger()
    with recording(ledger):
        prediction = program(problem=PROBLEM)  # type: ignore[operator]
    json.dumps(prediction.trace)  # every trace is JSON
    return prediction, ledger


def user_text(lm: object, i: int) -> str:
    return lm.engine.requests[i][-1]["content"]  # type: ignore[attr-defined]


# --- CoT and budget forcing ------------------------------------------------------------------

def test_cot_is_one_call_and_reads_the_boxed_answer() -> None:
    lm = function_lm(lambda m: "2 + 4 = 6, so \\boxed{6}.")
    prediction, ledger = run(CoT(lm))
    assert prediction.answer == "6" and prediction.solution == "2 + 4 = 6, so \\boxed{6}."
    assert ledger.by_stage()["cot"]["calls"] == 1 and prediction.trace["failures"] == []
    assert "Problem:\nWhat is 2 + 4?" in user_text(lm, 0)


def test_a_reply_without_an_answer_gives_an_empty_answer_and_a_failure() -> None:
    prediction, _ = run(CoT(function_lm(lambda m: "I am not sure.")))
    assert prediction.answer == "" and prediction.trace["failures"][0]["stage"] == "cot"


def test_budget_forcing_runs_in_stage_bf_and_keeps_thinking_out_of_the_solution() -> None:
    lm = function_lm(lambda m: Completion(text="\\boxed{6}", thinking="SECRET", prompt_tokens=9, completion_tokens=40,
                                          thinking_tokens=38), "bf")
    prediction, ledger = run(BudgetForcing(lm=lm))
    assert prediction.answer == "6" and "SECRET" not in json.dumps(prediction.trace) + prediction.solution
    assert ledger.by_stage()["bf"]["thinking_tokens"] == 38
    assert prediction.trace["usage"] == {"calls": 1, "prompt_tokens": 9, "completion_tokens": 40, "thinking_tokens": 38}


# --- majority voting -------------------------------------------------------------------------

def test_votes_are_k_separate_calls_with_distinct_seeds_at_the_vote_temperature() -> None:
    answers = iter(["\\boxed{6}", "\\boxed{7}", "no answer", "\\boxed{ 6 }", "\\boxed{7}"])
    lm = function_lm(lambda m: next(answers))
    prediction, ledger = run(MajorityVote(lm, VoteConfig(samples=5, temperature=0.9)))
    assert [c.seed for c in lm.engine.configs] == [0, 1, 2, 3, 4]
    assert {c.temperature for c in lm.engine.configs} == {0.9}
    assert ledger.by_stage()["vote"]["calls"] == 5
    assert [v["answer"] for v in prediction.trace["votes"]] == ["6", "7", None, "6", "7"]
    assert prediction.answer == "6" and prediction.solution == "\\boxed{6}"  # 2-2 tie: 6 came first
    assert len(prediction.trace["failures"]) == 1


@pytest.mark.parametrize(("answers", "winner"), [
    (["3", "4", "4"], "4"), (["4", "3", "3", "4"], "4"), ([None, None], None), (["$1,000", "1000", "7"], "$1,000"),
])
def test_the_most_common_answer_wins_and_ties_go_to_the_first(answers: list[str | None], winner: str | None) -> None:
    assert majority(answers) == winner


# --- InftyThink ------------------------------------------------------------------------------

def test_each_iteration_sees_only_the_question_and_the_latest_summary() -> None:
    lm = function_lm(replies("First I add. REASONING-ONE\nSummary:\n- 2 + 4 is being computed",
                             "Carrying on. REASONING-TWO\n**Summary:**\n- the sum is 6",
                             "So the answer is \\boxed{6}."))
    prediction, ledger = run(InftyThink(lm, InftyThinkConfig(segment_tokens=100, max_iterations=5)))
    assert prediction.answer == "6" and len(prediction.trace["iterations"]) == 3
    second, third = user_text(lm, 1), user_text(lm, 2)
    assert "- 2 + 4 is being computed" in second and "REASONING-ONE" not in second
    assert "- the sum is 6" in third and "REASONING" not in third and "being computed" not in third
    assert "What is 2 + 4?" in third and [c.max_tokens for c in lm.engine.configs] == [100, 100, 100]
    assert ledger.by_stage()["inftythink"]["calls"] == 3 and "inftythink_summary" not in ledger.by_stage()


def test_a_segment_cut_off_without_a_summary_is_summarised_by_a_separate_call() -> None:
    lm = function_lm(replies("I start adding 2 and 4 and then", "- adding 2 and 4", "Done: \\boxed{6}"))
    prediction, ledger = run(InftyThink(lm, InftyThinkConfig(summary_max_tokens=50)))
    assert prediction.answer == "6"
    assert ledger.by_stage()["inftythink_summary"]["calls"] == 1 and lm.engine.configs[1].max_tokens == 50
    assert "Progress:\n- adding 2 and 4" in user_text(lm, 2) and "I start" not in user_text(lm, 2)


def test_iterations_stop_at_the_maximum() -> None:
    lm = function_lm(lambda m: "Still going.\nSummary:\n- nothing final")
    prediction, ledger = run(InftyThink(lm, InftyThinkConfig(max_iterations=3)))
    assert ledger.by_stage()["inftythink"]["calls"] == 3 and prediction.answer == ""
    assert "after 3 iteration" in prediction.trace["failures"][0]["reason"]


@pytest.mark.parametrize(("segment", "expected"), [
    ("work\nSummary:\n- a", ("work", "- a")), ("work\n## Summary\n- a", ("work", "- a")),
    ("no summary here", ("no summary here", "")), ("Summary: - a", ("", "- a")),
])
def test_summaries_are_split_at_the_last_header(segment: str, expected: tuple[str, str]) -> None:
    assert split_summary(segment) == expected


