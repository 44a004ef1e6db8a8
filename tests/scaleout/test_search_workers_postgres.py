"""Three ``scale search`` processes, as on three machines, on one PostgreSQL study and one MLflow server.

Each worker has its own run directory (nothing shared on disk); they share only the database
(the study, its heartbeats and the plan cache) and the tracking server. One worker is killed
(SIGKILL) in the middle of a trial: its heartbeat stops, another worker fails the trial and
Optuna's ``RetryFailedTrialCallback`` queues it again, so the study ends with exactly N complete
trials. The fake model server sees every request, so "each problem planned once" is counted at
the source.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from optimize.search.plans_db import PLANS_TABLE
from optimize.search.run import PARENT_RUN_ATTR
from program.testing.fakeserver import FakeServer
from reliability.toy import data_dir, experiment_file, scale_command, scale_env, toy_reply

TRIALS = 12
PROBLEMS = 3  # the toy experiment's dev slice: gsm8k_train:3
STUDY = "toy-study"


def _start(config: Path, storage: str, tracking: str, api_base: str, cwd: Path, log: Path, *,
           join: bool) -> subprocess.Popen:
    args = ["search", "--config", str(config), "--trials", str(TRIALS), "--storage", storage,
            "--tracking-uri", tracking, "--heartbeat", "1", "--no-progress", "--model", "openai/fake",
            "--api-base", api_base]
    return subprocess.Popen(scale_command(*args, *(["--worker"] if join else [])), cwd=cwd, env=scale_env(),
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait(condition, timeout: float, what: str, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    pytest.fail(f"timed out waiting for {what}:\n" + "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs))


def _planned(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(PLANS_TABLE):
            return 0
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {PLANS_TABLE} WHERE plan IS NOT NULL")).scalar_one())


def test_three_workers_one_killed_mid_trial(tmp_path: Path, pg_url: str, mlflow_server: str) -> None:
    from mlflow import MlflowClient

    data = data_dir(tmp_path)
    server = FakeServer(default=toy_reply, latency=0.2).start()
    engine = sa.create_engine(pg_url)
    logs = [tmp_path / f"worker-{i}.log" for i in range(3)]
    procs: list[subprocess.Popen] = []
    try:
        # tau sampled (not the exact curve): the seeds are then the paper's two thresholds, checked below
        configs = [experiment_file(tmp_path / f"machine-{i}" / "search.yaml", data=data,
                                   output=tmp_path / f"machine-{i}" / "runs",
                                   search={"trials": TRIALS, "tau": "sample"})
                   for i in range(3)]
        procs.append(_start(configs[0], pg_url, mlflow_server, server.api_base, tmp_path, logs[0], join=False))
        _wait(lambda: STUDY in optuna.get_all_study_names(pg_url), 120, "the first worker to create the study",
              procs, logs)
        procs += [_start(configs[i], pg_url, mlflow_server, server.api_base, tmp_path, logs[i], join=True)
                  for i in (1, 2)]
        victim = procs[1]

        def victim_mid_trial() -> bool:
            if _planned(engine) < PROBLEMS:
                return False
            study = optuna.load_study(study_name=STUDY, storage=pg_url)
            return any(t.state == TrialState.RUNNING and str(t.user_attrs.get("worker", "")).endswith(f":{victim.pid}")
                       for t in study.get_trials(deepcopy=False))

        _wait(victim_mid_trial, 180, "worker 1 to be in a trial", procs, logs)
        time.sleep(0.3)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        for proc, log in zip(procs, logs, strict=True):
            if proc is not victim:
                try:
                    proc.wait(timeout=240)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    pytest.fail(f"a worker did not finish:\n{log.read_text()[-3000:]}")
                assert proc.returncode == 0, log.read_text()[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        server.stop()

    study = optuna.load_study(study_name=STUDY, storage=pg_url)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(complete) == TRIALS  # exactly N, none lost
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # the killed worker's trial failed through its stale heartbeat and was retried once, by a live worker
    assert len(failed) == 1 and str(failed[0].user_attrs["worker"]).endswith(f":{victim.pid}")
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == failed[0].params
    assert not str(retries[0].user_attrs["worker"]).endswith(f":{victim.pid}")
    # none duplicated: the seeds ran once each, and the other trials are distinct configurations
    assert sorted(t.params["threshold"] for t in complete if t.user_attrs.get("seed")) == [0.2, 0.5]
    keys = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(keys)) == TRIALS
    assert len({str(t.user_attrs["worker"]) for t in complete}) >= 2  # the work was shared

    # each problem was planned once, for the whole study, by whichever worker came first
    decomposed = [b for b in server.requests if "Break the math problem" in str(b.get("messages", ""))]
    assert len(decomposed) == PROBLEMS
    assert _planned(engine) == PROBLEMS
    for i in range(3):
        assert not (tmp_path / f"machine-{i}" / "runs" / "toy" / "plans.jsonl").exists()
    engine.dispose()

    # one parent run on the MLflow server, one finished child per complete trial, whichever worker ran it
    client = MlflowClient(tracking_uri=mlflow_server)
    parent = client.get_run(study.user_attrs[PARENT_RUN_ATTR])
    assert parent.info.status == "FINISHED"
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:")  # the server's artifact store
    assert "pareto" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=100)
    finished = sorted(r.info.run_name for r in children if r.info.status == "FINISHED")
    assert finished == sorted(f"trial-{t.number}" for t in complete)
    parents = client.search_runs([parent.info.experiment_id], filter_string=f"tags.`optuna.study` = '{STUDY}'")
    assert [r.info.run_id for r in parents if "mlflow.parentRunId" not in r.data.tags] == [parent.info.run_id]
