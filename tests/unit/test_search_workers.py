"""Several worker processes on one study: no duplicate and no lost trials (scripted LMs, real processes)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from test_search import _solver, experiment, stages, toy_examples  # the shared scripted setup


def _slow(responder: Any) -> Any:
    def respond(messages: list[dict[str, str]]) -> str:
        time.sleep(0.02)  # long enough for the workers' trials to interleave
        return responder(messages)
    return respond


def _worker(tmp: str, storage: str | None, trials: int, queue: Any) -> None:
    """One ``scale search`` process, scripted: runs until the study holds ``trials`` trials."""
    from optimize.search import run_search
    from program.testing import scripted_systems

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    systems = scripted_systems(_slow(stages), _slow(_solver(slow=False)), _slow(_solver(slow=True)))
    result = run_search(experiment(Path(tmp)), trials=trials, storage=storage, systems=systems,
                        examples=toy_examples(2), tracking=False, progress=False)
    queue.put(result.ran)


@pytest.mark.parametrize("storage", [None, "journal"])
def test_two_workers_share_one_study_without_duplicates_or_losses(tmp_path: Path, storage: str | None) -> None:
    url = f"journal:{tmp_path / 'study.journal'}" if storage == "journal" else None
    trials = 6
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each, like two terminals
    queue = context.Queue()
    workers = [context.Process(target=_worker, args=(str(tmp_path), url, trials, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
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
    workers_seen = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers_seen) == 2 or min(ran) == 0  # both took trials (unless one started late)
    # the plans were made once per problem by whichever worker came first
    plans = (config.run_dir / "plans.jsonl").read_text().splitlines()
    assert len(plans) <= 2 * 2  # at most one per problem per worker racing on the same problem
