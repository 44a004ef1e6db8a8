"""s1 budget forcing against a scripted server: every rule pinned, with exact prompts and budgets."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

import dspy
import pytest

from program import ledger
from program.clients import transport
from program.clients.budget_forcing import ForcedEngine, ForcedResult, force_budget, forced_lm
from program.clients.templates import get_template
from program.config import ConfigError, Endpoint, ForcingConfig, LMConfig, ModeConfig
from program.presets import preset

ENDPOINT = Endpoint("openai/test-model", api_base="http://127.0.0.1:9/v1")
QUESTION = [{"role": "user", "content": "What is 2+3?"}]
# qwen3 needs no thinking instruction, which keeps the golden prompts short.
HEAD = "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n<think>\n"
END_OF_TURN = ["<|im_end|>", "<|endoftext|>"]
PROMPT_TOKENS = 10


def mode(budget: int, max_tokens: int = 50, **kwargs: Any) -> ModeConfig:
    sampling = {"temperature": 0.0, "top_p": None, "top_k": None, **kwargs}
    return ModeConfig(max_tokens=max_tokens, thinking="forced", thinking_budget=budget, **sampling)


def forcing(num_waits: int = 0, **kwargs: Any) -> ForcingConfig:
    return ForcingConfig(num_waits=num_waits, template=kwargs.pop("template", "qwen3"), **kwargs)


@dataclass
class FakeServer:
    """A scripted stand-in for ``program.clients.transport``: replies in order, records every request.

    A reply is a string (one token per word; the server cuts it at ``max_tokens`` and reports
    ``length``, as a real one would), an int (a model that wants to write that many tokens), or a
    ``transport.Completion`` returned as given. Like the real transport it records each call in
    the active ledger, booking the tokens as thinking when asked to.
    """

    replies: list[str | int | transport.Completion]
    requests: list[dict[str, Any]] = field(default_factory=list)

    def text(self, endpoint: Endpoint, prompt: str, *, max_tokens: int, thinking: bool = False,
             **kwargs: Any) -> transport.Completion:
        self.requests.append({"kind": "text", "prompt": prompt, "max_tokens": max_tokens, "thinking": thinking,
                              **kwargs})
        return self._reply(max_tokens, thinking)

    def chat(self, endpoint: Endpoint, messages: list[dict[str, str]], *, max_tokens: int,
             thinking_tokens_are_completion: bool = False, **kwargs: Any) -> transport.Completion:
        self.requests.append({"kind": "chat", "messages": [dict(m) for m in messages], "max_tokens": max_tokens,
                              "thinking": thinking_tokens_are_completion, **kwargs})
        return self._reply(max_tokens, thinking_tokens_are_completion)

    def _reply(self, max_tokens: int, thinking: bool) -> transport.Completion:
        assert max_tokens > 0, "a server call with no tokens to generate"
        assert self.replies, f"the script ran out; last request: {self.requests[-1]}"
        reply = self.replies.pop(0)
        if isinstance(reply, int):
            reply = " ".join(["tok"] * reply)
        if isinstance(reply, str):
            words = reply.split(" ") if reply else []
            cut = len(words) > max_tokens
            reply = transport.Completion(text=" ".join(words[:max_tokens]), finish_reason="length" if cut else "stop",
                                         completion_tokens=min(len(words), max_tokens))
        reply = replace(reply, prompt_tokens=PROMPT_TOKENS, thinking_tokens=reply.completion_tokens if thinking else 0)
        ledger.record(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                      thinking_tokens=reply.thinking_tokens, model="fake")
        return reply

    @property
    def prompts(self) -> list[str]:
        return [r["prompt"] for r in self.requests]

    @property
    def max_tokens(self) -> list[int]:
        return [r["max_tokens"] for r in self.requests]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    fake = FakeServer([])
    monkeypatch.setattr(transport, "text", fake.text)
    monkeypatch.setattr(transport, "chat", fake.chat)
    return fake


def run(server: FakeServer, replies: list, budget: int, num_waits: int = 0, **kwargs: Any) -> ForcedResult:
    server.replies = list(replies)
    return force_budget(ENDPOINT, mode(budget), forcing(num_waits, **kwargs), QUESTION)


# --- maximum: the cap --------------------------------------------------------------------------

def test_cap_reached_appends_marker_and_final_answer_then_answers(server: FakeServer) -> None:
    result = run(server, ["a b c d e f g h", "5"], budget=4)
    assert server.prompts == [HEAD, HEAD + "a b c d\n</think>\nFinal Answer:"]
    assert server.max_tokens == [4, 50]  # the answer gets mode.max_tokens
    assert [r["thinking"] for r in server.requests] == [True, False]
    assert result == ForcedResult(thinking="a b c d", answer="5", thinking_tokens=4, answer_tokens=1,
                                  prompt_tokens=2 * PROMPT_TOKENS, num_continuations=0, hit_cap=True,
                                  calls=result.calls, cue="Final Answer:", answer_max_tokens=50)
    assert result.graded == "Final Answer:5"  # what s1 grades: the cue and the bare answer after it
    assert [(c.phase, c.max_tokens, c.finish_reason) for c in result.calls] == [
        ("thinking", 4, "length"), ("answer", 50, "stop")]


def test_tokens_reaching_the_cap_count_as_the_cap_even_without_length(server: FakeServer) -> None:
    result = run(server, ["a b c d", "5"], budget=4, num_waits=2)  # stopped by itself at exactly 4
    assert result.hit_cap and result.num_continuations == 0
    assert server.prompts[-1] == HEAD + "a b c d\n</think>\nFinal Answer:"


def test_natural_end_appends_only_the_marker_and_a_newline(server: FakeServer) -> None:
    result = run(server, ["2 plus 3 is 5.\n", "The answer is 5."], budget=100)
    assert server.prompts == [HEAD, HEAD + "2 plus 3 is 5.\n</think>\n"]
    assert (result.thinking, result.answer, result.hit_cap, result.num_continuations) == (
        "2 plus 3 is 5.\n", "The answer is 5.", False, 0)


def test_empty_answer_after_a_natural_end_gets_exactly_one_forced_continuation(server: FakeServer) -> None:
    result = run(server, ["2 plus 3 is 5.", "", "5", "never asked"], budget=100)
    assert server.prompts == [HEAD, HEAD + "2 plus 3 is 5.</think>\n", HEAD + "2 plus 3 is 5.</think>\nFinal Answer:"]
    assert server.replies == ["never asked"]
    assert (result.forced_empty, result.cue, result.answer, result.graded) == (
        True, "Final Answer:", "5", "Final Answer:5")
    assert [c.phase for c in result.calls] == ["thinking", "answer", "answer"]
    assert result.answer_tokens == 1


def test_a_second_empty_answer_is_not_forced_again(server: FakeServer) -> None:
    result = run(server, ["2 plus 3 is 5.", "", "", "never asked"], budget=100)
    assert len(server.requests) == 3 and result.graded == "Final Answer:"


def test_a_non_empty_answer_or_the_option_off_means_no_forced_continuation(server: FakeServer) -> None:
    result = run(server, ["x.", "It is 5."], budget=100)
    assert (len(server.requests), result.forced_empty, result.graded) == (2, False, "It is 5.")
    server.requests.clear()
    result = run(server, ["x.", ""], budget=100, force_empty_answer=False)
    assert (len(server.requests), result.forced_empty, result.graded) == (2, False, "")


def test_answer_cap_option_replaces_the_modes_max_tokens(server: FakeServer) -> None:
    result = run(server, ["a b c", "5"], budget=2, answer_max_tokens=300)
    assert server.max_tokens == [2, 300] and result.answer_max_tokens == 300


def test_stop_strings_are_the_marker_and_end_of_turn(server: FakeServer) -> None:
    run(server, ["x", "5"], budget=10)
    assert [r["stop"] for r in server.requests] == [["</think>", *END_OF_TURN], END_OF_TURN]


# --- minimum: "Wait" ---------------------------------------------------------------------------

def test_early_stops_get_exactly_n_waits_with_a_shrinking_budget(server: FakeServer) -> None:
    result = run(server, ["So 5.", "let me check. Yes.", "Sure.", "5"], budget=20, num_waits=2)
    assert server.prompts == [
        HEAD,
        HEAD + "So 5.\nWait",
        HEAD + "So 5.\nWaitlet me check. Yes.\nWait",
        HEAD + "So 5.\nWaitlet me check. Yes.\nWaitSure.</think>\n",
    ]
    assert server.max_tokens == [20, 20 - 2, 20 - 2 - 4, 50]
    assert result.num_continuations == 2 and not result.hit_cap
    assert result.thinking_tokens == 2 + 4 + 1
    assert result.thinking == "So 5.\nWaitlet me check. Yes.\nWaitSure."


@pytest.mark.parametrize("num_waits", [0, 1, 3, 6])
def test_never_more_waits_than_asked(server: FakeServer, num_waits: int) -> None:
    result = run(server, ["done."] * (num_waits + 1) + ["5"], budget=1000, num_waits=num_waits)
    thinking_calls = [r for r in server.requests if r["thinking"]]
    assert len(thinking_calls) == num_waits + 1 == result.num_continuations + 1
    assert server.prompts[-1].count("Wait") == num_waits


def test_min_tokens_goes_with_every_segment_after_a_wait_only(server: FakeServer) -> None:
    run(server, ["So 5.", "yes.", "sure.", "5"], budget=20, num_waits=2)
    assert [r.get("extra_body") for r in server.requests] == [None, {"min_tokens": 1}, {"min_tokens": 1}, None]
    server.requests.clear()
    run(server, ["So 5.", "yes.", "5"], budget=20, num_waits=1, min_tokens_after_wait=0)
    assert [r.get("extra_body") for r in server.requests] == [None, None, None]


def test_wait_after_whitespace_adds_no_newline(server: FakeServer) -> None:
    run(server, ["So 5.\n", ", yes", "5"], budget=20, num_waits=1, wait="Hmm")
    assert server.prompts[1] == HEAD + "So 5.\nHmm"


def test_cap_during_a_continuation_ends_thinking_with_final_answer(server: FakeServer) -> None:
    result = run(server, ["So 5.", "one two three four five six", "5"], budget=6, num_waits=3)
    assert server.max_tokens == [6, 4, 50]
    assert server.prompts[-1] == HEAD + "So 5.\nWaitone two three four\n</think>\nFinal Answer:"
    assert (result.num_continuations, result.hit_cap, result.thinking_tokens) == (1, True, 6)


def test_a_context_window_ends_thinking_early_keeping_room_for_the_answer(server: FakeServer,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from program.clients import context

    monkeypatch.setattr(context, "count_prompt_tokens", lambda endpoint, prompt: 100)
    server.replies = [300, "5"]
    window = replace(ENDPOINT, context_window=400)  # 400 - 100 prompt - 50 margin - 50 answer = 200 to think
    result = force_budget(window, mode(1000), forcing(), QUESTION)
    assert server.max_tokens == [200, 50]
    assert result.hit_cap and result.thinking_tokens == 200 and result.cue == "Final Answer:"


def test_zero_budget_left_makes_no_thinking_call(server: FakeServer) -> None:
    # A budget of 0 (a sweep's "no thinking" point): straight to the forced answer.
    server.replies = ["5"]
    result = force_budget(ENDPOINT, ModeConfig(max_tokens=50, thinking_budget=0), forcing(2), QUESTION)
    assert server.prompts == [HEAD + "</think>\nFinal Answer:"]
    assert (result.thinking_tokens, result.num_continuations, result.hit_cap) == (0, 0, True)


def test_text_past_the_marker_is_dropped_and_counts_as_a_natural_end(server: FakeServer) -> None:
    # A server that ignores stop strings: the thinking ends at the marker it wrote.
    run(server, [transport.Completion(text="So 5.</think>The answer", completion_tokens=4,
                                      finish_reason="length"), "5"], budget=4 + 10)
    assert server.prompts[-1] == HEAD + "So 5.</think>\n"


# --- control -----------------------------------------------------------------------------------

def test_thinking_tokens_never_exceed_the_budget_property(server: FakeServer) -> None:
    rng = random.Random(0)
    for _ in range(500):
        budget, num_waits = rng.randint(1, 300), rng.randint(0, 6)
        wants = [rng.choice([0, rng.randint(1, 40), rng.randint(1, 400)]) for _ in range(num_waits + 1)]
        server.requests.clear()
        result = run(server, [*wants, 3], budget=budget, num_waits=num_waits)
        thinking = [r for r in server.requests if r["thinking"]]
        # strict=False: the wants after the budget is spent are never requested.
        generated = [min(w, r["max_tokens"]) for w, r in zip(wants, thinking, strict=False)]
        assert result.thinking_tokens == sum(generated) <= budget
        # Every thinking call asks for exactly what is left, and only when something is left.
        assert [r["max_tokens"] for r in thinking] == [budget - sum(generated[:i]) for i in range(len(thinking))]
        assert result.num_continuations <= num_waits and len(thinking) == result.num_continuations + 1
        assert result.hit_cap == (sum(generated) >= budget
                                  or any(w > r["max_tokens"] for w, r in zip(wants, thinking, strict=False)))


def test_sampling_and_seed_reach_every_call(server: FakeServer) -> None:
    server.replies = ["x.", "5"]
    force_budget(ENDPOINT, mode(10, temperature=0.6, top_p=0.9, top_k=20), forcing(), QUESTION, seed=7)
    for request in server.requests:
        assert (request["temperature"], request["top_p"], request["top_k"], request["seed"]) == (0.6, 0.9, 20, 7)


def test_chatml_prompt_tells_the_model_to_think_in_the_tags(server: FakeServer) -> None:
    run(server, ["x.", "5"], budget=10, template="chatml")
    instruction = get_template("chatml").instruction
    assert server.prompts[0] == (f"<|im_start|>system\n{instruction}<|im_end|>\n"
                                 "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n<think>\n")


# --- the ledger --------------------------------------------------------------------------------

def test_ledger_holds_each_call_once_with_thinking_booked_as_thinking(server: FakeServer) -> None:
    book = ledger.Ledger()
    with ledger.recording(book), ledger.stage("bf"):
        result = run(server, ["So 5.", "one two three", "The answer is 5"], budget=5, num_waits=1)
    assert [(c.stage, c.thinking_tokens, c.completion_tokens) for c in book.calls] == [
        ("bf", 2, 2), ("bf", 3, 3), ("bf", 0, 4)]
    totals = book.totals()
    assert (totals["thinking_tokens"], totals["answer_tokens"], totals["prompt_tokens"]) == (
        result.thinking_tokens, result.answer_tokens, result.prompt_tokens)


# --- prefill transport -------------------------------------------------------------------------

def test_prefill_continues_the_assistant_message(server: FakeServer) -> None:
    result = run(server, ["So 5.", "a b c", "5"], budget=4, num_waits=1, transport="prefill")
    continued = {"continue_final_message": True, "add_generation_prompt": False}
    assert [r["kind"] for r in server.requests] == ["chat"] * 3
    assert [r["messages"] for r in server.requests] == [
        [*QUESTION, {"role": "assistant", "content": "<think>\n"}],
        [*QUESTION, {"role": "assistant", "content": "<think>\nSo 5.\nWait"}],
        [*QUESTION, {"role": "assistant", "content": "<think>\nSo 5.\nWaita b\n</think>\nFinal Answer:"}],
    ]
    assert [(r["extra_body"], r["thinking"], r["stop"], r["max_tokens"]) for r in server.requests] == [
        (continued, True, ["</think>"], 4), ({**continued, "min_tokens": 1}, True, ["</think>"], 2),
        (continued, False, [], 50)]
    assert (result.thinking_tokens, result.num_continuations, result.hit_cap) == (4, 1, True)


def test_prefill_takes_text_from_the_reasoning_field_too(server: FakeServer) -> None:
    result = run(server, [transport.Completion(text="", thinking="So 5.", completion_tokens=2), "5"],
                 budget=10, transport="prefill")
    assert result.thinking == "So 5."
    assert server.requests[-1]["messages"][-1]["content"] == "<think>\nSo 5.</think>\n"


# --- DSPy --------------------------------------------------------------------------------------

def local_config(**system2: Any) -> LMConfig:
    config = preset("local")
    return replace(config, system2=replace(config.system2, **system2), forcing=forcing(0))


def test_forced_engine_inside_dspy_predict(server: FakeServer) -> None:
    server.replies = ["2 plus 3 makes 5.", "[[ ## answer ## ]]\n5\n\n[[ ## completed ## ]]"]
    book = ledger.Ledger()
    with dspy.context(lm=forced_lm(local_config(), thinking_budget=32)), ledger.recording(book):
        prediction = dspy.Predict("question -> answer")(question="What is 2+3?")
    assert prediction.answer == "5"
    assert "What is 2+3?" in server.prompts[0] and server.prompts[0].endswith("<think>\n")
    assert server.max_tokens == [32, preset("local").system2.max_tokens]
    assert len(book.calls) == 2  # recorded by the transport only, never again by the engine


def test_forced_engine_returns_thinking_and_informational_usage(server: FakeServer) -> None:
    server.replies = ["hmm.", "5 and more"]
    lm = forced_lm(local_config(), thinking_budget=32)
    outputs = lm(messages=[{"role": "user", "content": "2+3?"}], max_tokens=7, temperature=0.5)
    assert server.max_tokens == [32, 7]  # per-call overrides reach the answer and the sampling
    assert server.requests[0]["temperature"] == 0.5
    output = outputs[0]
    assert output["text"] == "5 and more"
    assert output["reasoning_content"] == "hmm."


def test_forced_engine_returns_the_answer_with_the_forced_cue(server: FakeServer) -> None:
    server.replies = ["a b c d e", " 42"]
    outputs = forced_lm(local_config(), thinking_budget=2)(messages=[{"role": "user", "content": "2+3?"}])
    assert outputs[0]["text"] == "Final Answer: 42"


def test_forced_lm_applies_overrides_and_names_the_lm() -> None:
    lm = forced_lm(preset("local"), thinking_budget=128, num_waits=3)
    engine = lm.engine
    assert isinstance(engine, ForcedEngine) and lm.model == "scale/bf"
    assert (engine.mode.thinking_budget, engine.forcing.num_waits) == (128, 3)
    assert engine.endpoint == preset("local").endpoint
    with pytest.raises(ConfigError, match="thinking_budget"):
        forced_lm(preset("local"), thinking_budget=0)
    # A System 2 that thinks another way is switched to forced thinking.
    qwen3 = forced_lm(preset("qwen3"), thinking_budget=64)
    assert qwen3.engine.mode.thinking == "forced"
