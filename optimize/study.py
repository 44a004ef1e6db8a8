"""The Optuna study of a search: its storage, who may create trials, and how N is counted.

Several ``scale search`` processes may share one study (same ``--storage`` and ``--study``). So
that they neither crash nor overshoot:

- the storage is opened and the study created under a file lock (STACK.md: two processes
  creating one fresh sqlite DB at once crash); a study that exists is loaded (resume);
- a new trial is asked for under the same lock, after counting: **N is the study's total**.
  Every trial counts (COMPLETE, FAIL, PRUNED, RUNNING), except trials cut off by Ctrl-C or a
  killed worker: those are marked FAIL with ``fail_reason`` "interrupted", their parameters are
  enqueued again, and they do not count. So a rerun with the same study name runs only what is
  missing, and a finished trial, failed or not, is never redone.
- A RUNNING trial whose worker process (``host:pid`` in its user attrs) is gone from this
  machine is such an interrupted trial. (One on another machine cannot be checked from here;
  it stays RUNNING until its own worker ends it.)

The lock is a file beside the storage (sqlite, journal), else in the run directory: it serialises
processes that share a file system. Workers on several machines need a shared storage (a
PostgreSQL URL or a journal file on a shared mount); there the lock file must be shared too, or
the count can overshoot by one trial per racing worker.

Storage URLs: None = ``sqlite:///<run_dir>/optuna.db``; ``journal:PATH`` = a journal file
(``JournalStorage(JournalFileBackend(PATH))``); anything else is an SQLAlchemy URL for Optuna's
``RDBStorage`` (``sqlite:///FILE``, ``postgresql://user@host/db``).

Example:
    >>> handle = open_study("demo", None, "runs/demo")  # doctest: +SKIP
    >>> trial = next_trial(handle, total=8)  # None once 8 trials exist  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

__all__ = ["StudyHandle", "open_study", "storage_url", "study_lock", "next_trial", "interrupt_trial",
           "counted_trials", "enqueue_seeds", "make_sampler", "WORKER_ATTR"]

log = logging.getLogger(__name__)

WORKER_ATTR = "worker"
# accuracy up, mean tokens per problem down
DIRECTIONS: tuple[Literal["maximize", "minimize"], ...] = ("maximize", "minimize")


@dataclass
class StudyHandle:
    """An open study with the lock that guards creating trials in it."""

    study: optuna.Study
    storage: Any
    url: str
    lock_path: Path
    created: bool

    @property
    def name(self) -> str:
        return self.study.study_name


def storage_url(storage: str | None, run_dir: str | Path) -> str:
    """The storage URL actually used: the given one, or the default sqlite file in ``run_dir``."""
    return storage or f"sqlite:///{Path(run_dir).resolve() / 'optuna.db'}"


def _lock_path(url: str, run_dir: Path, study_name: str) -> Path:
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///") + ".study-lock")
    if url.startswith("journal:"):
        return Path(url.removeprefix("journal:") + ".study-lock")  # optuna itself uses PATH.lock
    return run_dir / f"{study_name}.study.lock"


@contextlib.contextmanager
def study_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes that share ``path``'s file system."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_storage(url: str) -> Any:
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(url)


def make_sampler(name: str, seed: int | None, *, trials: int) -> optuna.samplers.BaseSampler:
    """NSGA-II (default), TPE or random, seeded.

    NSGA-II's first generation is random; a population of about half the trials (4 to 50)
    leaves room for at least one evolved generation in a small study.
    """
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=max(4, min(50, trials // 2)), seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"`sampler={name!r}` must be nsga2, tpe or random.")


def open_study(study_name: str, storage: str | None, run_dir: str | Path, *, sampler_name: str = "nsga2",
               seed: int = 0, trials: int = 16) -> StudyHandle:
    """Create the two-objective study (accuracy max, mean tokens min) or load it to resume.

    The sampler is seeded with ``seed`` plus the number of trials already there, so a resumed
    study does not replay the first run's random draws; a process that joins a study another
    one created also mixes in its pid, so two workers do not propose the same configurations.
    """
    run_dir = Path(run_dir)
    url = storage_url(storage, run_dir)
    lock = _lock_path(url, run_dir, study_name)
    with study_lock(lock):
        store = _open_storage(url)
        try:
            existing = optuna.load_study(study_name=study_name, storage=store)
        except KeyError:
            existing = None
        created = existing is None
        offset = 0 if existing is None else len(existing.get_trials(deepcopy=False)) + os.getpid()
        sampler = make_sampler(sampler_name, seed + offset, trials=trials)
        if created:
            study = optuna.create_study(study_name=study_name, storage=store, sampler=sampler,
                                        directions=list(DIRECTIONS))
            study.set_user_attr("objectives", ["accuracy", "mean_tokens"])
        else:
            study = optuna.load_study(study_name=study_name, storage=store, sampler=sampler)
            if [d.name.lower() for d in study.directions] != list(DIRECTIONS):
                raise optuna.exceptions.OptunaError(
                    f"Study {study_name!r} in {url} is not a search study (directions "
                    f"{[d.name for d in study.directions]}); pick another --study name.")
    return StudyHandle(study, store, url, lock, created)


def _is_interrupted(trial: optuna.trial.FrozenTrial) -> bool:
    return bool(trial.user_attrs.get("interrupted"))


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count toward N: all but WAITING ones and interrupted ones."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.state != TrialState.WAITING and not _is_interrupted(t)]


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _worker_gone(worker: str) -> bool:
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def interrupt_trial(handle: StudyHandle, trial: optuna.trial.FrozenTrial | optuna.Trial, reason: str) -> None:
    """Mark a cut-off trial FAIL "interrupted" and enqueue its parameters again (it does not count).

    Call it holding ``study_lock(handle.lock_path)`` (the lock is not re-entrant).
    """
    handle.storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
    handle.storage.set_trial_user_attr(trial._trial_id, "fail_reason", f"interrupted: {reason}")
    handle.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    handle.study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})


def _reclaim_dead(handle: StudyHandle) -> None:
    for trial in handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get(WORKER_ATTR, ""))
        if worker and _worker_gone(worker):
            log.warning("trial %d: its worker %s is gone; it will run again", trial.number, worker)
            interrupt_trial(handle, trial, f"worker {worker} is gone")


def next_trial(handle: StudyHandle, total: int) -> optuna.Trial | None:
    """A trial to run (queued ones first), or None once ``total`` trials count. Safe across processes."""
    with study_lock(handle.lock_path):
        _reclaim_dead(handle)
        if len(counted_trials(handle.study)) >= total:
            return None
        trial = handle.study.ask()
        trial.set_user_attr(WORKER_ATTR, _worker_id())
        return trial


def enqueue_seeds(handle: StudyHandle, seeds: Sequence[dict[str, Any] | None], total: int) -> int:
    """Enqueue known settings as the next trials (each once per study, within ``total``). Returns how many."""
    added = 0
    with study_lock(handle.lock_path):
        study = handle.study
        for params in seeds:
            if params is None:
                continue
            pending = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            if len(counted_trials(study)) + pending >= total:
                break
            study.enqueue_trial(params, user_attrs={"seed": True}, skip_if_exists=True)
            added += len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) - pending
    return added
