"""An interrupted compile, run again, asks the server only what it had not answered before.

Every LLM reply is stored in the response cache as it arrives (``program.clients.transport``), and the
scoring step keeps one results line per problem, so a rerun replays the optimizer's finished
candidate evaluations from the cache. Here a compile against fake servers is killed right after
its k-th reply was stored; the rerun's new requests, added to the first run's, are exactly those
of an uninterrupted compile, and the tuned program is the same.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import dspy
import pytest

from optimize.compiling.compile import compile_experiment
from optimize.experiment import experiment_from_dict, experiment_to_dict
from program.testing.fakeserver import FakeServer
from test_saved_program import experiment, scripted

pytestmark = pytest.mark.fake_server


class Killed(BaseException):
    """A kill -9 stand-in: not an Exception, so nothing on the way up catches it."""


def served(server: FakeServer) -> Counter[str]:
    return Counter(json.dumps(body.get("messages"), sort_keys=True) for body in server.requests)


def fresh_cache(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """An empty response cache of the test's own (put back when the test ends)."""
    from dspy.clients.cache import Cache

    monkeypatch.setattr(dspy, "cache", Cache(enable_disk_cache=True, enable_memory_cache=False,
                                             disk_cache_dir=str(directory)))


def on_fake_servers(tmp_path: Path, stages: FakeServer, solvers: FakeServer) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = experiment_to_dict(experiment(tmp_path, optimizer="bootstrap"))
    endpoint = {"model": "openai/fake", "timeout": 5.0, "retries": 0}
    data["lm"] = {"endpoint": {**endpoint, "api_base": solvers.api_base},
                  "stages": {"endpoint": {**endpoint, "api_base": stages.api_base}, "max_tokens": 64},
                  "system1": {"max_tokens": 64}, "system2": {"max_tokens": 64, "thinking": "none"}}
    return experiment_from_dict(data, where="test")


def run(config: Any, out: Path) -> dict[str, Any]:
    result = compile_experiment(config, output_dir=out, track=False, progress=False)
    return json.loads((out / "program.json").read_text()) | {"_scores": result.scores}


def test_a_killed_compile_resumes_without_asking_a_finished_request_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logic = scripted()
    answer = {"stages": logic.stages.engine.responder, "solvers": logic.system1.engine.responder}
    servers = {name: FakeServer(default=lambda body, f=f: f(body["messages"])) for name, f in answer.items()}
    with servers["stages"] as stages, servers["solvers"] as solvers:
        # The uninterrupted compile, in a cache of its own.
        fresh_cache(monkeypatch, tmp_path / "cache-a")
        whole = run(on_fake_servers(tmp_path / "a", stages, solvers), tmp_path / "a" / "out")
        asked_whole = served(stages) + served(solvers)
        total = sum(asked_whole.values())
        assert total > 10
        stages.requests.clear()
        solvers.requests.clear()

        # The same compile in a fresh cache, killed right after its k-th reply was stored.
        fresh_cache(monkeypatch, tmp_path / "cache-b")
        config = on_fake_servers(tmp_path / "b", stages, solvers)
        put, stored = dspy.cache.put, []

        def put_then_die(*args: Any, **kwargs: Any) -> None:
            put(*args, **kwargs)
            stored.append(1)
            if len(stored) == total // 2:
                raise Killed

        with monkeypatch.context() as patch, pytest.raises(Killed):
            patch.setattr(dspy.cache, "put", put_then_die)
            run(config, tmp_path / "b" / "out")
        first = served(stages) + served(solvers)
        assert sum(first.values()) == total // 2
        stages.requests.clear()
        solvers.requests.clear()

        resumed = run(config, tmp_path / "b" / "out")
        second = served(stages) + served(solvers)
    assert not (set(second) & set(first))  # nothing answered before was asked again
    assert first + second == asked_whole  # together: exactly the uninterrupted compile's requests
    assert resumed == whole  # the same tuned program and the same scores
