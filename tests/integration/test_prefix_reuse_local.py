"""The real embedded server (llama-server) reuses a shared prompt prefix, and says so (timings) through the transport.

llama-server gives a new request the idle slot whose cached prompt shares the most with it (server-context.cpp,
``get_available_slot``: prompt similarity), so the second problem lands where the first left its prefix.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from prerequisites import require_local_model
from program import ledger
from program.clients import transport
from program.config import LOCAL_MODEL_ALIAS, Endpoint

pytestmark = pytest.mark.integration

# A long fixed part, as a stage's instruction + reply format is: the same for every problem.
FIXED = ("Rate how hard the current sub-problem of a math problem is, as a number between 0 and 1. "
         "0 to 0.5: an elementary or middle school student who knows the topic could do it quickly. "
         "0.5 to 1: even a strong high school or college student would need extensive thought or help. "
         "Do not solve it. ") * 3 + "Reply with the difficulty, between 0 and 1 (one number) and nothing else."


@pytest.fixture(scope="module")
def own_server() -> Iterator[str]:
    """A server of THIS checkout (the shared port may serve another version), on a free port."""
    require_local_model()  # a skip, or a failure under CI=true (never a silent importorskip)
    from program.serving.local import LocalServer, model_path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = LocalServer(model_path(), port=port)
    server.start()
    try:
        server.wait_ready(300)
        yield server.url
    finally:
        server.stop()


def test_second_call_sharing_a_long_prefix_reuses_it_and_evaluates_faster(own_server: str) -> None:
    endpoint = Endpoint(f"openai/{LOCAL_MODEL_ALIAS}", api_base=own_server, timeout=600.0)
    book = ledger.Ledger()
    transport.set_cache_enabled(False)
    try:
        with ledger.recording(book), ledger.stage("difficulty"):
            for problem in ("Janet's ducks lay 16 eggs per day.", "A robe takes 2 bolts of blue fiber."):
                transport.chat(endpoint, [{"role": "system", "content": FIXED},
                                          {"role": "user", "content": f"Problem:\n{problem}"}], max_tokens=2)
    finally:
        transport.set_cache_enabled(True)
    first, second = book.calls
    assert first.prompt_tokens > 150 and first.prompt_reused is not None
    assert second.prompt_reused >= 140  # the fixed system message (~150 tokens) was not evaluated again
    assert second.prompt_evaluated + second.prompt_reused == second.prompt_tokens
    assert second.prompt_evaluated < first.prompt_evaluated / 4
    assert first.prompt_seconds is not None and second.prompt_seconds is not None
    assert second.prompt_seconds < first.prompt_seconds
    assert first.generation_seconds is not None
