"""The server kind: declared on the endpoint, or detected once per URL over HTTP from the fake server's
imitation of each real server's /v1/models (owned_by as vLLM, SGLang and llama.cpp's sources set it)."""

from __future__ import annotations

import pytest

from program.clients.servers import server_kind
from program.config import ConfigError, Endpoint
from program.testing.fakeserver import FakeServer

pytestmark = pytest.mark.fake_server


@pytest.mark.parametrize("mode", ["vllm", "sglang", "llama.cpp"])
def test_each_server_is_detected_from_its_model_list(mode: str) -> None:
    with FakeServer(server=mode, max_model_len=4096) as server:
        endpoint = Endpoint("openai/served-32b", api_base=server.api_base)
        assert server_kind(endpoint) == mode
        assert server_kind(endpoint) == mode  # cached: the server is asked once
        assert server.requests == []  # detection is a GET; no completion was asked


def test_an_unknown_owner_is_other_and_no_url_is_a_provider() -> None:
    with FakeServer() as server:
        assert server_kind(Endpoint("openai/m", api_base=server.api_base)) == "other"
    assert server_kind(Endpoint("openai/gpt-4o-mini")) == "provider"


def test_a_declared_kind_wins_and_an_unreachable_server_is_not_cached() -> None:
    assert server_kind(Endpoint("openai/m", api_base="http://127.0.0.1:9/v1", server="vllm")) == "vllm"
    assert server_kind(Endpoint("openai/m", api_base="http://127.0.0.1:9/v1", timeout=1.0)) == "other"


def test_a_misspelt_kind_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="llama.cpp"):
        Endpoint("openai/m", server="llamacpp")  # type: ignore[arg-type]


def test_the_fake_servers_unknown_paths_answer_404_in_a_server_mode() -> None:
    import httpx

    with FakeServer(server="vllm") as server:
        assert httpx.get(server.api_base.removesuffix("/v1") + "/nope").status_code == 404


def test_a_server_with_llama_cpps_props_is_llama_cpp_and_its_identity_has_build_and_slots() -> None:
    from program.clients.servers import identity

    with FakeServer(total_slots=3, build_info="b6000-abc") as bare, FakeServer(server="vllm", version="0.11.2") as vllm:
        slotted = Endpoint("openai/m", api_base=bare.api_base)  # its /v1/models names no owner; /props is llama.cpp's
        assert server_kind(slotted) == "llama.cpp"
        assert identity(slotted) == identity(slotted) and identity(slotted).slots == 3
        assert identity(slotted).cache_tag() == "llama.cpp b6000-abc"
        assert identity(Endpoint("openai/m", api_base=vllm.api_base)).cache_tag() == "vllm 0.11.2"
    assert server_kind(Endpoint("hosted_vllm/m", api_base="http://127.0.0.1:9/v1")) == "vllm"  # litellm's vLLM prefix
