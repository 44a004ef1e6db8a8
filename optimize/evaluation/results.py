"""The per-problem results file: one JSON line per finished problem, safe to interrupt and resume.

A run appends one line per problem as soon as it is graded, under a lock, flushed and fsynced, so
a crash or Ctrl-C loses nothing already finished. Each line carries the fingerprint of the program
config that produced it; a rerun skips the problems already finished with the same fingerprint.

Reading is forgiving: a truncated last line (the process was killed mid-write) is dropped with a
warning and cut from the file, so the next append starts on a clean line; an unreadable line in
the middle is skipped with a warning. When a problem appears more than once (a failed attempt that
a later run retried), the latest line wins.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "results.jsonl"
    >>> ResultsFile(path).append(ProblemResult(id="p1", benchmark="toy", gold="4", answer="4", correct=True))
    >>> [r.id for r in ResultsFile(path).read()]
    ['p1']
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ProblemResult", "ResultsFile", "config_fingerprint", "legacy_fingerprint", "latest_by_id", "load_results"]

log = logging.getLogger(__name__)

# Endpoint settings that change where or how patiently we ask, not what the model answers:
# moving the server or raising a timeout must not invalidate finished results.
_NOT_IN_FINGERPRINT = frozenset({"api_base", "api_key_env", "timeout", "retries", "embedded"})


@dataclass
class ProblemResult:
    """One graded problem, as stored in a results line.

    ``totals`` counts every LM call (the true cost, cache hits included); ``spent`` only the calls
    that reached a server. ``stages`` holds ``totals`` per stage name. ``error`` is
    ``"Type: message"`` when the problem failed (then ``correct`` is False).
    """

    id: str
    benchmark: str = ""
    problem: str = ""
    gold: str = ""
    answer: str | None = None
    extracted: str | None = None
    correct: bool = False
    reason: str = ""
    solution: str = ""
    trace: dict[str, Any] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    llm_seconds: float = 0.0
    error: str | None = None
    error_type: str | None = None
    fingerprint: str = ""
    grader_version: str = ""
    finished_at: str = ""

    @property
    def failed(self) -> bool:
        return self.error is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProblemResult:
        """Build from a parsed line; keys this version does not know are ignored (newer files).

        A known key holding the wrong type raises ``ValueError`` (a damaged or hand-edited line
        is skipped by the reader instead of breaking every summary later).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key, value in values.items():
            expected = _FIELD_TYPES.get(key, (str,))
            if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
                raise ValueError(f"field {key!r} holds a {type(value).__name__}")
        sums = [values.get("totals", {}), values.get("spent", {}), *values.get("stages", {}).values()]
        if not all(isinstance(s, dict) and all(_is_number(v) for v in s.values()) for s in sums):
            raise ValueError("token counts (totals, spent, stages) must be numbers")
        return cls(**values)


_OPTIONAL_TEXT = (str, type(None))
_FIELD_TYPES: dict[str, tuple[type, ...]] = {  # every other field is a string
    "answer": _OPTIONAL_TEXT, "extracted": _OPTIONAL_TEXT, "error": _OPTIONAL_TEXT, "error_type": _OPTIONAL_TEXT,
    "correct": (bool,), "trace": (dict,), "calls": (list,), "stages": (dict,), "totals": (dict,),
    "spent": (dict,), "wall_seconds": (int, float), "llm_seconds": (int, float),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def config_fingerprint(config: Any) -> str:
    """A short hash of what a result depends on: the fields of a program config that differ from their defaults.

    Accepts a config dataclass or plain data holding them. A field left at its default is left out
    (also inside nested configs), so adding an optional field to a config does not orphan the
    results recorded before it. Connection details (``api_base``, timeouts, retries, the key's
    variable name, ``embedded``) are left out too. Results recorded under the old fingerprint,
    which hashed every field, still resume: see ``legacy_fingerprint``.

    Example:
        >>> from program.config import ProgramConfig, ScaleConfig
        >>> config_fingerprint(ProgramConfig()) == config_fingerprint(ProgramConfig(scale=ScaleConfig(threshold=0.5)))
        True
        >>> config_fingerprint(ProgramConfig()) == config_fingerprint(ProgramConfig(method="cot"))
        False
    """
    return _digest(_essential(config))


def legacy_fingerprint(config: Any) -> str:
    """The fingerprint results were marked with before defaults were left out: every field hashed.

    Only read, to resume results recorded before the change (``optimize.evaluation.evaluate``
    accepts it beside ``config_fingerprint`` and marks the reused lines with the new one).

    Example:
        >>> from program.config import ProgramConfig
        >>> legacy_fingerprint(ProgramConfig()) == config_fingerprint(ProgramConfig())
        False
    """
    return _digest(_without_connection(_legacy(config)))


# The fields each config had when fingerprints last hashed every field (issue 25). A field added
# since is left out of a legacy fingerprint while at its default: results recorded before it
# existed ran as its default does. (Endpoint.max_concurrency came after; a later one needs no entry.)
_LEGACY_FIELDS: dict[str, frozenset[str]] = {name: frozenset(fields.split()) for name, fields in {
    "ProgramConfig": "method lm scale vote inftythink",
    "LMConfig": "endpoint stages system1 system2 forcing embedded",
    "Endpoint": "model api_base api_key_env timeout retries context_window api_bases",
    "ModeConfig": "endpoint temperature top_p top_k max_tokens thinking thinking_budget reasoning_effort",
    "ForcingConfig": "num_waits wait final_answer transport template answer_max_tokens min_tokens_after_wait "
                     "force_empty_answer",
    "ScaleConfig": "threshold num_candidates candidate_temperature rewrite difficulty_mode difficulty_retries "
                   "fallback_difficulty last_step_score context step_layout max_steps range_min_steps "
                   "range_max_steps difficulty_source attempt_confidence attempt_samples attempt_temperature "
                   "confidence_window learned_path system2_kind",
    "VoteConfig": "samples temperature adaptive stop_rule confidence weight lm max_tokens",
    "InftyThinkConfig": "segment_tokens max_iterations summary_max_tokens",
}.items()}


def _legacy(value: Any) -> Any:
    """``value`` as ``dataclasses.asdict`` gave it then: every field, but none added since at its default."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        known = _LEGACY_FIELDS.get(type(value).__name__)
        return {f.name: _legacy(getattr(value, f.name)) for f in dataclasses.fields(value)
                if known is None or f.name in known or not _is_default(f, getattr(value, f.name))}
    if isinstance(value, dict):
        return {k: _legacy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_legacy(v) for v in value)
    return value


def _digest(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _essential(value: Any) -> Any:
    """``value`` as plain data: config dataclasses without their default fields or connection details."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kept = {}
        for f in dataclasses.fields(value):
            if f.name in _NOT_IN_FINGERPRINT:
                continue
            current = getattr(value, f.name)
            essential = _essential(current)
            if _is_default(f, current) or (essential == {} and _has_default(f)):
                continue  # a nested config all at its defaults counts as absent, as a new optional one would
            kept[f.name] = essential
        return kept
    if isinstance(value, dict):
        return {k: _essential(v) for k, v in value.items() if k not in _NOT_IN_FINGERPRINT}
    if isinstance(value, (list, tuple)):
        return [_essential(v) for v in value]
    return value


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _is_default(f: dataclasses.Field[Any], value: Any) -> bool:
    """A leaf at its field's default (a nested config is compared field by field instead)."""
    if dataclasses.is_dataclass(value):
        return False
    if f.default is not dataclasses.MISSING:
        return bool(value == f.default)
    return f.default_factory is not dataclasses.MISSING and bool(value == f.default_factory())


def _without_connection(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_connection(v) for k, v in value.items() if k not in _NOT_IN_FINGERPRINT}
    if isinstance(value, (list, tuple)):
        return [_without_connection(v) for v in value]
    return value


class ResultsFile:
    """A JSONL results file: thread-safe durable appends and a forgiving reader."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, result: ProblemResult) -> None:
        """Write one line and make it durable before returning (flush + fsync)."""
        # default=str: a trace may hold objects JSON does not know; a readable string beats a crash.
        data = result.to_dict()
        try:
            line = (json.dumps(data, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (model text can carry one): \u escapes keep it exact
            line = (json.dumps(data, ensure_ascii=True, default=str) + "\n").encode("ascii")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())

    def read(self) -> list[ProblemResult]:
        """Every readable line in file order; repairs a truncated last line (see module docs)."""
        if not self.path.exists():
            return []
        with self._lock:
            data = self.path.read_bytes()
            *complete, tail = data.split(b"\n")
            results = [r for number, line in enumerate(complete, 1) if (r := self._parse(line, number))]
            if tail.strip():
                self._repair_tail(tail, len(complete) + 1, len(data), results)
        return results

    def _parse(self, line: bytes, number: int) -> ProblemResult | None:
        if not line.strip():
            return None
        try:
            data = json.loads(line)
            if not isinstance(data, dict) or "id" not in data:
                raise ValueError("not a result object")
            return ProblemResult.from_dict(data)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            log.warning("%s:%d: unreadable results line skipped (%s)", self.path, number, exc)
            return None

    def _repair_tail(self, tail: bytes, number: int, size: int, results: list[ProblemResult]) -> None:
        """A last line without its newline: finish it if it parses, else cut it off."""
        try:
            data = json.loads(tail)
            result = ProblemResult.from_dict(data) if isinstance(data, dict) and "id" in data else None
        except (ValueError, RecursionError):
            result = None
        if result is not None:
            results.append(result)
            with self.path.open("ab") as handle:
                handle.write(b"\n")
            return
        log.warning("%s:%d: truncated last line (an interrupted write) ignored and removed; "
                    "that problem will run again", self.path, number)
        os.truncate(self.path, size - len(tail))


def latest_by_id(results: Iterable[ProblemResult],
                 fingerprint: str | Collection[str] | None = None) -> dict[str, ProblemResult]:
    """The last line per problem id, optionally only lines with ``fingerprint`` (or one of several).

    Example:
        >>> rows = [ProblemResult("a", error="ServerError: down"), ProblemResult("a", correct=True)]
        >>> latest_by_id(rows)["a"].correct
        True
    """
    accepted = {fingerprint} if isinstance(fingerprint, str) else None if fingerprint is None else set(fingerprint)
    latest: dict[str, ProblemResult] = {}
    for result in results:
        if accepted is None or result.fingerprint in accepted:
            latest[result.id] = result
    return latest


def load_results(path: str | Path, fingerprint: str | None = None) -> list[ProblemResult]:
    """The latest result per problem in a results file, in first-seen order.

    With no ``fingerprint``, a file holding several configs uses the most recent line's one (and
    says so), so a summary never mixes two configs.
    """
    results = ResultsFile(path).read()
    if fingerprint is None and results:
        fingerprint = results[-1].fingerprint
        others = {r.fingerprint for r in results} - {fingerprint}
        if others:
            log.warning("%s holds results of %d other config(s); using the latest one (%s)",
                        path, len(others), fingerprint)
    return list(latest_by_id(results, fingerprint).values())
