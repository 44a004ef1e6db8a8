"""Interrupted work: ``scale eval`` and ``scale search`` killed at random points by SIGINT and SIGKILL.

The real command runs in a subprocess against a FakeServer in this process (so every request is
counted across kills). After each kill the results file and the Optuna storage must still read;
the rerun finishes the job; no finished problem is asked again, none is counted twice, and every
trial of the final study ran on all of its problems exactly once.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optimize.evaluation.results import ResultsFile, latest_by_id
from program.testing.fakeserver import FakeServer
from reliability.toy import TALLY, experiment_file, problem_of, rows, scale_command, scale_env, toy_reply

pytestmark = pytest.mark.fake_server


# The planning requests of SCALE: decomposition and difficulty (made once per problem, then reused).
PLANNING = re.compile(r"Break the math problem|Rate how hard")


def slow_reply(seed: int) -> Any:
    """Right answers, 30-90 ms each: slow enough to be caught in the middle of things.

    Its own random source: server threads draw from it in whatever order they run, which must not
    change where the test kills.
    """
    rng, lock = random.Random(seed), threading.Lock()

    def action(body: dict[str, Any]) -> str:
        with lock:
            delay = rng.uniform(0.03, 0.09)
        time.sleep(delay)
        return toy_reply(body)

    return action


def start(argv: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(scale_command(*argv), cwd=cwd, env=scale_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def kill_when(process: subprocess.Popen[str], server: FakeServer, requests: int, sig: int,
              delay: float) -> tuple[int, str, bool]:
    """Send ``sig`` once the server has seen ``requests`` requests (plus ``delay`` s). Returns (code, stderr, sent)."""
    deadline = time.monotonic() + 120
    sent = False
    while process.poll() is None and time.monotonic() < deadline:
        if len(server.requests) >= requests:
            time.sleep(delay)
            process.send_signal(sig)
            sent = True
            break
        time.sleep(0.005)
    _, err = process.communicate(timeout=120)
    return process.returncode, err, sent


def readable_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete line parses; at most a cut-off tail (a SIGKILL mid-write) does not."""
    if not path.exists():
        return []
    *complete, tail = path.read_bytes().split(b"\n")
    return [json.loads(line) for line in complete if line.strip()]


def test_eval_killed_at_random_points_resumes_without_repeats(tmp_path: Path, toy_data: Path) -> None:
    rng, n = random.Random(7), 20
    out = tmp_path / "runs"
    argv = ["eval", "--method", "cot", "--benchmark", "gsm8k", "--data-dir", str(toy_data), "--workers", "2",
            "--output", str(out), "--no-progress", "--model", "openai/fake"]
    results = out / "cot-gsm8k" / "results.jsonl"
    (toy_data / "gsm8k_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(n)))
    repeated = kills = 0
    with FakeServer(default=slow_reply(1)) as server:
        argv += ["--api-base", server.api_base]
        for sig in (signal.SIGKILL, signal.SIGINT, signal.SIGKILL):
            finished = {r.id for r in ResultsFile(results).read() if not r.failed} if results.exists() else set()
            asked_before = len(server.requests)
            # a few requests into the run, with plenty left: the kill always lands mid-evaluation
            code, err, sent = kill_when(start(argv, tmp_path), server, asked_before + rng.randint(1, 3), sig,
                                        rng.uniform(0.0, 0.05))
            assert sent, "the run ended before it could be interrupted"
            kills += 1
            assert "Traceback" not in err
            if sig == signal.SIGINT:
                assert code == 130 and "interrupted: finished work is saved" in err
            else:
                assert code == -signal.SIGKILL
            readable_lines(results)  # complete lines parse, whatever was cut
            stored = ResultsFile(results).read()  # and the reader repairs a cut tail
            asked = [problem_of(body) for body in server.requests[asked_before:]]
            texts = {r["problem"] for r in rows(n) if r["id"] in finished}
            repeated += sum(1 for problem in asked if problem in texts)
            assert finished <= {r.id for r in stored if not r.failed}  # nothing finished was lost
        finished = {r.id for r in ResultsFile(results).read() if not r.failed}
        asked_before = len(server.requests)
        done = subprocess.run(scale_command(*argv), cwd=tmp_path, env=scale_env(), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        texts = {r["problem"] for r in rows(n) if r["id"] in finished}
        repeated += sum(1 for body in server.requests[asked_before:] if problem_of(body) in texts)
    assert repeated == 0  # no finished problem was asked again
    lines = readable_lines(results)
    successes = [line["id"] for line in lines if line["error"] is None]
    assert sorted(successes) == sorted(r["id"] for r in rows(n))  # every problem once: none lost, none twice
    final = latest_by_id(ResultsFile(results).read())
    assert len(final) == n and all(r.correct for r in final.values())
    summary = json.loads((out / "cot-gsm8k" / "summary.json").read_text())
    assert summary["n"] == n and summary["accuracy"] == 100.0
    TALLY["interrupts: scale eval"] = {"kills (SIGINT, SIGKILL)": kills,
                                       "results lost": len({r["id"] for r in rows(n)} - set(successes)),
                                       "calls repeated for finished problems": repeated,
                                       "problems counted twice": len(successes) - len(set(successes))}


def test_search_killed_at_random_points_resumes_to_exactly_n_trials(tmp_path: Path, toy_data: Path) -> None:
    rng = random.Random(11)
    trials = 8
    config = experiment_file(tmp_path / "exp.yaml", data=toy_data, output=tmp_path / "runs", method="scale",
                             search={"trials": trials, "heldout": 0})
    storage = f"sqlite:///{tmp_path / 'runs' / 'toy' / 'optuna.db'}"
    plans = tmp_path / "runs" / "toy" / "plans.jsonl"
    kills = repeated = 0
    with FakeServer(default=slow_reply(2)) as server:
        argv = ["search", "--config", str(config), "--no-mlflow", "--no-progress", "--api-base", server.api_base,
                "--model", "openai/fake"]
        for sig in (signal.SIGKILL, signal.SIGINT, signal.SIGKILL, None):  # None: the rerun that finishes
            planned = {line["problem"] for line in readable_lines(plans)}  # problems whose plan is saved
            asked_before = len(server.requests)
            if sig is None:
                done = subprocess.run(scale_command(*argv), cwd=tmp_path, env=scale_env(), capture_output=True,
                                      text=True, timeout=180)
                assert done.returncode == 0, done.stderr
            else:
                code, err, sent = kill_when(start(argv, tmp_path), server, asked_before + rng.randint(2, 6), sig,
                                            rng.uniform(0.0, 0.05))
                assert sent, f"the search ended before it could be interrupted: {code} {err[-3000:]}"
                kills += 1
                assert "Traceback" not in err
                assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL)
                study = optuna.load_study(study_name="toy-study", storage=storage)  # the storage still reads
                running = [t.number for t in study.get_trials() if t.state == TrialState.RUNNING]
                # Ctrl-C ends its trial as interrupted; a SIGKILL leaves at most the one it was running
                assert len(running) <= (0 if sig == signal.SIGINT else 1), running
            # a problem planned before this run is never decomposed or rated again (the plans are reused)
            repeated += sum(1 for body in server.requests[asked_before:]
                            if PLANNING.search(json.dumps(body)) and problem_of(body) in planned)
    assert repeated == 0
    study = optuna.load_study(study_name="toy-study", storage=storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    cut = [t for t in study.trials if t.user_attrs.get("interrupted")]
    assert len(complete) == trials  # exactly N counted trials, whatever was interrupted
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert all(t.state == TrialState.FAIL and "interrupted" in t.user_attrs["fail_reason"] for t in cut)
    assert len({t.number for t in study.trials}) == len(study.trials)
    doubled = 0
    for trial in complete:  # each trial counted each dev problem once
        assert trial.user_attrs["n"] == 3 and trial.user_attrs["n_failed"] == 0
        path = Path(trial.user_attrs["results_path"])
        mine = [line for line in readable_lines(path) if line["fingerprint"] == trial.user_attrs["fingerprint"]]
        if path.name == "curve.jsonl":  # an exact-curve trial: one line of routing leaves per problem
            ok = [line["id"] for line in mine if line["leaves"] is not None]
        else:
            ok = [line["id"] for line in mine if line["error"] is None]
        assert len(set(ok)) == 3
        doubled += len(ok) - len(set(ok))
    assert doubled == 0  # no problem of a configuration stored twice
    TALLY["interrupts: scale search"] = {"kills (SIGINT, SIGKILL)": kills, "trials interrupted": len(cut),
                                         "trials complete": len(complete),
                                         "planning calls repeated for planned problems": repeated,
                                         "results stored twice": doubled}
