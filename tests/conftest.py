"""Test settings shared by every test.

Unit tests never reach a network or a model: an autouse fixture makes any real LLM request
fail loudly (the pydantic-ai habit), so a test cannot hit a server by accident. Integration tests
(marked ``integration``) are exempt: they run against the real local llama.cpp server.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before anything imports litellm/datasets/dspy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="scale-tts-dspy-cache-"))
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tempfile.mkdtemp(prefix='scale-tts-mlflow-')}/mlflow.db")
_shared = Path(__file__).resolve().parents[2] / "shared" / "data"
if "SCALE_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["SCALE_DATA_DIR"] = str(_shared)

import pytest  # noqa: E402

SHARED_DATA = Path(os.environ["SCALE_DATA_DIR"]) if os.environ.get("SCALE_DATA_DIR") else None


@pytest.fixture(autouse=True)
def _no_real_llm_requests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Block real LLM calls and our response cache in unit tests; fast retry backoff.

    Tests marked ``fake_server`` talk to ``program.testing.fakeserver.FakeServer`` on 127.0.0.1 and keep litellm.
    """
    import litellm

    from program.clients import context, limits, servers, transport

    # A port a finished test's server used may be reused by another server: forget what servers said
    # (limiters, kinds and versions, token ids, context windows) before every test.
    limits.forget()
    context.forget_windows()
    monkeypatch.setitem(transport.RETRY_WAIT, "multiplier", 0.001)
    monkeypatch.setitem(transport.RETRY_WAIT, "max", 0.01)
    if request.node.get_closest_marker("integration") or request.node.get_closest_marker("fake_server"):
        return

    def blocked(*args: object, **kwargs: object) -> None:
        raise AssertionError("A unit test tried to call a real LLM. Use program.testing (function_lm, "
                             "scripted_systems) or mark the test @pytest.mark.integration.")

    def no_probe(url: str, timeout: float) -> None:
        raise OSError(f"unit tests ask no server ({url}); a server that says nothing is of unknown kind")

    monkeypatch.setattr(servers, "get_json", no_probe)  # the server-kind questions (program.clients.servers)
    monkeypatch.setattr(servers, "post_json", lambda url, body, timeout: no_probe(url, timeout))  # /tokenize
    monkeypatch.setattr(litellm, "completion", blocked)
    monkeypatch.setattr(litellm, "text_completion", blocked)
    monkeypatch.setattr(transport, "_CACHE_ENABLED", False)


@pytest.fixture(autouse=True)
def _restore_mlflow_globals() -> object:
    """MLflow keeps a process-wide tracking URI and active model; a test must not leak them to the next."""
    yield
    import sys

    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        mlflow.clear_active_model()


@pytest.fixture
def shared_data() -> Path:
    """The benchmark directory (../shared/data); skips when absent, fails under ``CI=true``."""
    from prerequisites import require

    where = f"SCALE_DATA_DIR={SHARED_DATA}" if SHARED_DATA is not None else "SCALE_DATA_DIR (unset) or ../shared/data"
    require(SHARED_DATA is not None and SHARED_DATA.is_dir(), f"the benchmark data directory {where}",
            "set SCALE_DATA_DIR to the directory holding the benchmark JSONL files")
    assert SHARED_DATA is not None
    return SHARED_DATA
