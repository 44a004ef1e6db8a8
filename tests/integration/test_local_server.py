"""The real embedded server with the real model: the calls the program makes, end to end."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from program.config import LOCAL_MODEL_ALIAS, LMConfig
from program.serving.local import ensure_server, is_serving

pytestmark = pytest.mark.integration

CHATML = "<|im_start|>user\nWhat is 2 + 3? Reply with the number only.<|im_end|>\n<|im_start|>assistant\n"


def listening_sockets(port: int) -> list[str]:
    """Inodes of the TCP sockets listening on ``port`` (from /proc/net/tcp and tcp6; any owner, any launcher)."""
    inodes = []
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            if local_port == port and state == "0A":  # 0A: LISTEN
                inodes.append(inode)
    return inodes


def test_models_lists_the_alias(local_lm_config: LMConfig) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{local_lm_config.endpoint.api_base}/models", timeout=30) as response:
        ids = [m["id"] for m in json.load(response)["data"]]
    assert LOCAL_MODEL_ALIAS in ids


def test_chat_completion_through_litellm_reports_usage(local_lm_config: LMConfig) -> None:
    import litellm

    response = litellm.completion(
        model=f"openai/{LOCAL_MODEL_ALIAS}", api_base=local_lm_config.endpoint.api_base, api_key="sk-no-key",
        messages=[{"role": "user", "content": "What is 2 + 3? Reply with the number only."}],
        max_tokens=16, temperature=0.0)
    assert response.choices[0].message.content.strip()
    assert response.usage.prompt_tokens > 0
    assert 0 < response.usage.completion_tokens <= 16


def test_text_completion_with_chatml_prompt(local_lm_config: LMConfig) -> None:
    import litellm

    response = litellm.text_completion(
        model=f"text-completion-openai/{LOCAL_MODEL_ALIAS}", api_base=local_lm_config.endpoint.api_base,
        api_key="sk-no-key", prompt=CHATML, max_tokens=16, temperature=0.0, stop=["<|im_end|>"])
    assert "5" in response.choices[0].text
    assert response.usage.prompt_tokens > 0
    assert 0 < response.usage.completion_tokens <= 16
    assert response.choices[0].finish_reason in ("stop", "length")


def test_second_ensure_server_reuses_the_first(local_lm_config: LMConfig) -> None:
    port = int(local_lm_config.endpoint.api_base.rsplit(":", 1)[1].split("/")[0])
    before = listening_sockets(port)
    assert len(before) == 1  # the session's server (ours, or another user's `scale serve`)
    with ensure_server(local_lm_config) as started:
        assert started is None  # nothing was launched
        assert listening_sockets(port) == before  # the same listening socket: the same server process
    assert is_serving("127.0.0.1", port)  # the reuser left it running
    assert listening_sockets(port) == before
