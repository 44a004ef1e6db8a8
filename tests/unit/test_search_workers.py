"""Several worker processes on one study: no duplicate and no lost trials (scripted LMs, real processes)."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from test_search import _solver, experiment, stages, toy_examples  # the shared scripted setup

LAST = toy_examples(2)[-1].problem


def _slow(responder: Any, mine: Any = None, other: Any = None) -> Any:
    """``responder`` with a delay; with events, solving the last problem waits for the other worker.

    Setting ``mine`` and waiting for ``other`` holds this worker's trial open, after both problems
    were planned, until the other worker is solving in a trial too: the two trials run at the same
    time by construction, not by luck.
    """
    def respond(messages: list[dict[str, str]]) -> str:
        if mine is not None and LAST in messages[-1]["content"]:
            mine.set()
            other.wait(timeout=120)  # on a timeout the overlap assertion names the failure
        time.sleep(0.02)  # long enough for the workers' trials to interleave
        return responder(messages)
    return respond


def _worker(tmp: str, storage: str | None, trials: int, queue: Any, go: Any, mine: Any, other: Any) -> None:
    """One ``scale search`` process, scripted: runs until the study holds ``trials`` trials."""
    from optimize.search.run import run_search
    from program.testing import scripted_systems

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    systems = scripted_systems(_slow(stages), _slow(_solver(slow=False), mine, other),
                               _slow(_solver(slow=True), mine, other))
    go.wait(timeout=240)  # imports done; start when the test says so
    result = run_search(experiment(Path(tmp)), trials=trials, storage=storage, systems=systems,
                        examples=toy_examples(2), tracking=False, progress=False)
    queue.put(result.ran)


def _plan_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("storage", [None, "journal"])
def test_two_workers_share_one_study_without_duplicates_or_losses(tmp_path: Path, storage: str | None) -> None:
    url = f"journal:{tmp_path / 'study.journal'}" if storage == "journal" else None
    trials = 6
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each, like two terminals
    queue = context.Queue()
    go, solving = [context.Event() for _ in range(2)], [context.Event() for _ in range(2)]
    workers = [context.Process(target=_worker, args=(str(tmp_path), url, trials, queue, go[i], solving[i],
                                                     solving[1 - i])) for i in range(2)]
    for worker in workers:
        worker.start()
    # Worker 0 starts and plans both problems in its first trial; worker 1 joins once the plans are
    # on disk (so it must reuse them), while worker 0's trial waits for it in its first solver call.
    plans_path = experiment(tmp_path).run_dir / "plans.jsonl"
    go[0].set()
    deadline = time.monotonic() + 240
    while _plan_lines(plans_path) < 2 and time.monotonic() < deadline and workers[0].is_alive():
        time.sleep(0.01)
    go[1].set()
    for worker in workers:
        worker.join(timeout=240)
        assert worker.exitcode == 0
    ran = [queue.get(timeout=5) for _ in workers]
    assert sum(ran) == trials

    config = experiment(tmp_path)
    storage_url = url or f"sqlite:///{(config.run_dir / 'optuna.db').resolve()}"
    if url:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        storage_obj: Any = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    else:
        storage_obj = storage_url
    study = optuna.load_study(study_name=config.search.study, storage=storage_obj)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(trials))  # total = requested, every number once
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert sorted(t.params["threshold"] for t in study.trials if t.user_attrs.get("seed")) == [0.2, 0.5]
    by_worker: dict[str, list[Any]] = {}
    for t in study.trials:
        by_worker.setdefault(t.user_attrs["worker"], []).append(t)
    assert len(by_worker) == 2 and min(ran) >= 1  # both processes took trials
    first, second = by_worker.values()
    overlapping = [(a.number, b.number) for a in first for b in second
                   if a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete]
    assert overlapping, "the two workers' trials never ran at the same time"
    # the plans were made once per problem, by the worker that came first; the other reused them
    plans = [json.loads(line) for line in plans_path.read_text().splitlines()]
    assert len(plans) == 2
    assert sorted(p["problem"] for p in plans) == sorted(e.problem for e in toy_examples(2))
