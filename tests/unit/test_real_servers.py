"""What vLLM, SGLang and llama.cpp's server accept and return (issue 23), pinned over HTTP.

Every test talks to ``program.testing.fakeserver.FakeServer`` in a server mode (each behaviour from
the server's source, named in ``program.testing.servermodes``) and asserts on the bodies the server
received. The chat templates are the real ones, copied from the llama.cpp tree vendored in the
llama-cpp-python 0.3.36 sdist (tests/unit/templates/README.md).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from program import ledger
from program.clients import context, transport
from program.clients.budget_forcing import force_budget
from program.clients.engine import ChatEngine, lm_from_engine
from program.clients.lm import build_lm
from program.clients.templates import get_template
from program.config import ConfigError, Endpoint, ForcingConfig, ModeConfig
from program.presets import preset
from program.testing import servermodes
from program.testing.fakeserver import FakeServer

pytestmark = pytest.mark.fake_server

TEMPLATES = Path(__file__).parent / "templates"
QWEN3 = (TEMPLATES / "Qwen-Qwen3-0.6B.jinja").read_text(encoding="utf-8")
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"}]
ANSWER = "[[ ## answer ## ]]\n5\n\n[[ ## completed ## ]]"
# The reply of the issue: System 2 cut off inside its thinking, no </think>, a wrong guess in it.
CUT_OFF = "Maybe 2 + 3 is \\boxed{7}? Hmm, wait"


@pytest.fixture(autouse=True)
def _no_cache() -> Any:  # tests/conftest.py forgets what servers said before each test
    transport.set_cache_enabled(False)
    yield
    transport.set_cache_enabled(True)


def switches(server: FakeServer) -> list[Any]:
    return [(body.get("chat_template_kwargs") or {}).get("enable_thinking") for body in server.requests
            if "messages" in body]


# --- 1. the thinking switch follows the server kind, not the model name -------------------------

def test_stages_and_system1_switch_thinking_off_on_vllm_whatever_the_model_is_named() -> None:
    with FakeServer(default="<think>hmm</think>" + ANSWER, server="vllm") as server:
        config = preset("qwen3", model="openai/served-32b", api_base=server.api_base)
        for role in ("stages", "system1", "system2"):
            build_lm(config, role)("What is 2 + 3?")
        assert switches(server) == [False, False, True]


def test_a_non_thinking_stage_reads_its_answer_on_vllm() -> None:
    with FakeServer(default=ANSWER, server="vllm") as server:
        out = build_lm(preset("qwen3", model="openai/served-32b", api_base=server.api_base), "stages")("2 + 3?")[0]
        assert (out["text"] if isinstance(out, dict) else out) == ANSWER


def test_a_reasoning_only_mode_sends_the_switch_on() -> None:
    with FakeServer(default="<think>hmm</think>" + ANSWER, server="vllm") as server:
        config = preset("qwen3", model="openai/qwq", api_base=server.api_base)
        config = replace(config, system2=replace(config.system2, thinking="always"))
        build_lm(config, "system2")("2 + 3?")
        assert switches(server) == [True]


def test_a_provider_gets_no_switch() -> None:
    with FakeServer(default=ANSWER) as server:  # not a self-hosted kind: owned_by names none we know
        endpoint = Endpoint("openai/served-32b", api_base=server.api_base, server="provider")
        lm_from_engine(ChatEngine(endpoint, ModeConfig()), "x")("2 + 3?")
        assert switches(server) == [None]


# --- 2. cut-off thinking is thinking -----------------------------------------------------------

def _system2(fake: FakeServer, **endpoint: Any) -> Any:
    config = preset("qwen3", model="openai/served-32b", api_base=fake.api_base, **endpoint)
    return build_lm(config, "system2")


def test_cut_off_thinking_is_answered_by_forcing_on_vllm() -> None:
    with FakeServer([CUT_OFF, " \\boxed{5}"], server="vllm", parser="qwen3-old") as server:
        out = _system2(server)("What is 2 + 3?", max_tokens=6)[0]
        assert "7" not in out["text"] and "boxed{5}" in out["text"]
        assert "7" in out["reasoning_content"]
        forced = server.requests[-1]
        assert "messages" not in forced  # the answer came through /v1/completions with our template
        assert forced["prompt"].endswith("Maybe 2 + 3 is \\boxed{7}?\n</think>\nFinal Answer:")


def test_cut_off_thinking_with_the_current_parser_is_answered_by_forcing() -> None:
    with FakeServer([CUT_OFF, " \\boxed{5}"], server="vllm", parser="qwen3") as server:
        out = _system2(server)("What is 2 + 3?", max_tokens=6)[0]
        assert "boxed{5}" in out["text"]
        assert len(server.requests) == 2 and "prompt" in server.requests[1]


def test_cut_off_thinking_elsewhere_is_recorded_with_no_answer() -> None:
    with FakeServer([CUT_OFF], server="vllm", parser="qwen3-old") as server:
        book = ledger.Ledger()
        with ledger.recording(book):
            out = _system2(server, server="other")("What is 2 + 3?", max_tokens=6)[0]
        assert out["text"] == "" and "7" in out["reasoning_content"]
        assert len(server.requests) == 1  # nothing forced: we do not know this server's template
        assert [c.note for c in book.calls] == ["cut off in thinking"]


# --- 3. prefill per server kind ----------------------------------------------------------------

def test_the_fake_vllm_renders_continue_final_message_through_qwen3s_template_as_transformers() -> None:
    def continued(server: FakeServer, partial: str) -> httpx.Response:
        body = {"model": "m", "max_tokens": 4, "continue_final_message": True, "add_generation_prompt": False,
                "messages": [*CHAT, {"role": "assistant", "content": partial}]}
        return httpx.post(server.api_base + "/chat/completions", json=body, timeout=10)

    with FakeServer(server="vllm", chat_template=QWEN3) as server:
        # Thinking: the template closes an empty think block before our open one.
        assert continued(server, "<think>\nLet me add").status_code == 200
        assert server.prompts[-1].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n<think>\nLet me add")
        # The forced answer: the template re-emits "</think>\n\n", so the message is not found: HTTP 400.
        reply = continued(server, "<think>\nLet me add.\n</think>\nFinal Answer:")
    assert reply.status_code == 400 and "final message does not appear" in reply.json()["message"]


def test_prefill_is_refused_on_vllm_with_one_line_naming_completions() -> None:
    with FakeServer(server="vllm", chat_template=QWEN3) as server:
        endpoint = Endpoint("openai/served-32b", api_base=server.api_base)
        with pytest.raises(ConfigError, match="transport: completions") as caught:
            force_budget(endpoint, ModeConfig(thinking="forced", thinking_budget=16),
                         ForcingConfig(transport="prefill", template="qwen3"), CHAT)
        assert "\n" not in str(caught.value) and server.requests == []


def test_prefill_works_on_sglang_as_sglang_does_it() -> None:
    with FakeServer(["Two and three make five.", "5"], server="sglang", chat_template=QWEN3) as server:
        endpoint = Endpoint("openai/served-32b", api_base=server.api_base)
        result = force_budget(endpoint, ModeConfig(thinking="forced", thinking_budget=16, max_tokens=8),
                              ForcingConfig(transport="prefill", template="qwen3"), CHAT)
    assert result.answer == "5"
    generation_prompt = servermodes.render(QWEN3, CHAT, add_generation_prompt=True)
    assert server.prompts[0] == generation_prompt + "<think>\n"  # SGLang appends the prefix to it


# --- 4. templates: QwQ is ChatML, no BOS of our own --------------------------------------------

def _rendered(name: str, **variables: Any) -> str:
    return servermodes.render((TEMPLATES / name).read_text(encoding="utf-8"), CHAT, add_generation_prompt=True,
                              **variables)


def test_the_qwen3_template_is_byte_identical_to_qwen3s_own() -> None:
    ours = get_template("qwen3")
    assert ours.render(CHAT) == _rendered("Qwen-Qwen3-0.6B.jinja", enable_thinking=True)


def test_the_reasoning_pair_forcing_prompt_is_byte_identical_to_qwqs_template() -> None:
    config = preset("reasoning-pair")
    template = get_template(config.forcing.template)
    assert template.render(CHAT) + template.think_open + "\n" == _rendered("Qwen-QwQ-32B.jinja", enable_thinking=True)
    assert config.system2.thinking == "always"


def test_the_r1_template_carries_no_bos_and_matches_r1s_own() -> None:
    template = get_template("deepseek-r1")
    rendered = _rendered("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", enable_thinking=True)
    assert template.render(CHAT) + "<think>\n" == rendered


def test_the_llama3_template_carries_no_bos() -> None:
    assert not get_template("llama3").render(CHAT).startswith("<|begin_of_text|>")


# --- 5. cached prompt tokens: not reported is not 0 --------------------------------------------

def _one_call(server: FakeServer) -> ledger.Ledger:
    book = ledger.Ledger()
    with ledger.recording(book):
        transport.chat(Endpoint("openai/m", api_base=server.api_base), CHAT, max_tokens=8)
    return book


def test_unreported_cached_tokens_are_not_zero() -> None:
    with FakeServer(["5"], server="vllm", cached=3) as server:  # no --enable-prompt-tokens-details
        book = _one_call(server)
    assert book.calls[0].prompt_reused is None
    assert book.totals()["reuse_reported_calls"] == 0


@pytest.mark.parametrize(("mode", "flagged"), [("vllm", True), ("sglang", True), ("llama.cpp", False)])
def test_reported_cached_tokens_are_read_from_each_server(mode: str, flagged: bool) -> None:
    with FakeServer(["5"], server=mode, cached=3, cache_report=flagged) as server:
        assert _one_call(server).calls[0].prompt_reused == 3


# --- 6. after "Wait": the </think> token id, looked up in the kind's own form -------------------

def _forced_with_a_wait(server: FakeServer) -> None:
    endpoint = Endpoint("openai/served-32b", api_base=server.api_base)
    force_budget(endpoint, ModeConfig(thinking="forced", thinking_budget=32, max_tokens=8),
                 ForcingConfig(num_waits=1, template="qwen3"), CHAT)


def test_after_wait_the_think_close_token_id_is_sent_on_vllm() -> None:
    with FakeServer(["Two and three.</think>", "</think> The answer is 5", "5"], server="vllm") as server:
        _forced_with_a_wait(server)
        _forced_with_a_wait(server)
    lookups = [b for b in server.requests if b.get("path") == "/tokenize"]
    assert len(lookups) == 1 and lookups[0]["prompt"] == "</think>"  # once per endpoint, in vLLM's form
    first, after_wait, answer = [b for b in server.requests if b.get("path") is None][:3]
    assert "stop_token_ids" not in first and "stop_token_ids" not in answer
    assert after_wait["stop_token_ids"] == [servermodes.THINK_IDS["</think>"]] and after_wait["min_tokens"] == 1


@pytest.mark.parametrize(("mode", "think_tokens"), [("vllm", 3), ("llama.cpp", 1)])
def test_a_think_close_of_several_tokens_or_no_such_field_keeps_todays_request(mode: str, think_tokens: int) -> None:
    # llama.cpp's server reads neither stop_token_ids nor min_tokens (tools/server/server-task.cpp,
    # params_from_json_cmpl): nothing is looked up for it.
    with FakeServer(["Two and three.</think>", "More.</think>", "5"], server=mode, think_tokens=think_tokens) as server:
        _forced_with_a_wait(server)
    assert all("stop_token_ids" not in b for b in server.requests)


def test_the_context_clamp_counts_the_prompt_in_llama_cpps_form() -> None:
    with FakeServer(["5"], server="llama.cpp") as server:
        endpoint = Endpoint("openai/m", api_base=server.api_base, context_window=400)
        context.fit(endpoint, 300, prompt="word " * 100)
    assert [b for b in server.requests if b.get("path") == "/tokenize"][0].get("content") == "word " * 100


# --- 7. the reasoning field: `reasoning` and `reasoning_content` both read ---------------------

def test_reasoning_is_read_when_reasoning_content_is_null_beside_it() -> None:
    with FakeServer(["<think>hmm</think>5"], server="vllm", legacy_field=True) as server:
        completion = transport.chat(Endpoint("openai/m", api_base=server.api_base), CHAT, max_tokens=8)
    assert (completion.text, completion.thinking) == ("5", "hmm")


# --- the fake server itself --------------------------------------------------------------------

def test_a_strict_fake_rejects_unknown_fields_and_unknown_paths_get_404() -> None:
    with FakeServer(server="vllm", strict=True) as server:
        body = {"model": "m", "messages": CHAT, "max_tokens": 4}
        assert httpx.post(server.api_base + "/chat/completions", json=body, timeout=10).status_code == 200
        bad = httpx.post(server.api_base + "/chat/completions", json={**body, "frobnicate": 1}, timeout=10)
        assert bad.status_code == 400 and "frobnicate" in bad.json()["error"]["message"]
        assert httpx.post(server.api_base + "/nope", json=body, timeout=10).status_code == 404


def test_the_fake_applies_stop_strings_only_after_min_tokens_as_vllm() -> None:
    body = {"stop": ["</think>"], "min_tokens": 1, "max_tokens": 10}
    assert servermodes.generate("</think> The answer", body).text == "</think> The answer"  # the leak
    assert servermodes.generate("</think> The answer", {**body, "stop_token_ids": [151668]}).text == " The answer"
    assert servermodes.generate("a b</think> c", {**body, "min_tokens": 0}) == servermodes.Generated("a b", 3, "stop")
