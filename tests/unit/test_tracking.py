"""MLflow tracking: children linked to parents by id from any thread, secrets never logged."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from optimize.tracking import REDACTED, Tracker, flatten, redact


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    return Tracker.create(f"sqlite:///{tmp_path / 'mlflow.db'}", "test")


def test_children_from_many_threads_all_link_to_the_parent(tracker: Tracker) -> None:
    parent = tracker.start("study", params={"trials": 8})
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: tracker.child(parent, f"trial-{i}", params={"threshold": i / 10},
                                              metrics={"accuracy": float(i)}), range(8)))
    tracker.end(parent)
    children = tracker.children(parent)
    assert sorted(r.data.metrics["accuracy"] for r in children) == [float(i) for i in range(8)]


def test_planted_key_never_reaches_mlflow(tracker: Tracker, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MY_PROVIDER_API_KEY", "planted-secret-value-9000")
    run = tracker.start("r", params={"lm": {"note": "planted-secret-value-9000", "api_key_env": "MY_PROVIDER_API_KEY"}})
    tracker.log_dict(run, {"k": "sk-abcdefghijklmnop"}, "d.json")
    leaky = tmp_path / "leak.txt"
    leaky.write_text("oops planted-secret-value-9000")
    with pytest.raises(RuntimeError, match="Refusing to log"):
        tracker.log_artifact(run, leaky)
    tracker.end(run)
    stored = tracker.client.get_run(run).data.params
    assert stored["lm.note"] == REDACTED and stored["lm.api_key_env"] == "MY_PROVIDER_API_KEY"
    assert b"planted-secret-value-9000" not in (tmp_path / "mlflow.db").read_bytes()


def test_redact_and_flatten() -> None:
    assert redact(["a sk-0123456789abcdef b"], secrets=[]) == [f"a {REDACTED} b"]
    assert redact({"x": "my-own-secret"}, secrets=["my-own-secret"]) == {"x": REDACTED}
    assert flatten({"a": {"b": 1, "c": {"d": 2}}}) == {"a.b": 1, "a.c.d": 2}
