"""The transport: retries, errors, usage-keeping cache, ledger, secrets — against a real HTTP fake."""

from __future__ import annotations

import pytest

from program import ledger
from program.clients import transport
from program.config import ConfigError, Endpoint
from program.errors import ServerError
from program.testing.fakeserver import FakeServer, Fault

pytestmark = pytest.mark.fake_server

MESSAGES = [{"role": "user", "content": "What is two plus two?"}]


def endpoint(server: FakeServer, **kw: object) -> Endpoint:
    return Endpoint(model="openai/fake", api_base=server.api_base, timeout=kw.pop("timeout", 5.0), **kw)  # type: ignore[arg-type]


def test_chat_returns_text_and_server_usage() -> None:
    with FakeServer(["the answer is 4"]) as server:
        result = transport.chat(endpoint(server), MESSAGES, max_tokens=16)
    assert result.text == "the answer is 4"
    assert (result.prompt_tokens, result.completion_tokens) == (5, 4)
    assert server.requests[0]["max_tokens"] == 16


@pytest.mark.parametrize("fault", [Fault(status=500), Fault(status=503), Fault(status=429), Fault(drop=True)])
def test_transient_faults_are_retried_then_succeed(fault: Fault) -> None:
    with FakeServer([fault, fault, "fine"]) as server:
        result = transport.chat(endpoint(server, retries=3), MESSAGES, max_tokens=8)
    assert result.text == "fine"
    assert len(server.requests) == 3


def test_retries_are_bounded_then_server_error_names_the_server() -> None:
    with FakeServer(default=Fault(status=500)) as server:
        with pytest.raises(ServerError, match=r"127\.0\.0\.1.*failed after 3 attempts"):
            transport.chat(endpoint(server, retries=2), MESSAGES, max_tokens=8)
        assert len(server.requests) == 3


def test_timeout_is_retried_and_bounded() -> None:
    with FakeServer(default=Fault(stall=1.5)) as server:
        with pytest.raises(ServerError, match=r"127\.0\.0\.1.*failed after 2 attempts"):
            transport.chat(endpoint(server, retries=1, timeout=0.3), MESSAGES, max_tokens=8)
        assert len(server.requests) == 2  # the first try and one retry, then no more


def test_connection_refused_is_a_server_error() -> None:
    refused = Endpoint(model="openai/fake", api_base="http://127.0.0.1:9/v1", retries=1, timeout=2.0)
    with pytest.raises(ServerError, match="Check that it is running"):
        transport.chat(refused, MESSAGES, max_tokens=8)


def test_client_errors_are_not_retried() -> None:
    with FakeServer(default=Fault(status=400)) as server:
        with pytest.raises(Exception) as info:
            transport.chat(endpoint(server, retries=3), MESSAGES, max_tokens=8)
        assert not isinstance(info.value, ServerError)
        assert len(server.requests) == 1


def test_text_completion_counts_thinking_and_sends_prompt_unchanged() -> None:
    with FakeServer(["let me think about it"]) as server:
        result = transport.text(endpoint(server), "<|im_start|>user\nhi", max_tokens=50, stop=["</think>"],
                                thinking=True)
    assert server.requests[0]["prompt"] == "<|im_start|>user\nhi"
    assert result.thinking_tokens == result.completion_tokens == 5


def test_cache_hit_keeps_usage_and_is_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "_CACHE_ENABLED", True)
    cold, warm = ledger.Ledger(), ledger.Ledger()
    with FakeServer(["four"], default="different") as server:
        ep = endpoint(server)
        messages = [{"role": "user", "content": "cache test question, unique 7f3a"}]
        with ledger.recording(cold), ledger.stage("system1"):
            transport.chat(ep, messages, max_tokens=8)
        with ledger.recording(warm), ledger.stage("system1"):
            again = transport.chat(ep, messages, max_tokens=8)
        assert len(server.requests) == 1
    assert again.text == "four" and again.cached
    assert cold.totals()["total_tokens"] == warm.totals()["total_tokens"] > 0
    assert warm.totals(spent_only=True)["total_tokens"] == 0
    assert warm.by_stage()["system1"]["cached_calls"] == 1


def test_thinking_is_split_from_think_tags() -> None:
    with FakeServer(["<think>hmm let me see</think>The answer is 4"]) as server:
        result = transport.chat(endpoint(server), MESSAGES, max_tokens=32)
    assert result.text == "The answer is 4"
    assert result.thinking == "hmm let me see"
    assert result.thinking_estimated and 0 < result.thinking_tokens < result.completion_tokens


def test_api_key_is_read_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeServer(["ok"]) as server:
        with pytest.raises(ConfigError, match="MY_KEY_VAR is not set"):
            transport.chat(endpoint(server, api_key_env="MY_KEY_VAR"), MESSAGES, max_tokens=4)
        monkeypatch.setenv("MY_KEY_VAR", "sk-secret-123")
        assert transport.chat(endpoint(server, api_key_env="MY_KEY_VAR"), MESSAGES, max_tokens=4).text == "ok"


def test_split_thinking_unclosed_section_is_all_thinking() -> None:
    assert transport.split_thinking("<think>still going") == ("", "still going")
    assert transport.split_thinking("no thinking here") == ("no thinking here", "")


def test_importing_the_clients_sets_no_variable_and_litellm_is_first_imported_offline() -> None:
    """The cost-map switch is set by ``import_litellm`` just before litellm loads, not by an import of ours."""
    import os
    import subprocess
    import sys

    script = """
import os, sys
import program.clients.lm, program.clients.transport, program.clients.replicas, program.clients.context
assert "LITELLM_LOCAL_MODEL_COST_MAP" not in os.environ, "set at import time"
assert "litellm" not in sys.modules, "litellm imported by an import"
from program.clients.litellm_import import import_litellm
import_litellm()
from litellm.litellm_core_utils.get_model_cost_map import _cost_map_source_info
print(os.environ["LITELLM_LOCAL_MODEL_COST_MAP"], _cost_map_source_info.source, _cost_map_source_info.is_env_forced)
"""
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "local", "True"]
