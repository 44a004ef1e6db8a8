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
  machine is such an interrupted trial (sqlite and journal storages).
- On a server database (``postgresql://``, ``mysql://``) workers may sit on several machines, so
  a dead worker is found by Optuna's heartbeat instead: each running trial records a heartbeat
  every ``heartbeat`` seconds; one silent for longer than the grace period is marked FAIL by the
  next worker that asks for a trial, and Optuna's ``RetryFailedTrialCallback`` queues a copy. The
  stale trial then no longer counts (its retry does), and a worker that finds N reached while
  trials still run elsewhere waits until they finish or go stale, so a killed worker's trial is
  always redone by someone.

The lock serialises creating trials: on a server database it is a PostgreSQL advisory lock (it
reaches every machine, and dies with its holder's connection); elsewhere a file beside the
storage (sqlite, journal), else in the run directory, which serialises processes that share a
file system.

Storage URLs (``optimize.search.storage``): None = ``sqlite:///<run_dir>/optuna.db``; ``journal:PATH`` = a
journal file; anything else is an SQLAlchemy URL for Optuna's ``RDBStorage``.

Example:
    >>> import tempfile
    >>> run_dir = tempfile.mkdtemp()
    >>> handle = open_study("demo", None, run_dir)
    >>> trial = next_trial(handle, total=8)  # None once 8 trials exist
    >>> trial.number, handle.url == f"sqlite:///{run_dir}/optuna.db"
    (0, True)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from optimize.search.storage import is_postgres, is_server_url, open_storage, safe_url, service_errors, storage_url
from program.errors import ServiceError

__all__ = ["StudyHandle", "open_study", "storage_url", "study_lock", "next_trial", "interrupt_trial",
           "counted_trials", "enqueue_seeds", "make_sampler", "make_pruner", "directions_of", "heartbeat",
           "is_server_url", "safe_url", "WORKER_ATTR", "HEARTBEAT_SECONDS"]

log = logging.getLogger(__name__)

WORKER_ATTR = "worker"
# accuracy up, mean tokens per problem down
DIRECTIONS: tuple[Literal["maximize", "minimize"], ...] = ("maximize", "minimize")
HEARTBEAT_SECONDS = 60.0  # default heartbeat interval on a server database; grace period: 3 intervals


@dataclass
class StudyHandle:
    """An open study with the lock that guards creating trials in it.

    ``heartbeat``: seconds between a running trial's heartbeats (None: no heartbeats, dead workers
    are found by pid on this machine).
    """

    study: optuna.Study
    storage: Any
    url: str
    lock_path: Path
    created: bool
    heartbeat: float | None = None

    @property
    def name(self) -> str:
        return self.study.study_name

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """The study's lock: a PostgreSQL advisory lock on a server database, else a file lock."""
        if is_postgres(self.url):
            return _advisory_lock(self.storage.engine, self.name)
        return study_lock(self.lock_path)


@contextlib.contextmanager
def _advisory_lock(engine: Any, study_name: str) -> Iterator[None]:
    """``pg_advisory_lock`` on its own connection: every machine sees it; a dead holder's lock is freed."""
    from sqlalchemy import text

    key = int.from_bytes(hashlib.sha256(f"scale-tts study {study_name}".encode()).digest()[:8], "big", signed=True)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


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


def make_sampler(name: str, seed: int | None, *, trials: int) -> optuna.samplers.BaseSampler:
    """NSGA-II (default), TPE or random, seeded (the budget form's constraint is each trial's own).

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


@contextlib.contextmanager
def _creation_lock(url: str, lock_path: Path, study_name: str) -> Iterator[None]:
    """Held while the storage's tables and the study are created (two creators at once crash)."""
    if not is_postgres(url):
        with study_lock(lock_path):
            yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with _advisory_lock(engine, study_name):
            yield
    finally:
        engine.dispose()


def make_pruner(name: str, *, chunk: int, problems: int) -> optuna.pruners.BasePruner:
    """The budget form's pruner: ``halving``, ``hyperband`` (steps are problems done, in chunks), ``wilcoxon``
    (steps are problems, values their 0/1), or ``none``.

    Example:
        >>> type(make_pruner("hyperband", chunk=5, problems=30)).__name__
        'HyperbandPruner'
    """
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=chunk, reduction_factor=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=chunk, max_resource=problems, reduction_factor=2)
    if name == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=chunk)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"`pruner={name!r}` must be halving, hyperband, wilcoxon or none.")


def directions_of(budget: float | None) -> list[Literal["maximize", "minimize"]]:
    """accuracy up (budget form: alone, tokens are a constraint), else accuracy up and mean tokens down."""
    return ["maximize"] if budget is not None else list(DIRECTIONS)


def open_study(study_name: str, storage: str | None, run_dir: str | Path, *, sampler_name: str = "nsga2",
               seed: int = 0, trials: int = 16, heartbeat: float | None = None, join: bool = False,
               budget: float | None = None, pruner: optuna.pruners.BasePruner | None = None) -> StudyHandle:
    """Create the study or load it to resume: two objectives (accuracy max, mean tokens min), or with
    ``budget`` one (accuracy max, each trial's tokens a constraint; ``pruner`` stops losers).

    The sampler is seeded with ``seed`` plus the number of trials already there, so a resumed
    study does not replay the first run's random draws; a process that joins a study another
    one created also mixes in its pid, so two workers do not propose the same configurations.

    ``heartbeat``: seconds between trial heartbeats; default ``HEARTBEAT_SECONDS`` on a server
    database, none elsewhere. ``join``: the study must exist already (``scale search --worker``).
    """
    run_dir = Path(run_dir)
    url = storage_url(storage, run_dir)
    if heartbeat is None and is_server_url(url):
        heartbeat = HEARTBEAT_SECONDS
    lock_path = _lock_path(url, run_dir, study_name)
    with service_errors(url), _creation_lock(url, lock_path, study_name):
        store = open_storage(url, heartbeat)
        try:
            existing = optuna.load_study(study_name=study_name, storage=store)
        except KeyError:
            existing = None
        if existing is None and join:
            raise ServiceError(f"No study {study_name!r} in {safe_url(url)} to join. Start it first with "
                               f"scale search --study {study_name} --storage URL (without --worker).")
        created = existing is None
        offset = 0 if existing is None else len(existing.get_trials(deepcopy=False)) + os.getpid()
        sampler = make_sampler(sampler_name, seed + offset, trials=trials)
        directions = directions_of(budget)
        if created:
            study = optuna.create_study(study_name=study_name, storage=store, sampler=sampler,
                                        directions=directions, pruner=pruner)
            study.set_user_attr("objectives", ["accuracy", "mean_tokens"][:len(directions)])
            if budget is not None:
                study.set_user_attr("budget", budget)
        else:
            study = optuna.load_study(study_name=study_name, storage=store, sampler=sampler, pruner=pruner)
            form = f"the budget form at {budget:g} tokens" if budget is not None else "the front form"
            if [d.name.lower() for d in study.directions] != directions or study.user_attrs.get("budget") != budget:
                raise ServiceError(
                    f"Study {study_name!r} in {safe_url(url)} is not a search study of {form} (directions "
                    f"{[d.name for d in study.directions]}, budget {study.user_attrs.get('budget')}); pick another "
                    "--study name, or rerun it with its own --budget.")
    return StudyHandle(study, store, url, lock_path, created, heartbeat)


def _is_interrupted(trial: optuna.trial.FrozenTrial) -> bool:
    return bool(trial.user_attrs.get("interrupted"))


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count toward N: all but WAITING, interrupted and stale-then-retried ones."""
    trials = study.get_trials(deepcopy=False)
    # the heartbeat's retries (RetryFailedTrialCallback) list every failed attempt they stand for
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    return [t for t in trials if t.state != TrialState.WAITING and not _is_interrupted(t)
            and not (t.state == TrialState.FAIL and t.number in retried)]


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

    Call it holding ``handle.lock()`` (the lock is not re-entrant).
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


def next_trial(handle: StudyHandle, total: int, *, poll: float = 1.0) -> optuna.Trial | None:
    """A trial to run (queued ones first), or None once ``total`` trials count. Safe across processes.

    With heartbeats, N reached while other workers' trials still run is not the end: one of them
    may die, and its retry must be run by someone, so this waits (polling every ``poll`` s) until
    they finish or go stale.
    """
    while True:
        with handle.lock():
            if handle.heartbeat:
                optuna.storages.fail_stale_trials(handle.study)
            else:
                _reclaim_dead(handle)
            counted = counted_trials(handle.study)
            if len(counted) < total:
                trial = handle.study.ask()
                trial.set_user_attr(WORKER_ATTR, _worker_id())
                if handle.heartbeat:  # a beat at once: the trial is never stale before its thread starts
                    handle.storage.record_heartbeat(trial._trial_id)
                return trial
            if not handle.heartbeat or not any(t.state == TrialState.RUNNING for t in counted):
                return None
        time.sleep(poll)


@contextlib.contextmanager
def heartbeat(handle: StudyHandle, trial: optuna.Trial) -> Iterator[None]:
    """Record the trial's heartbeat every ``handle.heartbeat`` seconds while the block runs (no-op without).

    Example:
        >>> with heartbeat(handle, trial):  # doctest: +SKIP
        ...     values = objective(trial)
    """
    if not handle.heartbeat:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(handle.heartbeat):
            try:
                handle.storage.record_heartbeat(trial._trial_id)
            except Exception as exc:  # a database hiccup: the next beat may get through
                log.warning("trial %d: heartbeat failed (%s: %s)", trial.number, type(exc).__name__, exc)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def enqueue_seeds(handle: StudyHandle, seeds: Sequence[dict[str, Any] | None], total: int) -> int:
    """Enqueue known settings as the next trials (each once per study, within ``total``). Returns how many."""
    added = 0
    with handle.lock():
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
