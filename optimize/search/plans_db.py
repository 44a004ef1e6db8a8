"""The plan cache in the study's database, so search workers on several machines plan each problem once.

``optimize.search.plans.PlanStore`` keeps plans in a file of the run directory, which only processes of
one machine share. With the study on a database server (``scale search --storage
postgresql://...``), plans go to a table of that same database, ``scale_tts_plans``, one row per
(plan key, problem), created on first use.

Planned once, not once per racing worker: a worker that misses a plan first *claims* the row (an
INSERT of an empty row; the primary key lets only one claim win) and plans it; another worker
missing the same plan waits for the claimant's plan instead of planning too. A claim older than
``claim_timeout`` seconds (its worker died or hangs) is taken over, so nobody waits forever.

``open_plan_store`` picks the store a study's workers share: this table for a database server,
else the run directory's file.

Example:
    >>> store = DatabasePlanStore("postgresql://scale@db/optuna")  # doctest: +SKIP
    >>> cache = store.view(plan_key(config))  # the same ``get``/``put`` as a PlanStore view  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from optimize.search.plans import PlanStore, PlanView
from program.scale import Plan

__all__ = ["DatabasePlanStore", "PLANS_TABLE", "open_plan_store"]

log = logging.getLogger(__name__)

PLANS_TABLE = "scale_tts_plans"


class DatabasePlanStore:
    """Plans by (plan key, problem) in a database table shared by every worker; same interface as PlanStore.

    Args:
        url: an SQLAlchemy URL (the study's ``--storage``).
        claim_timeout: seconds after which another worker's unfinished claim is taken over.
        poll: seconds between looks while waiting for another worker's plan.
    """

    def __init__(self, url: str, *, claim_timeout: float = 600.0, poll: float = 0.2) -> None:
        import sqlalchemy as sa

        self.url, self.claim_timeout, self.poll = url, claim_timeout, poll
        self.path = url  # what PlanView shows
        self._engine = sa.create_engine(url, pool_pre_ping=True)
        meta = sa.MetaData()
        self._table = sa.Table(
            PLANS_TABLE, meta,
            sa.Column("plan_key", sa.String(64), primary_key=True),
            sa.Column("problem_sha", sa.String(64), primary_key=True),
            sa.Column("problem", sa.Text, nullable=False),
            sa.Column("plan", sa.Text, nullable=True),  # NULL while claimed and not yet planned
            sa.Column("claimed_by", sa.String(255), nullable=False),
            sa.Column("claimed_at", sa.Float, nullable=False),
        )
        meta.create_all(self._engine, checkfirst=True)
        self._plans: dict[tuple[str, str], Plan] = {}
        self._lock = threading.Lock()
        self._worker = f"{socket.gethostname()}:{os.getpid()}"
        self.hits = 0
        self.misses = 0

    def view(self, key: str) -> PlanView:
        """The ``PlanCache`` (get/put by problem) of one plan key, for ``Scale(plan_cache=...)``."""
        return PlanView(self, key)  # type: ignore[arg-type]  # duck-typed: get/put/path

    def __len__(self) -> int:
        import sqlalchemy as sa

        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self._table)
                                    .where(self._table.c.plan.is_not(None))).scalar_one())

    def get(self, key: str, problem: str) -> Plan | None:
        """The stored plan; None means: plan it now and ``put`` it (this worker holds the claim)."""
        with self._lock:
            plan = self._plans.get((key, problem))
        if plan is not None:
            self.hits += 1
            return plan
        sha = _sha(problem)
        while True:
            row = self._row(key, sha)
            if row is not None and row.plan is not None:
                plan = Plan.from_dict(json.loads(row.plan))
                with self._lock:
                    self._plans[(key, problem)] = plan
                self.hits += 1
                return plan
            if row is None and self._claim(key, sha, problem):
                self.misses += 1
                return None
            if row is not None and time.time() - row.claimed_at > self.claim_timeout and \
                    self._take_over(key, sha, row.claimed_at):
                log.warning("plan of %r: %s claimed it %.0f s ago and never finished; planning it here",
                            problem[:60], row.claimed_by, time.time() - row.claimed_at)
                self.misses += 1
                return None
            time.sleep(self.poll)  # another worker is planning this problem

    def put(self, key: str, problem: str, plan: Plan) -> None:
        import sqlalchemy as sa

        data = json.dumps(plan.to_dict(), ensure_ascii=False, default=str)
        with self._lock:
            self._plans[(key, problem)] = plan
        t = self._table
        with self._engine.begin() as conn:
            done = conn.execute(sa.update(t).where(t.c.plan_key == key, t.c.problem_sha == _sha(problem))
                                .values(plan=data)).rowcount
            if not done:
                conn.execute(sa.insert(t).values(plan_key=key, problem_sha=_sha(problem), problem=problem, plan=data,
                                                 claimed_by=self._worker, claimed_at=time.time()))

    # -- internals ---------------------------------------------------------------------------
    def _row(self, key: str, sha: str) -> Any:
        import sqlalchemy as sa

        t = self._table
        with self._engine.connect() as conn:
            return conn.execute(sa.select(t.c.plan, t.c.claimed_by, t.c.claimed_at)
                                .where(t.c.plan_key == key, t.c.problem_sha == sha)).first()

    def _claim(self, key: str, sha: str, problem: str) -> bool:
        import sqlalchemy as sa

        try:
            with self._engine.begin() as conn:
                conn.execute(sa.insert(self._table).values(plan_key=key, problem_sha=sha, problem=problem, plan=None,
                                                           claimed_by=self._worker, claimed_at=time.time()))
            return True
        except sa.exc.IntegrityError:  # another worker claimed it first
            return False

    def _take_over(self, key: str, sha: str, seen_at: float) -> bool:
        import sqlalchemy as sa

        t = self._table
        with self._engine.begin() as conn:  # compare-and-set: only one waiter takes a stale claim
            return bool(conn.execute(sa.update(t).where(t.c.plan_key == key, t.c.problem_sha == sha,
                                                        t.c.claimed_at == seen_at, t.c.plan.is_(None))
                                     .values(claimed_by=self._worker, claimed_at=time.time())).rowcount)


def _sha(problem: str) -> str:
    return hashlib.sha256(problem.encode("utf-8")).hexdigest()


def open_plan_store(storage_url: str, run_dir: str | Path) -> Any:
    """The plan cache every worker of a study reaches: the study's database server, else ``plans.jsonl``.

    A study on a database server (PostgreSQL, MySQL) may have workers on several machines, so its
    plans go to a table of that database (``DatabasePlanStore``); a sqlite or journal study is
    shared only on one machine, and so is its ``<run_dir>/plans.jsonl``.

    Example:
        >>> open_plan_store("sqlite:///runs/x/optuna.db", "runs/x")
        PlanStore('runs/x/plans.jsonl')
    """
    from optimize.search.storage import is_server_url

    if is_server_url(storage_url):
        return DatabasePlanStore(storage_url)
    return PlanStore(Path(run_dir) / "plans.jsonl")
