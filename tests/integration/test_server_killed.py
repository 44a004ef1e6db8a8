"""The real local llama.cpp server killed mid-evaluation, then started again: the run stops with a
clear message, the finished problem is on disk, and the rerun asks the model only about the rest.

Runs its own ``LocalServer`` on a free port (never the shared one on 8765), kills it with SIGKILL
while it is generating the second problem's answer, and counts every chat request per problem.
Small on purpose: three one-line sums, CoT, 48 answer tokens.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import dspy
import pytest

from optimize.evaluation.evaluate import ServerDownError, evaluate
from optimize.evaluation.results import ResultsFile
from prerequisites import require_local_model
from program.clients import transport
from program.config import ProgramConfig
from program.methods import build_program
from program.presets import preset

PROBLEMS = [("s1", "What is 2 + 3? Reply with the number in \\boxed{}.", "5"),
            ("s2", "What is 10 + 4? Reply with the number in \\boxed{}.", "14"),
            ("s3", "What is 6 + 1? Reply with the number in \\boxed{}.", "7")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, log: Path) -> Any:
    from program.serving.local import LocalServer, model_path

    server = LocalServer(model_path(), port=port, log_path=log)
    server.start()
    server.wait_ready(180)
    return server


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    require_local_model()  # a skip, or a failure under CI=true
    port = free_port()
    state = {"port": port, "server": start_server(port, tmp_path / "server-1.log")}
    yield state
    state["server"].stop()


def test_killed_local_server_stops_the_run_and_the_rerun_resumes(own_server: dict[str, Any], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "_CACHE_ENABLED", False)  # every request must reach the server
    lm = preset("local", api_base=f"http://127.0.0.1:{own_server['port']}/v1")
    lm = replace(lm, endpoint=replace(lm.endpoint, retries=1, timeout=120),
                 system1=replace(lm.system1, max_tokens=48))
    config = ProgramConfig(method="cot", lm=lm)
    examples = [dspy.Example(id=i, problem=p, answer=a, benchmark="toy").with_inputs("problem") for i, p, a in PROBLEMS]

    asked: Counter[str] = Counter()
    chat = transport.chat

    def counting_chat(endpoint: Any, messages: list[dict[str, str]], **kwargs: Any) -> Any:
        problem = next(p for _, p, _ in PROBLEMS if p in messages[-1]["content"])
        asked[problem] += 1
        if problem == PROBLEMS[1][1] and asked[problem] == 1:  # kill it while it writes this answer
            process = own_server["server"].process
            threading.Timer(0.4, process.send_signal, args=(signal.SIGKILL,)).start()
        return chat(endpoint, messages, **kwargs)

    monkeypatch.setattr(transport, "chat", counting_chat)
    results = tmp_path / "results.jsonl"
    with pytest.raises(ServerDownError, match=r"2 problems in a row failed with server errors .* The 1 finished "
                                              r"problems are saved in .* run the same command again to resume"):
        evaluate(build_program(config), examples, results_path=results, config=config, progress=False,
                 max_server_errors=2)
    stored = ResultsFile(results).read()
    assert [(r.id, r.failed) for r in stored] == [("s1", False), ("s2", True), ("s3", True)]
    assert all(r.error_type == "ServerError" for r in stored[1:])
    assert own_server["server"].process.poll() is not None  # it really was killed

    own_server["server"] = start_server(own_server["port"], tmp_path / "server-2.log")
    first_round = dict(asked)
    report = evaluate(build_program(config), examples, results_path=results, config=config, progress=False)
    rerun = {problem: asked[problem] - first_round.get(problem, 0) for problem in asked}
    assert rerun[PROBLEMS[0][1]] == 0  # the finished problem was not asked again
    assert rerun[PROBLEMS[1][1]] == rerun[PROBLEMS[2][1]] == 1
    assert (report.n_resumed, report.n_new) == (1, 2)
    assert not any(r.failed for r in report.results) and len(report.results) == 3
