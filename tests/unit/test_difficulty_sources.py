"""Difficulty sources on scripted LMs: the arithmetic, escalation, booked attempts, agreement, logprobs, learned."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest

from program.clients.lm import Systems
from program.clients.transport import Completion
from program.confidence import (
    agreement,
    digit_distribution,
    entropy,
    expected_digit,
    lowest_group_confidence,
    mean_logprob,
    token_confidence,
)
from program.config import ConfigError, ProgramConfig, ScaleConfig
from program.methods import build_program
from program.presets import preset
from program.scale import Scale
from program.scale.cascade import WHOLE_PROBLEM, Cascade
from program.scale.difficulty import Difficulty
from program.scale.sources import (
    Assessment,
    DifficultySource,
    LearnedModel,
    NoLogprobsError,
    StepView,
    build_source,
    needs_logprobs,
)
from program.signatures import AssessDifficulty, SolveStep
from program.testing import function_lm
from tests.unit.test_scale_module import PROBLEM, STEPS, field, is_stage, run, stages_responder

Messages = list[dict[str, str]]
CAP = 20


def lms(stages: Callable | None = None, s1: Callable | None = None, s2: Callable | None = None) -> Systems:
    """Systems whose System 1 has a cap (the attempt source reads it)."""
    return Systems(stages=function_lm(stages or stages_responder(), "stages"),
                   system1=function_lm(s1 or (lambda m: "fast \\boxed{1}"), "system1", max_tokens=CAP),
                   system2=function_lm(s2 or (lambda m: "slow \\boxed{2}"), "system2"))


def view(index: int = 0, is_last: bool = False) -> StepView:
    return StepView(PROBLEM, "(none: this is the first step)", STEPS[index], is_last=is_last, index=index)


# --- arithmetic ------------------------------------------------------------------------------

def test_expected_digit_pools_spellings_of_one_digit_and_renormalises_over_digits() -> None:
    top = [[" 7", math.log(0.2)], ["7.", math.log(0.1)], ["7", math.log(0.1)], ["3", math.log(0.4)],
           ["To", math.log(0.2)]]
    distribution = digit_distribution(top)
    assert distribution == pytest.approx({3: 0.5, 7: 0.5})
    assert expected_digit(distribution) == pytest.approx(5.0)
    assert entropy(distribution) == pytest.approx(math.log(2))
    assert digit_distribution([["To", -0.1], ["Let", -2.0]]) == {}


def test_lowest_group_confidence_is_the_weakest_window_of_mean_top_k_confidence() -> None:
    def token(*top: float) -> dict:
        return {"token": "x", "logprob": top[0], "top": [["x", lp] for lp in top]}

    tokens = [token(0.0, -10.0), token(-0.5, -1.5), token(-1.0, -1.0), token(0.0, -12.0)]
    assert [token_confidence(t) for t in tokens] == [5.0, 1.0, 1.0, 6.0]
    assert lowest_group_confidence(tokens, window=2) == pytest.approx(1.0)  # tokens 2-3
    assert lowest_group_confidence(tokens, window=3) == pytest.approx(7 / 3)  # tokens 1-3 (5+1+1)/3 vs (1+1+6)/3
    assert lowest_group_confidence(tokens, window=10) == pytest.approx(13 / 4)  # one window: all tokens
    assert mean_logprob(tokens) == pytest.approx(-1.5 / 4)


def test_agreement_is_one_minus_the_largest_agreeing_share_and_first_seen_wins_ties() -> None:
    assert agreement(["18", "18", "20", "18"]) == (0.25, "18")
    assert agreement(["1,000", "1000", "7"]) == (0.333, "1,000")  # compared after normalisation
    assert agreement(["5", "6"]) == (0.5, "5")
    assert agreement([None, "3", None]) == (0.667, "3")  # no answer agrees with nobody


# --- escalation ------------------------------------------------------------------------------

@pytest.mark.parametrize(("reply", "escalated"), [
    ("one two three four \\boxed{1}", False),   # 5 of 20 tokens: 0.25 <= tau 0.3
    ("w " * 6 + "\\boxed{1}", True),            # 7 of 20 tokens: 0.35 > tau 0.3
    ("no answer here", True),                   # no boxed answer: 1.0
])
def test_attempt_escalates_exactly_when_difficulty_is_above_tau_and_books_the_attempt(reply: str,
                                                                                     escalated: bool) -> None:
    systems = lms(s1=lambda m: reply)
    prediction, ledger = run(Scale(ScaleConfig(threshold=0.3, difficulty_source="attempt", max_steps=3), systems))
    steps = prediction.trace["steps"]
    assert [s["escalated"] for s in steps] == [escalated] * 3
    assert [s["mode"] for s in steps] == ["system2" if escalated else "system1"] * 3
    stages = ledger.by_stage()
    assert stages["system1"]["calls"] == 3  # one attempt per step, paid whether or not it escalated
    assert stages["system1"]["completion_tokens"] == 3 * len(reply.split())
    assert stages.get("system2", {}).get("calls", 0) == (3 if escalated else 0)
    assert "difficulty" not in stages  # the attempt is the only judge
    assert steps[0]["difficulty"]["source"] == "attempt:length"
    assert steps[0]["usage"]["calls"] == (2 if escalated else 1)
    if not escalated:
        assert prediction.solution == reply.strip()  # the attempt is the step's solution


def test_attempt_scores_a_step_that_hit_the_cap_as_one() -> None:
    verdict = build_source(ScaleConfig(difficulty_source="attempt")).assess(
        Scale(ScaleConfig(difficulty_source="attempt"), lms(s1=lambda m: "w " * CAP + "\\boxed{1}")), view())
    assert verdict.difficulty.score == 1.0 and verdict.difficulty.signals["attempt_capped"] == 1.0


def test_agreement_keeps_the_majority_and_draws_distinct_samples() -> None:
    answers = iter(["\\boxed{5}", "\\boxed{7}", "\\boxed{7}"])
    systems = lms(s1=lambda m: next(answers))
    config = ScaleConfig(difficulty_source="attempt", attempt_confidence="agreement", attempt_samples=3,
                         threshold=0.5)
    verdict = build_source(config).assess(Scale(config, systems), view())
    assert verdict.difficulty.score == pytest.approx(0.333)
    assert verdict.attempt.answer == "7"  # not escalated (0.333 <= 0.5): the majority's solution is kept
    seeds = [c.seed for c in systems.system1.engine.configs]
    temperatures = [c.temperature for c in systems.system1.engine.configs]
    assert seeds == [None, 1, 2] or seeds == [0, 1, 2]
    assert temperatures[1:] == [0.7, 0.7]


def test_logprob_sources_raise_one_clear_error_when_the_server_sends_none() -> None:
    config = ScaleConfig(difficulty_source="rating_logprobs")
    with pytest.raises(NoLogprobsError, match="rating_logprobs.*choose a source that needs none: `rating`"):
        build_source(config).assess(Scale(config, lms(stages=lambda m: "5")), view())
    config = ScaleConfig(difficulty_source="attempt", attempt_confidence="deepconf")
    with pytest.raises(NoLogprobsError, match="attempt:deepconf"):
        build_source(config).assess(Scale(config, lms()), view())


def test_rating_logprobs_reads_the_digit_distribution_and_records_entropy() -> None:
    reply = Completion(text="2", completion_tokens=1, logprobs=[
        {"token": "2", "logprob": math.log(0.6), "top": [["2", math.log(0.6)], ["8", math.log(0.2)],
                                                         ["Sure", math.log(0.2)]]}])
    config = ScaleConfig(difficulty_source="rating_logprobs")
    systems = lms(stages=lambda m: reply)
    verdict = build_source(config).assess(Scale(config, systems), view())
    assert verdict.difficulty.score == pytest.approx((0.75 * 2 + 0.25 * 8) / 9, abs=1e-6)
    expected_entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert verdict.difficulty.signals["rating_entropy"] == pytest.approx(expected_entropy, abs=1e-6)
    request = systems.stages.engine.configs[0]
    assert request.max_tokens == 1 and request.logprobs == 10
    assert "one digit from 0 to 9" in systems.stages.engine.requests[0][0]["content"]
    forced = Scale(config, systems).assess(view(2, is_last=True))  # the reference's last-step rule, Scale's
    assert forced.difficulty == Difficulty(score=0.9, forced=True, source="rating_logprobs")
    assert len(systems.stages.engine.requests) == 1  # not asked


# --- the last-step rule: Scale's, once, after any source ---------------------------------------

def test_the_last_step_rule_is_applied_by_scale_for_the_sources_it_applies_to() -> None:
    asked: list[StepView] = []

    class Told(DifficultySource):
        name = "told"
        last_step_rule = True

        def assess(self, host, step):
            asked.append(step)
            return Assessment(Difficulty(score=0.1, source=self.name))

    config = ScaleConfig(threshold=0.5)  # last_step_score 0.9, the reference's
    scale = Scale(config, lms())
    scale._source.value = Told()
    assert scale.assess(view(2, is_last=True)).difficulty == Difficulty(score=0.9, forced=True, source="told")
    assert scale.assess(view(1)).difficulty.score == 0.1 and [s.index for s in asked] == [1]
    Told.last_step_rule = False  # an exempt source is asked for the last step too
    assert scale.assess(view(2, is_last=True)).difficulty.score == 0.1 and [s.index for s in asked] == [1, 2]
    # the sources leave the rule to Scale: asked directly, a rating source asks the model for the last step
    systems = lms(stages=lambda m: "0.3")
    assert build_source(config).assess(Scale(config, systems), view(2, is_last=True)).difficulty.score == 0.3
    assert [build_source(ScaleConfig(difficulty_source=name)).last_step_rule
            for name in ("rating", "rating_logprobs", "attempt")] == [True, True, False]


def test_attempt_source_is_exempt_from_the_last_step_rule_in_a_run() -> None:
    config = ScaleConfig(difficulty_source="attempt", threshold=0.5)
    prediction, _ = run(Scale(config, lms()))
    assert config.last_step_score == 0.9 and not any(s["difficulty"]["forced"] for s in prediction.trace["steps"])


def test_needs_logprobs_names_the_sources_that_read_them(tmp_path) -> None:
    assert not needs_logprobs(ProgramConfig())
    assert needs_logprobs(ProgramConfig(scale=ScaleConfig(difficulty_source="attempt", attempt_confidence="deepconf")))
    assert not needs_logprobs(ProgramConfig(method="cot", scale=ScaleConfig(difficulty_source="rating_logprobs")))
    path = LearnedModel(("rating_expected",), (0.5,), (0.1,), (1.0,), 0.0).save(tmp_path / "learned.json")
    assert needs_logprobs(ProgramConfig(scale=ScaleConfig(difficulty_source="learned", learned_path=str(path))))


# --- learned ---------------------------------------------------------------------------------

def test_learned_source_round_trips_through_json_with_identical_scores(tmp_path) -> None:
    model = LearnedModel(("problem_words", "attempt_ratio", "attempt_no_answer"), (20.0, 0.5, 0.1), (5.0, 0.2, 0.3),
                         (0.4, 1.5, 2.0), -0.3, fitted_on={"dev": "gsm8k_train:100"})
    path = model.save(tmp_path / "learned.json")
    again = LearnedModel.load(path)
    assert again == model
    assert json.loads(path.read_text())["kind"] == "logistic"  # plain JSON, no pickle
    config = ScaleConfig(difficulty_source="learned", learned_path=str(path), threshold=0.5)
    first = build_source(config).assess(Scale(config, lms()), view())
    second = build_source(config).assess(Scale(config, lms()), view())
    assert first.difficulty.raw == second.difficulty.raw == model.score(first.difficulty.signals)
    assert first.difficulty.score == round(model.score(first.difficulty.signals), 6)
    assert first.attempt is not None  # it used the attempt's features, so it returns the attempt


def test_learned_model_errors_name_the_fix(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown feature.*'shoe_size'"):
        LearnedModel(("shoe_size",), (1.0,), (1.0,), (1.0,), 0.0)
    with pytest.raises(ConfigError, match="scale calibrate --fit learned"):
        LearnedModel.load(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="needs `learned_path`"):
        ScaleConfig(difficulty_source="learned")


# --- cascade ---------------------------------------------------------------------------------

def test_cascade_routes_the_whole_problem_as_one_step_without_a_decomposition() -> None:
    systems = lms(s1=lambda m: "w " * CAP + "\\boxed{1}")  # cut off: escalated
    cascade = build_program(ProgramConfig(method="cascade", scale=ScaleConfig(difficulty_source="attempt",
                                                                                threshold=0.5)), systems)
    assert isinstance(cascade, Cascade)
    prediction, ledger = run(cascade)
    assert prediction.trace["method"] == "cascade"
    assert [s["step"] for s in prediction.trace["steps"]] == [WHOLE_PROBLEM]
    assert prediction.trace["steps"][0]["escalated"] and prediction.answer == "2"
    assert "decompose" not in ledger.by_stage() and systems.stages.engine.requests == []
    assert field(systems.system1.engine.requests[0], "Current step") == WHOLE_PROBLEM


def test_cascade_with_the_rating_source_asks_once_and_never_forces_the_last_step() -> None:
    systems = lms(stages=lambda m: "0.2" if is_stage(m, AssessDifficulty) else "?")
    prediction, _ = run(Cascade(ScaleConfig(threshold=0.5), systems))
    step = prediction.trace["steps"][0]
    assert step["difficulty"]["score"] == 0.2 and not step["difficulty"]["forced"] and step["mode"] == "system1"
    assert is_stage(systems.system1.engine.requests[0], SolveStep)


def test_a_server_that_refuses_logprobs_is_not_retried_and_names_the_source() -> None:
    import litellm

    from program.clients import failures
    from program.errors import LogprobsRefusedError

    refusal = litellm.exceptions.InternalServerError(
        "logprobs is not supported for models created with logits_all=False", llm_provider="openai", model="m")
    assert not failures.is_transient(refusal)  # a setting: retrying cannot help

    def refuse(messages: Messages) -> str:
        raise LogprobsRefusedError("The LLM server http://127.0.0.1:9/v1 does not return token logprobs.")

    config = ScaleConfig(difficulty_source="rating_logprobs")
    with pytest.raises(NoLogprobsError, match="'rating_logprobs' needs token logprobs.*a server that returns them"):
        build_source(config).assess(Scale(config, lms(stages=refuse)), view())


# --- over HTTP, through litellm (vLLM's logprobs fields; llama.cpp's refusal) -------------------

@pytest.mark.fake_server
def test_rating_logprobs_reads_a_real_http_reply_and_a_refusal_is_asked_once() -> None:
    from dataclasses import replace

    from program.clients.lm import build_systems
    from program.testing.fakeserver import FakeServer

    for mode in ("send", "refuse"):
        with FakeServer(default="7", logprobs=mode) as server:
            lm = preset("local", api_base=server.api_base)
            lm = replace(lm, endpoint=replace(lm.endpoint, retries=2))
            config = ScaleConfig(difficulty_source="rating_logprobs")
            host = Scale(config, build_systems(lm))
            if mode == "send":
                verdict = build_source(config).assess(host, view())
                expected = digit_distribution([["7", -0.1]] + [[d, -2.0 - i] for i, d in enumerate("315902468", 1)])
                assert verdict.difficulty.score == pytest.approx(expected_digit(expected) / 9, abs=1e-6)
                assert server.requests[0]["logprobs"] is True and server.requests[0]["top_logprobs"] == 10
            else:
                with pytest.raises(NoLogprobsError, match="rating_logprobs"):
                    build_source(config).assess(host, view())
                assert len(server.requests) == 1  # not retried: a setting, not a hiccup
