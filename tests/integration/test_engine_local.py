"""llama.cpp's llama-server as the embedded engine: parallel slots, native logprobs, the slot's
window, and the real Qwen3 chat template's thinking switch.

Each module-scoped server is THIS checkout's (never the shared port 8765), on a free port.
Fields as llama-server sends them (tools/server/server-context.cpp of the llama.cpp vendored in
llama-cpp-python 0.3.36): ``/slots`` lists ``is_processing`` per slot, ``/props`` has
``total_slots`` and ``default_generation_settings.n_ctx``, ``/apply-template`` returns the prompt
the chat template renders.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from prerequisites import require_local_model
from program.clients import context, transport
from program.config import LOCAL_MODEL_ALIAS, Endpoint

pytestmark = pytest.mark.integration

QUESTION = [{"role": "user", "content": "Count from one to forty in words, separated by commas."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, body: dict[str, Any] | None = None, timeout: float = 600.0) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with opener.open(request, timeout=timeout) as response:
        return json.load(response)


def start(**options: Any) -> Any:
    require_local_model()  # a skip, or a failure under CI=true
    from program.serving.local import LocalServer, model_path

    server = LocalServer(model_path(), port=free_port(), **options)
    server.start()
    server.wait_ready(300)
    return server


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    server = start(slots=2)
    try:
        yield server
    finally:
        server.stop()


def test_props_report_the_slots_and_each_slots_window(engine: Any) -> None:
    props = call(f"http://127.0.0.1:{engine.port}/props")
    assert props["total_slots"] == 2
    assert props["default_generation_settings"]["n_ctx"] == 4096  # --ctx-size 8192 split over 2 slots
    context.forget_windows()
    assert context.context_window(Endpoint(f"openai/{LOCAL_MODEL_ALIAS}", api_base=engine.url)) == 4096


def test_two_requests_are_decoded_at_once(engine: Any) -> None:
    root = f"http://127.0.0.1:{engine.port}"
    replies: list[Any] = []
    threads = [threading.Thread(target=lambda: replies.append(call(f"{engine.url}/chat/completions", {
        "model": LOCAL_MODEL_ALIAS, "messages": QUESTION, "max_tokens": 96, "temperature": 0.0})))
        for _ in range(2)]
    for thread in threads:
        thread.start()
    busiest = 0
    while any(t.is_alive() for t in threads):
        busiest = max(busiest, sum(bool(slot["is_processing"]) for slot in call(f"{root}/slots", timeout=30)))
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    assert busiest == 2  # both slots were busy at the same moment
    assert len(replies) == 2 and all(r["timings"]["predicted_n"] > 0 for r in replies)


def test_logprobs_come_back_without_any_server_switch(engine: Any) -> None:
    endpoint = Endpoint(f"openai/{LOCAL_MODEL_ALIAS}", api_base=engine.url, timeout=600.0)
    transport.set_cache_enabled(False)
    try:
        completion = transport.chat(endpoint, [{"role": "user", "content": "What is 2 + 3? Reply with the number."}],
                                    max_tokens=4, logprobs=3)
    finally:
        transport.set_cache_enabled(True)
    tokens = completion.logprobs
    assert tokens, "no logprobs in the reply"
    assert all(t["logprob"] <= 0.0 and 1 <= len(t["top"]) <= 3 for t in tokens)


def test_the_qwen3_template_closes_an_empty_think_block_when_thinking_is_off() -> None:
    """issue 23's done-when: ``chat_template_kwargs: {enable_thinking: false}`` reaches the real template."""
    require_local_model()
    from program.serving.build import template_path

    server = start(slots=1, extra_args=["--chat-template-file", str(template_path("Qwen-Qwen3-0.6B.jinja"))])
    try:
        url = f"http://127.0.0.1:{server.port}/apply-template"
        off = call(url, {"messages": QUESTION, "chat_template_kwargs": {"enable_thinking": False}})["prompt"]
        default = call(url, {"messages": QUESTION})["prompt"]
    finally:
        server.stop()
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert default.endswith("<|im_start|>assistant\n") and "<think>" not in default
