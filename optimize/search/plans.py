"""A plan cache on disk, shared by every trial, resumed study and worker process of one search.

SCALE's decomposition and up-front difficulty scores do not depend on tau or the solvers'
budgets (``program.scale.Scale.plan``), so a search computes them once per problem and every
trial reuses them. Plans are kept in a JSONL file in the run directory, one line per plan:
appends are serialised by a file lock, and a miss re-reads lines other processes added since,
so a second worker or a resumed study reuses them too.

A plan is only valid for the settings that made it: what the program says its plans depend on
(``Scale.plan_settings()``, the one list of plan knobs), the stages' LM and sampling, their
endpoint, and the program's own state (demos and instructions of a compiled program).
``plan_key`` hashes them; each trial's program reads the store through
``program.plan_cache = store.view(plan_key(program, config, program_state))``.

Example:
    >>> import tempfile
    >>> from program.config import ProgramConfig
    >>> from program.methods import build_program
    >>> from program.testing import scripted_systems
    >>> config = ProgramConfig()
    >>> program = build_program(config, scripted_systems(str, str))
    >>> store = PlanStore(f"{tempfile.mkdtemp()}/plans.jsonl")
    >>> cache = store.view(plan_key(program, config))
    >>> cache.get("What is 2 + 2?") is None
    True
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from optimize.evaluation.results import config_fingerprint
from program.config import ProgramConfig
from program.scale import Plan

__all__ = ["PlanStore", "PlanView", "Planner", "plan_key"]

log = logging.getLogger(__name__)

class Planner(Protocol):
    """A program that plans (``program.scale.Scale`` and the cascade): it names what its plans depend on."""

    def plan_settings(self) -> dict[str, Any]: ...


def plan_key(program: Planner, config: ProgramConfig, program_state: str = "") -> str:
    """A short hash of everything ``program``'s plans depend on: its plan settings, the stages' LM
    and endpoint (from ``config``, the program's config), and its tuned state.

    Example:
        >>> from program.config import ProgramConfig, ScaleConfig
        >>> from program.methods import build_program
        >>> from program.testing import scripted_systems
        >>> def key(**scale):
        ...     config = ProgramConfig(scale=ScaleConfig(**scale))
        ...     return plan_key(build_program(config, scripted_systems(str, str)), config)
        >>> key() == key(threshold=0.9) == key(system2_kind="vote")
        True
        >>> key() == key(num_candidates=3)
        False
    """
    lm = config.lm
    return config_fingerprint({"plan": program.plan_settings(), "stages": lm.stages,
                               "endpoint": lm.endpoint_for(lm.stages), "program": program_state})


class PlanStore:
    """Plans by (plan key, problem), in memory and appended to a JSONL file (safe across processes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._plans: dict[tuple[str, str], Plan] = {}
        self._offset = 0  # bytes of the file already read
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def view(self, key: str) -> PlanView:
        """The ``PlanCache`` (get/put by problem) of one plan key, for ``Scale(plan_cache=...)``."""
        return PlanView(self, key)

    def __repr__(self) -> str:
        return f"PlanStore({str(self.path)!r})"

    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._plans)

    def get(self, key: str, problem: str) -> Plan | None:
        with self._lock:
            plan = self._plans.get((key, problem))
            if plan is None:  # another process may have planned it since we last looked
                self._refresh()
                plan = self._plans.get((key, problem))
            if plan is None:
                self.misses += 1
            else:
                self.hits += 1
            return plan

    def put(self, key: str, problem: str, plan: Plan) -> None:
        line = json.dumps({"key": key, "problem": problem, "plan": plan.to_dict()}, ensure_ascii=False,
                          default=str) + "\n"
        with self._lock, self._file_lock():
            self._plans[(key, problem)] = plan
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _refresh(self) -> None:
        """Read lines appended since the last read (by us or another process)."""
        if not self.path.is_file():
            return
        with self._file_lock(), self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        complete = data[:data.rfind(b"\n") + 1]  # a half-written last line waits for the next read
        self._offset += len(complete)
        for raw in complete.splitlines():
            try:
                entry = json.loads(raw)
                self._plans.setdefault((entry["key"], entry["problem"]), Plan.from_dict(entry["plan"]))
            except (ValueError, KeyError, TypeError, RecursionError) as exc:  # one bad line must not cost every plan
                log.warning("%s: skipping an unreadable plan line (%s: %s)", self.path, type(exc).__name__, exc)


class PlanView:
    """One plan key's slice of a ``PlanStore``: the get/put-by-problem object ``Scale`` takes."""

    def __init__(self, store: PlanStore, key: str) -> None:
        self.store, self.key = store, key

    def get(self, problem: str) -> Plan | None:
        return self.store.get(self.key, problem)

    def put(self, problem: str, plan: Plan) -> None:
        self.store.put(self.key, problem, plan)

    def __repr__(self) -> str:
        return f"PlanView({str(self.store.path)!r}, key={self.key!r})"

