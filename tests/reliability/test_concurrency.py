"""Concurrency: evaluation worker threads, grading from threads, several search worker processes.

- Six workers run SCALE over HTTP (all stages, budget forcing) against a FakeServer that answers
  late and faults once per request at random: no result is lost or doubled, and each problem's
  ledger holds exactly its own requests and their tokens (counted at the server).
- Grading the whole case file from eight threads at once (math-verify in its process pool, with a
  pathological case that kills the pool mid-way) gives the same verdicts as the case file.
- Three ``scale search`` processes share one sqlite study, with a two-value space; the server holds
  requests until all three are inside a trial, so the same configuration runs in two processes at
  once: exactly N trials, none lost or doubled, each evaluated on every dev problem once.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dspy
import optuna
import pytest
from optuna.trial import TrialState

from data.grading import grade
from optimize.evaluation.evaluate import evaluate
from optimize.evaluation.results import ResultsFile
from program.config import ProgramConfig, ScaleConfig
from program.methods import build_program
from program.presets import preset
from program.testing.fakeserver import FakeServer, Fault
from reliability.toy import TALLY, experiment_file, problem_of, rows, scale_command, scale_env, toy_reply

CASES = Path(__file__).resolve().parents[2] / "data" / "cases" / "grading.jsonl"


def _words(text: str) -> int:
    return len(text.split())


@pytest.mark.fake_server
def test_six_workers_over_http_lose_double_and_mix_up_nothing(tmp_path: Path) -> None:
    rng, lock = random.Random(5), threading.Lock()
    faulted: set[str] = set()
    log: list[tuple[str, str, int]] = []  # (problem, "ok" | "fault", tokens the server reported)

    def action(body: dict[str, Any]) -> Any:
        key = json.dumps(body, sort_keys=True)
        with lock:
            delay, fault = rng.uniform(0.0, 0.03), key not in faulted and rng.random() < 0.25
            if fault:
                faulted.add(key)  # a request faults at most once: the retry goes through
        time.sleep(delay)
        if fault:
            with lock:
                log.append((problem_of(body), "fault", 0))
            return Fault(status=rng.choice([500, 503, 429]))
        reply = toy_reply(body)
        prompt = body.get("prompt") or " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        completion = min(_words(reply), body.get("max_tokens") or 10**9)
        with lock:
            log.append((problem_of(body), "ok", _words(str(prompt)) + completion))
        return reply

    problems = [dspy.Example(**row, benchmark="toy").with_inputs("problem") for row in rows(24)]
    with FakeServer(default=action) as server:
        lm = preset("local", model="openai/fake", api_base=server.api_base)  # System 2: budget forcing
        config = ProgramConfig(method="scale", lm=lm, scale=ScaleConfig(threshold=0.2, last_step_score=None))
        report = evaluate(build_program(config), problems, results_path=tmp_path / "r.jsonl", config=config,
                          workers=6, progress=False)
    stored = [r.id for r in ResultsFile(tmp_path / "r.jsonl").read()]
    expected = [p.id for p in problems]
    assert sorted(stored) == sorted(expected)  # one line each: none lost or doubled
    assert all(r.correct and not r.failed for r in report.results)
    ok_calls, tokens = Counter(), Counter()
    for problem, outcome, used in log:
        if outcome == "ok":
            ok_calls[problem] += 1
            tokens[problem] += used
    mixed_up = [r.id for r in report.results  # a ledger holding a neighbour's calls, or missing its own
                if (r.totals["calls"], r.totals["total_tokens"]) != (ok_calls[r.problem], tokens[r.problem])]
    assert mixed_up == []
    assert all(r.totals["calls"] >= 3 for r in report.results)
    faults = sum(1 for _, outcome, _ in log if outcome == "fault")
    assert faults > 0
    TALLY["concurrency: 6 eval workers over HTTP"] = {
        "problems": len(problems), "requests": len(log), "faults retried": faults,
        "results lost": len(set(expected) - set(stored)), "results doubled": len(stored) - len(set(stored)),
        "ledgers mixed up": len(mixed_up)}


def test_grading_from_eight_threads_matches_the_case_file() -> None:
    cases = [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]
    work = [case for case in cases for _ in range(3)]
    random.Random(3).shuffle(work)

    def verdict(case: dict[str, Any]) -> tuple[str, str | None, bool]:
        timeout = 2.0 if case["id"].startswith("timeout") else 10.0
        result = grade(case["gold"], case["output"], timeout=timeout)
        return case["id"], result.extracted, result.correct

    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(verdict, work))
    wrong = [(cid, got, ok) for (cid, got, ok), case in zip(verdicts, work, strict=True)
             if (got, ok) != (case["expected_extracted"], case["expected_correct"])]
    assert wrong == []
    TALLY["concurrency: grading from 8 threads"] = {"gradings": len(work), "wrong verdicts": len(wrong)}


class Gate:
    """Holds every request until ``n`` are in flight at once (then never again), or ``timeout`` s passed.

    Each search process has one request in flight at a time (one problem at a time), and makes
    requests only inside a trial: once three are held together, the three processes are inside
    trials at the same moment, and with two configurations two of them run the same one.
    """

    def __init__(self, n: int, timeout: float = 120.0) -> None:
        self.n, self.timeout = n, timeout
        self.waiting, self.opened = 0, threading.Event()
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.waiting += 1
            if self.waiting >= self.n:
                self.opened.set()
        self.opened.wait(self.timeout)


@pytest.mark.fake_server
def test_three_search_processes_share_one_study(tmp_path: Path, toy_data: Path) -> None:
    trials = 8
    space = {"threshold": {"choices": [0.2, 0.95]}, "system1_max_tokens": 64, "num_waits": 0}
    config = experiment_file(tmp_path / "exp.yaml", data=toy_data, output=tmp_path / "runs",
                             search={"trials": trials, "space": space, "enqueue_paper": False, "heldout": 0})
    storage = f"sqlite:///{tmp_path / 'runs' / 'toy' / 'optuna.db'}"
    slow, gate = random.Random(9), Gate(3)

    def action(body: dict[str, Any]) -> str:
        gate()
        time.sleep(slow.uniform(0.01, 0.05))
        return toy_reply(body)

    with FakeServer(default=action) as server:
        argv = scale_command("search", "--config", str(config), "--no-mlflow", "--no-progress", "--api-base",
                             server.api_base, "--model", "openai/fake")
        workers = [subprocess.Popen(argv, cwd=tmp_path, env=scale_env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outputs = [w.communicate(timeout=240) for w in workers]
        requests = len(server.requests)
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert "Traceback" not in err
    assert gate.opened.is_set(), "the three processes were never inside trials at the same time"
    study = optuna.load_study(study_name="toy-study", storage=storage)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(trials))  # exactly N, each number once
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    for trial in study.trials:  # every trial evaluated each dev problem exactly once
        assert trial.user_attrs["n"] == 3 and trial.user_attrs["n_failed"] == 0
        assert trial.values[0] == 100.0
    # Trials of one configuration share one results file: read each file once, keyed by its path.
    ids_by_file: dict[str, list[str]] = {}
    for trial in study.trials:
        path = trial.user_attrs["results_path"]
        assert Path(path).parent.name == trial.user_attrs["fingerprint"]
        if path not in ids_by_file:
            ids_by_file[path] = [json.loads(line)["id"] for line in Path(path).read_text().splitlines()]
    dev_ids = sorted({i for ids in ids_by_file.values() for i in ids})
    assert len(dev_ids) == 3 and all(sorted(set(ids)) == dev_ids for ids in ids_by_file.values())
    # The race the docstring names: one configuration in two processes at the same time.
    workers_seen = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers_seen) == 3
    by_number = {t.number: t for t in study.trials}
    same_config_at_once = [(a.number, b.number) for a in study.trials for b in study.trials
                           if a.number < b.number and a.user_attrs["fingerprint"] == b.user_attrs["fingerprint"]
                           and a.user_attrs["worker"] != b.user_attrs["worker"]
                           and a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete]
    assert same_config_at_once
    shared_runs = sum(len(ids) - len(set(ids)) for ids in ids_by_file.values())
    assert shared_runs > 0  # both solved it (neither had a result to resume from), and both lines read back
    assert re.search(r"\d+ trials", outputs[0][0])
    TALLY["concurrency: 3 search processes, one study"] = {
        "trials": len(numbers), "requests": requests, "trials lost": len(set(range(trials)) - set(numbers)),
        "trials doubled": len(numbers) - len(set(numbers)), "worker processes that ran trials": len(workers_seen),
        "configurations run by two processes at once": len({by_number[a].user_attrs["fingerprint"]
                                                             for a, _ in same_config_at_once}),
        "problems re-solved by a second process on the same config": shared_runs}
