"""Vote as System 2 and the vote baseline: the majority, its tie rule, adaptive stopping, booked samples."""

from __future__ import annotations

import math

import pytest
from optuna.trial import FixedTrial

from optimize.search.space import SearchSpace
from program.baselines import MajorityVote
from program.calls import Solution
from program.clients.lm import Systems
from program.config import ProgramConfig, ScaleConfig, VoteConfig
from program.ledger import Ledger, recording
from program.scale import Scale
from program.testing import function_lm
from program.voting import settled, tally, vote
from tests.unit.test_scale_module import STEPS, field, stages_responder


def draws(*answers: str | None) -> tuple[list[int], object]:
    asked: list[int] = []

    def draw(i: int) -> Solution:
        asked.append(i)
        return Solution(f"sample {i}", answers[i])
    return asked, draw


def test_the_majority_and_its_tie_rule() -> None:
    assert tally(["5", "6", "6"]) == ("6", [2.0, 1.0])
    assert tally(["6", "5", "5", "6"])[0] == "6"  # a tie goes to the answer seen first
    assert tally(["$1,000", "1000.", None, None]) == ("$1,000", [2.0])  # normalised; no answer, no vote
    assert tally([None]) == (None, [])


@pytest.mark.parametrize(("answers", "used"), [
    (["7", "7", "7", "3", "3"], 3),  # 3 of 5 after 3: the 2 left cannot overturn it
    (["7", "3", "7", "7", "3"], 4),  # 3 vs 1 after 4, one left
    (["7", "3", "7", "3", "7"], 5),  # never settled early
    ([None, None, None, "7", "7"], 5),  # answerless samples settle nothing
])
def test_majority_stopping_stops_exactly_when_the_majority_is_settled(answers: list, used: int) -> None:
    asked, draw = draws(*answers)
    outcome = vote(draw, VoteConfig(samples=5))
    assert outcome.samples_used == len(asked) == used and outcome.stopped_early == (used < 5)
    assert vote(draws(*answers)[1], VoteConfig(samples=5, adaptive=False)).samples_used == 5


def test_the_beta_rule_stops_at_its_confidence() -> None:
    config = VoteConfig(samples=8, stop_rule="beta", confidence=0.95)
    assert not settled([3.0], remaining=5, config=config)  # 1 - 0.5^4 = 0.9375
    assert settled([4.0], remaining=4, config=config)  # 1 - 0.5^5 = 0.969
    assert vote(draws(*["9"] * 8)[1], config).samples_used == 4
    assert vote(draws(*["9"] * 8)[1], VoteConfig(samples=8)).samples_used == 5  # majority rule: 5 > 0 + 3


def test_confidence_weighting_lets_a_sure_trace_outvote_two_torn_ones() -> None:
    def trace(lp: float) -> list[dict]:
        return [{"token": "x", "logprob": lp, "top": [["x", lp], ["y", lp]]}] * 3

    solutions = [Solution("a", "5", logprobs=trace(-0.7)), Solution("b", "5", logprobs=trace(-0.7)),
                 Solution("c", "6", logprobs=trace(-5.0))]
    outcome = vote(lambda i: solutions[i], VoteConfig(samples=3, adaptive=False, weight="confidence"))
    assert outcome.weights == pytest.approx([0.7, 0.7, 5.0])
    assert outcome.answer == "6" and outcome.solution.text == "c"
    assert vote(lambda i: solutions[i], VoteConfig(samples=3, adaptive=False)).answer == "5"


def test_vote_as_system2_books_every_sample_and_records_the_count() -> None:
    answers = {STEPS[0]: ["4", "4", "4"], STEPS[1]: ["2", "3", "2", "2"], STEPS[2]: ["8", "8", "8"]}
    seen: dict[str, int] = {}

    def s1(messages: list[dict[str, str]]) -> str:
        step = field(messages, "Current step")
        seen[step] = seen.get(step, -1) + 1
        return f"so \\boxed{{{answers[step][seen[step]]}}}"

    systems = Systems(stages=function_lm(stages_responder(scores=lambda s: "0.9"), "stages"),
                      system1=function_lm(s1, "system1"), system2=function_lm(lambda m: "unused", "system2"))
    scale = Scale(ScaleConfig(threshold=0.5, system2_kind="vote"), systems, vote=VoteConfig(samples=5))
    ledger = Ledger()
    with recording(ledger):
        prediction = scale(problem="P")
    steps = prediction.trace["steps"]
    assert [s["vote"]["samples_used"] for s in steps] == [3, 4, 3]
    assert [s["value"] for s in steps] == ["4", "2", "8"]
    assert ledger.by_stage()["system2"]["calls"] == 10  # every sample is paid for
    assert ledger.by_stage()["system2"]["completion_tokens"] == 10 * 2
    assert systems.system2.engine.requests == []  # vote.lm: system1, the non-thinking model
    temperatures = {c.temperature for c in systems.system1.engine.configs}
    assert temperatures == {0.7}


def test_the_vote_baseline_stops_early_and_says_so() -> None:
    lm = function_lm(lambda m: "\\boxed{6}")
    prediction = MajorityVote(lm, VoteConfig(samples=8))(problem="2 * 3?")
    assert prediction.answer == "6" and prediction.trace["samples_used"] == 5 and prediction.trace["samples_max"] == 8
    assert len(lm.engine.requests) == 5


def test_the_search_chooses_the_system2_kind_and_k() -> None:
    space = SearchSpace.parse({"system2_kind": {"choices": ["think", "vote"]}, "vote_samples": [3, 9]})
    config = space.apply(ProgramConfig(), space.suggest(FixedTrial({"system2_kind": "vote", "vote_samples": 5})))
    assert config.scale.system2_kind == "vote" and config.vote.samples == 5
    assert not math.isnan(config.vote.confidence)


def test_a_vote_cap_reaches_every_sample_call_and_none_keeps_the_lms_own() -> None:
    from program.baselines.majority import MajorityVote
    from program.config_methods import VoteConfig
    from program.testing import function_lm

    capped = function_lm(lambda m: "\\boxed{4}", max_tokens=256)
    MajorityVote(capped, VoteConfig(samples=3, adaptive=False, max_tokens=768))(problem="2 + 2?")
    own = function_lm(lambda m: "\\boxed{4}", max_tokens=256)
    MajorityVote(own, VoteConfig(samples=2, adaptive=False))(problem="2 + 2?")
    assert [c.max_tokens for c in capped.engine.configs] == [768, 768, 768]
    assert [c.max_tokens for c in own.engine.configs] == [256, 256]


def test_voting_imports_nothing_that_uses_it() -> None:
    """SCALE and the majority baseline build on ``program.voting``: it may not import them (nor what builds them)."""
    import ast
    from pathlib import Path

    import program.voting

    tree = ast.parse(Path(program.voting.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    above = ("program.scale", "program.baselines", "program.methods", "program.testing", "optimize")
    assert sorted(m for m in imported if m.startswith(above)) == []
