"""Server faults: refused connections, timeouts, HTTP 5xx and 429, dropped connections, a killed server.

Each fault is retried with bounded exponential backoff (``program.clients.transport``), then the problem is
recorded as failed with the reason and the run goes on. A server killed mid-evaluation stops the
run with a clear message; finished problems are on disk, and a rerun asks the server only about
the unfinished ones (counted at the FakeServer).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import dspy
import pytest
import tenacity

from optimize.cli import main
from optimize.evaluation.evaluate import ServerDownError, evaluate
from optimize.evaluation.results import ResultsFile, latest_by_id
from program.clients import transport
from program.config import Endpoint, LMConfig, ModeConfig, ProgramConfig, ScaleConfig
from program.errors import ServerError
from program.methods import build_program
from program.presets import preset
from program.testing.fakeserver import FakeServer, Fault
from reliability.toy import kill_after, listen_again, problem_of, requests_for, rows, toy_reply, toy_server

pytestmark = pytest.mark.fake_server


def examples(n: int, start: int = 0) -> list[dspy.Example]:
    return [dspy.Example(**row, benchmark="toy").with_inputs("problem") for row in rows(n, start)]


def cot_config(api_base: str, *, retries: int = 1, timeout: float = 2.0) -> ProgramConfig:
    """The brief's setup: one FakeServer endpoint, method cot (one call per problem)."""
    endpoint = Endpoint(model="openai/fake", api_base=api_base, retries=retries, timeout=timeout)
    plain = ModeConfig(temperature=0.0, top_p=None, top_k=None, max_tokens=64)
    return ProgramConfig(method="cot", lm=LMConfig(endpoint=endpoint, stages=plain, system1=plain, system2=plain))


def run(config: ProgramConfig, problems: list[dspy.Example], results: Path, **options: object):
    return evaluate(build_program(config), problems, results_path=results, config=config, progress=False,
                    **options)


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens any more."""
    server = FakeServer().start()
    port = server.port
    server.stop()
    return port


FAULTS = {
    "http 500": Fault(status=500),
    "http 502": Fault(status=502),
    "http 503": Fault(status=503),
    "http 429": Fault(status=429),
    "dropped connection": Fault(drop=True),
    "timeout": Fault(stall=0.8),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_fault_is_retried_then_recorded_and_the_run_goes_on(name: str, tmp_path: Path) -> None:
    fault = FAULTS[name]
    # retries=1: two attempts per call. Problem 1 meets the fault twice (fails), problem 2 once (recovers).
    with toy_server(fault, fault, fault) as server:
        config = cot_config(server.api_base, retries=1, timeout=0.4 if fault.stall else 2.0)
        report = run(config, examples(3), tmp_path / "results.jsonl", max_server_errors=3)
        asked, api_base = requests_for(server), server.api_base
    by_id = {r.id: r for r in report.results}
    first, second, third = (by_id[f"q{i:03d}"] for i in range(3))
    assert first.failed and first.error_type == "ServerError" and not first.correct
    assert api_base in first.error and "failed after 2 attempts" in first.error
    assert second.correct and third.correct and not second.failed
    # bounded: exactly retries + 1 attempts for the failing problem, one retry for the recovering one
    assert asked == [rows(3)[0]["problem"]] * 2 + [rows(3)[1]["problem"]] * 2 + [rows(3)[2]["problem"]]
    stored = ResultsFile(tmp_path / "results.jsonl").read()
    assert [r.id for r in stored] == ["q000", "q001", "q002"]  # the failure is on disk with its reason
    assert stored[0].error == first.error
    assert report.summary.n_failed == 1 and report.summary.accuracy == pytest.approx(200 / 3)


def test_connection_refused_is_recorded_per_problem_then_the_run_stops_as_never_reached(tmp_path: Path) -> None:
    config = cot_config(f"http://127.0.0.1:{closed_port()}/v1", retries=1)
    with pytest.raises(ServerDownError, match="never reached") as info:  # fewer than max_server_errors: still down
        run(config, examples(3), tmp_path / "results.jsonl", max_server_errors=5)
    assert not info.value.reached
    stored = ResultsFile(tmp_path / "results.jsonl").read()
    assert [r.error_type for r in stored] == ["ServerError"] * 3
    assert all("Check that it is running" in r.error for r in stored)


def test_backoff_is_exponential_and_capped(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """1 s, 2 s, 4 s ... capped at 30 s (the production settings), recorded instead of slept."""
    sleeps: list[float] = []

    class Recording(tenacity.Retrying):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["sleep"] = sleeps.append
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tenacity, "Retrying", Recording)
    monkeypatch.setitem(transport.RETRY_WAIT, "multiplier", 1.0)
    monkeypatch.setitem(transport.RETRY_WAIT, "max", 30.0)
    with FakeServer(default=Fault(status=503)) as server, caplog.at_level(logging.WARNING, "program.clients.transport"):
        endpoint = Endpoint(model="openai/fake", api_base=server.api_base, retries=7, timeout=2.0)
        with pytest.raises(ServerError, match="failed after 8 attempts"):
            transport.chat(endpoint, [{"role": "user", "content": "hi"}], max_tokens=4)
        assert len(server.requests) == 8
    assert sleeps == [1, 2, 4, 8, 16, 30, 30]
    assert "retry 7 of 7" in caplog.text


def test_client_errors_fail_at_once_without_retries(tmp_path: Path) -> None:
    with toy_server(Fault(status=400), Fault(status=404)) as server:
        report = run(cot_config(server.api_base, retries=3), examples(3), tmp_path / "r.jsonl")
        assert len(server.requests) == 3  # each refused request sent once, then one answer
    assert [r.failed for r in report.results] == [True, True, False]
    assert all(r.error_type != "ServerError" for r in report.results[:2])


def test_a_fault_inside_any_scale_stage_fails_that_problem_only(tmp_path: Path) -> None:
    """A server error is not the model's answer: it fails the problem (never a silent fallback)."""
    local = preset("local", model="openai/fake")  # System 2: s1 budget forcing over /v1/completions
    stage_markers = {"decompose": "Break the math problem", "difficulty": "Rate how hard",
                     "system1": "Solve the current step", "system2 thinking": "<think>"}
    outcome = {}
    for stage, marker in stage_markers.items():
        target = rows(3)[1]["problem"]

        def action(body: dict, marker: str = marker, target: str = target) -> object:
            text = body.get("prompt") or json.dumps(body.get("messages"))
            if problem_of(body) == target and marker in text:
                return Fault(status=500)
            return toy_reply(body)

        with FakeServer(default=action) as server:
            lm = local.with_overrides(api_base=server.api_base)
            lm = replace(lm, endpoint=replace(lm.endpoint, retries=1))
            config = ProgramConfig(method="scale", lm=lm, scale=ScaleConfig(threshold=0.2, last_step_score=None))
            if stage == "system1":
                config = ProgramConfig(method="scale", lm=lm, scale=ScaleConfig(threshold=0.9, last_step_score=None))
            report = run(config, examples(3), tmp_path / stage / "results.jsonl", max_server_errors=3)
        outcome[stage] = [(r.error_type, r.correct) for r in report.results]
    for stage, results in outcome.items():
        assert results == [(None, True), ("ServerError", False), (None, True)], stage


def test_server_killed_mid_evaluation_stops_clearly_and_the_rerun_resumes(
        tmp_path: Path, toy_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs"
    with FakeServer() as server:
        server.default = kill_after(server, 3)  # answers 3 problems, then nothing listens any more
        argv = ["eval", "--method", "cot", "--benchmark", "gsm8k", "--data-dir", str(toy_data), "--output", str(out),
                "--api-base", server.api_base, "--model", "openai/fake", "--max-server-errors", "2", "--no-progress"]
        assert main(argv) == 3  # the server went down after answers: incomplete, not a usage error
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert err.startswith("error: Stopped: 2 problems in a row failed with server errors")
        assert "The 3 finished problems are saved in" in err and "run the same command again to resume" in err

        results = out / "cot-gsm8k" / "results.jsonl"
        stored = ResultsFile(results).read()
        assert [(r.id, r.correct) for r in stored if not r.failed] == [("q000", True), ("q001", True), ("q002", True)]
        assert [r.id for r in stored if r.failed] == ["q003", "q004"]  # the two attempts that found it down
        assert len(server.requests) == 3  # refused connections never reach a server

        listen_again(server, *server.default.state["killed"])
        server.default = toy_reply
        assert main(argv) == 0
        assert "3 new, 3 resumed" in capsys.readouterr().out
        rerun = requests_for(server)[3:]
    finished = {row["problem"] for row in rows(3)}
    assert sorted(rerun) == sorted(row["problem"] for row in rows(3, start=3))  # only the unfinished ones
    assert not finished & set(rerun)  # no finished problem was asked again
    final = latest_by_id(ResultsFile(results).read())
    assert sorted(final) == [f"q{i:03d}" for i in range(6)] and all(r.correct for r in final.values())


def test_evaluation_rides_out_a_short_outage_when_retries_allow(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Configured with enough retries (and backoff), a run continues once the server is back."""
    monkeypatch.setitem(transport.RETRY_WAIT, "multiplier", 0.05)
    monkeypatch.setitem(transport.RETRY_WAIT, "max", 0.5)
    with FakeServer() as server:
        server.default = kill_after(server, 2)

        def revive_soon() -> None:
            while server.default.state["killed"] is None:
                time.sleep(0.01)
            time.sleep(0.3)
            listen_again(server, *server.default.state["killed"])

        reviver = threading.Thread(target=revive_soon, daemon=True)
        reviver.start()
        report = run(cot_config(server.api_base, retries=8), examples(4), tmp_path / "r.jsonl")
        reviver.join(5)
    assert report.summary.n_failed == 0 and report.summary.accuracy == 100.0
    assert len(server.requests) == 4  # the outage cost retries of connections, not repeated answers


def test_a_dead_server_stops_a_library_run_and_nothing_finished_is_paid_twice(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    problems = examples(8)
    with FakeServer() as server:
        server.default = kill_after(server, 5)
        config = cot_config(server.api_base, retries=1)
        with pytest.raises(ServerDownError, match=r"3 problems in a row .* The 5 finished problems are saved"):
            run(config, problems, results, max_server_errors=3)
        listen_again(server, *server.default.state["killed"])
        server.default = toy_reply
        report = run(config, problems, results)
        asked = requests_for(server)
    assert asked[:5] == [p.problem for p in problems[:5]]
    assert asked[5:] == [p.problem for p in problems[5:]]  # the rerun: unfinished problems only, once each
    assert (report.n_resumed, report.n_new) == (5, 3) and report.summary.accuracy == 100.0
