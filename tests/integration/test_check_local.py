"""``scale check`` against the real embedded engine (llama.cpp's llama-server, issue 23's done-when).

A server of this checkout's own on a free port (never the shared 8765), started as
tests/integration/test_engine_local.py starts one. The embedded model (Qwen2.5-Coder-1.5B-Instruct) has
no thinking mode: stages and System 1 get ``enable_thinking: false`` and think not; System 2 is
budget-forced over /v1/completions with the ChatML template. Fields as llama-server sends them
(tools/server/server-context.cpp, llama.cpp vendored in llama-cpp-python 0.3.36).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from optimize.cli import main
from optimize.errors import EXIT_OK
from prerequisites import require_local_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    require_local_model()  # a skip, or a failure under CI=true
    from program.serving.local import LocalServer, model_path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = LocalServer(model_path(), port=port, slots=1)
    server.start()
    try:
        server.wait_ready(300)
        yield server
    finally:
        server.stop()


def test_scale_check_reports_each_check_of_the_embedded_engine(engine: Any,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", "--api-base", engine.url])
    out = capsys.readouterr().out
    lines = {line[9:25].strip(): line for line in out.splitlines()}
    assert status == EXIT_OK, out
    assert lines["server"].startswith("ok") and 'llama.cpp b' in lines["server"]
    assert 'detected from GET /v1/models owned_by "llamacpp"' in lines["server"]
    for role in ("stages", "system1"):
        assert lines[f"thinking {role}"].startswith("ok"), out
        assert "enable_thinking: false sent, no reasoning came back" in lines[f"thinking {role}"]
    assert lines["thinking system2"].startswith("skip")  # budget-forced
    assert lines["reasoning"].startswith("skip")
    assert lines["cached tokens"].startswith("ok") and "(timings.cache_n)" in lines["cached tokens"]
    reused = int(lines["cached tokens"].split("reported: ")[1].split()[0])
    assert reused > 0  # the second identical prompt came from the slot's cache
    assert lines["context"].startswith("ok") and "4096 tokens (GET /props" in lines["context"]
    assert lines["completions"].startswith("ok") and "budget forcing" in lines["completions"]
    assert "chatml template" in lines["completions"]
