"""The context-window clamp: every request's max_tokens fits the window left by its prompt, recorded."""

from __future__ import annotations

import pytest

from program import ledger
from program.clients import context, servers, transport
from program.clients.context import ContextWindowError, clamp_max_tokens, fit
from program.config import ConfigError, Endpoint
from program.testing.fakeserver import FakeServer

MESSAGES = [{"role": "user", "content": "What is two plus two?"}]


def test_a_prompt_of_3000_in_a_window_of_4096_leaves_at_most_1096() -> None:
    assert clamp_max_tokens(32768, prompt_tokens=3000, window=4096) == 1096
    assert clamp_max_tokens(32768, prompt_tokens=3000, window=4096, margin=50) == 1046
    assert clamp_max_tokens(500, prompt_tokens=3000, window=4096) == 500  # fits: unchanged


def test_a_prompt_that_fills_the_window_says_how_to_fix_it() -> None:
    with pytest.raises(ContextWindowError, match="leaves no room.*max-model-len"):
        clamp_max_tokens(10, prompt_tokens=4096, window=4096)


def test_fit_counts_only_when_the_prompt_could_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[str] = []
    monkeypatch.setattr(context, "count_prompt_tokens", lambda endpoint, prompt: counted.append(prompt) or 3000)
    window = Endpoint("openai/m", api_base="http://127.0.0.1:9/v1", context_window=4096)
    assert fit(window, 64, prompt="short") == (64, None) and counted == []
    sent, clamp = fit(window, 32768, prompt="x" * 5000, margin=0)
    assert sent == 1096 and clamp == {"requested": 32768, "sent": 1096, "window": 4096, "prompt_tokens": 3000}
    assert len(counted) == 1
    assert fit(Endpoint("openai/m"), 32768, prompt="x" * 50000) == (32768, None)  # no window known: no clamp


@pytest.mark.fake_server
def test_every_chat_and_text_request_is_clamped_and_the_ledger_records_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "count_prompt_tokens", lambda endpoint, prompt: 3000)
    transport.set_cache_enabled(False)
    book = ledger.Ledger()
    try:
        with FakeServer(["fine", "fine"]) as server, ledger.recording(book):
            end = Endpoint(model="openai/fake", api_base=server.api_base, timeout=5.0, context_window=4096)
            long = [{"role": "user", "content": "word " * 3000}]
            transport.chat(end, long, max_tokens=32768)
            transport.text(end, "word " * 3000, max_tokens=32768)
            sent = [r["max_tokens"] for r in server.requests]
    finally:
        transport.set_cache_enabled(True)
    assert all(s <= 4096 - 3000 for s in sent)
    assert [c.clamp["requested"] for c in book.calls] == [32768, 32768]
    assert [c.clamp["sent"] for c in book.calls] == sent


def test_the_window_comes_from_the_servers_model_list(monkeypatch: pytest.MonkeyPatch) -> None:
    listing = {"data": [{"id": "Qwen/Qwen3-32B", "max_model_len": 40960}]}
    asked: list[str] = []
    monkeypatch.setattr(servers, "get_json", lambda url, timeout=10.0: asked.append(url) or listing)
    end = Endpoint("openai/Qwen/Qwen3-32B", api_base="http://127.0.0.1:8000/v1")
    assert context.context_window(end) == 40960
    assert context.context_window(end) == 40960 and asked == ["http://127.0.0.1:8000/v1/models"]  # asked once
    configured = Endpoint("openai/Qwen/Qwen3-32B", api_base="http://127.0.0.1:8001/v1", context_window=8192)
    assert context.context_window(configured) == 8192 and len(asked) == 1


def test_llama_server_gives_one_slots_window_in_its_props(monkeypatch: pytest.MonkeyPatch) -> None:
    """llama-server's /v1/models has no top-level window; /props has the slot's (server-context.cpp)."""
    replies = {"http://127.0.0.1:8765/v1/models": {"data": [{"id": "q", "meta": {"n_ctx_train": 32768}}]},
               "http://127.0.0.1:8765/props": {"total_slots": 4, "default_generation_settings": {"n_ctx": 4096}}}
    monkeypatch.setattr(servers, "get_json", lambda url, timeout=10.0: replies[url])
    assert context.context_window(Endpoint("openai/q", api_base="http://127.0.0.1:8765/v1")) == 4096


def test_llama_server_counts_tokens_with_its_own_request_form(monkeypatch: pytest.MonkeyPatch) -> None:
    def tokenize(url: str, body: dict[str, str], timeout: float) -> dict[str, list[int]]:
        # llama-server's post_tokenize: no "content" key -> 200 with no tokens, not an error
        return {"tokens": [1, 2, 3] if "content" in body else []}

    monkeypatch.setattr(servers, "post_json", tokenize)
    assert context.count_prompt_tokens(Endpoint("openai/q", api_base="http://127.0.0.1:8765/v1"), "a b c") == 3


@pytest.mark.fake_server
def test_a_server_that_does_not_say_means_no_clamp() -> None:
    with FakeServer(["ok"]) as server:
        assert context.context_window(Endpoint(model="openai/fake", api_base=server.api_base)) is None


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="context_window"):
        Endpoint("openai/m", context_window=0)
