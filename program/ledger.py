"""The token ledger: every LM call, by stage, prompt vs completion, thinking vs answer.

DSPy reports no usage for cache hits, so a warm cache would make a method look free. Our engines
record every call here themselves, with the usage the server reported when the call was first
made (kept in our cache entry), and flag whether it was served from cache. So:

- ``ledger.totals()`` is what the work costs (identical whether the cache was cold or warm);
- ``ledger.totals(spent_only=True)`` is what this run actually paid (cache hits excluded).

Where the time goes: when the server reports it (llama.cpp ``timings``, vLLM/OpenAI
``usage.prompt_tokens_details.cached_tokens``), a call also records how many prompt tokens the
server evaluated and how many it reused from a cached prefix, and its prompt-evaluation and
generation seconds. ``prompt_reused`` is None when the server did not say; the totals then count
that call's whole prompt as evaluated, so ``prompt_evaluated + prompt_reused == prompt_tokens``.

The current ledger and stage live in context variables: a module wraps its calls in
``with stage("decompose"):`` and the engine records into whatever ledger is active.

Example:
    >>> ledger = Ledger()
    >>> with recording(ledger), stage("system1"):
    ...     call = record(prompt_tokens=10, completion_tokens=5)
    >>> ledger.totals()["completion_tokens"], call.stage
    (5, 'system1')
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Call", "Ledger", "STAGES", "record", "recording", "stage", "current_stage", "current_ledger", "captured",
           "usage_summary"]

# Known stage names, in pipeline order (others are allowed). Thinking vs answer tokens are split
# inside each stage (``thinking_tokens`` / ``answer_tokens``), e.g. System 2 or budget forcing "bf".
STAGES = (
    "rewrite", "decompose", "select", "difficulty", "system1", "system2",
    "cot", "vote", "inftythink", "inftythink_summary", "bf",
)


@dataclass(frozen=True)
class Call:
    """One LM request as the server counted it.

    ``completion_tokens`` includes ``thinking_tokens`` (servers count them as completion);
    ``answer_tokens`` is the visible rest. ``clamp``: the request's ``max_tokens`` was lowered to
    fit the context window (``program.clients.context``): requested, sent, window, prompt tokens.
    """

    stage: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    thinking_tokens: int = 0
    cached: bool = False
    seconds: float = 0.0
    thinking_estimated: bool = False
    prompt_reused: int | None = None
    prompt_seconds: float | None = None
    generation_seconds: float | None = None
    server: str = ""  # the replica that answered (``Endpoint.api_bases``); "" for a single server or a cache hit
    clamp: dict[str, int] | None = None
    # What the request sent as the chat template's enable_thinking (None: no switch sent), and a note on
    # the reply ("cut off in thinking": the cap ended it inside its thinking, so it holds no answer).
    thinking_switch: bool | None = None
    note: str = ""

    @property
    def answer_tokens(self) -> int:
        return self.completion_tokens - self.thinking_tokens

    @property
    def prompt_evaluated(self) -> int:
        """Prompt tokens the server computed: all of them unless it reported a reused prefix."""
        return self.prompt_tokens - (self.prompt_reused or 0)


@dataclass
class Ledger:
    """A thread-safe list of calls with sums by stage."""

    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def totals(self, *, spent_only: bool = False) -> dict[str, float]:
        """Sums over all calls: prompt, completion, thinking, answer, total tokens, calls, seconds."""
        return _sum([c for c in self.calls if not (spent_only and c.cached)])

    def by_stage(self, *, spent_only: bool = False) -> dict[str, dict[str, float]]:
        """``totals`` per stage name, in first-seen order."""
        stages: dict[str, list[Call]] = {}
        for c in self.calls:
            if not (spent_only and c.cached):
                stages.setdefault(c.stage, []).append(c)
        return {name: _sum(calls) for name, calls in stages.items()}

    def by_server(self) -> dict[str, dict[str, float]]:
        """``totals`` per replica that answered (calls made now; cache hits reached no server)."""
        servers: dict[str, list[Call]] = {}
        for c in self.calls:
            if not c.cached:
                servers.setdefault(c.server, []).append(c)
        return {name: _sum(calls) for name, calls in servers.items()}

    def to_records(self) -> list[dict[str, Any]]:
        return [asdict(c) for c in self.calls]

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> Ledger:
        return cls(calls=[Call(**r) for r in records])

    def extend(self, other: Ledger) -> None:
        with self._lock:
            self.calls.extend(other.calls)


def _sum(calls: list[Call]) -> dict[str, float]:
    prompt = sum(c.prompt_tokens for c in calls)
    completion = sum(c.completion_tokens for c in calls)
    thinking = sum(c.thinking_tokens for c in calls)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "thinking_tokens": thinking,
        "answer_tokens": completion - thinking,
        "total_tokens": prompt + completion,
        "calls": len(calls),
        "cached_calls": sum(1 for c in calls if c.cached),
        "seconds": round(sum(c.seconds for c in calls), 3),
        # Where the time goes (zero where the server reports nothing; see the module docstring).
        "prompt_evaluated": sum(c.prompt_evaluated for c in calls),
        "prompt_reused": sum(c.prompt_reused or 0 for c in calls),
        # Calls whose server said how many prompt tokens it reused: 0 of them means "not reported"
        # (a summary shows n/a), never "nothing reused".
        "reuse_reported_calls": sum(1 for c in calls if c.prompt_reused is not None),
        "prompt_seconds": round(sum(c.prompt_seconds or 0.0 for c in calls), 3),
        "generation_seconds": round(sum(c.generation_seconds or 0.0 for c in calls), 3),
        "timed_calls": sum(1 for c in calls if c.prompt_seconds is not None),
    }


_LEDGER: contextvars.ContextVar[Ledger | None] = contextvars.ContextVar("scale_ledger", default=None)
_STAGE: contextvars.ContextVar[str] = contextvars.ContextVar("scale_stage", default="unstaged")


def current_ledger() -> Ledger | None:
    return _LEDGER.get()


def current_stage() -> str:
    return _STAGE.get()


@contextlib.contextmanager
def recording(ledger: Ledger) -> Iterator[Ledger]:
    """Make ``ledger`` the one LM calls record into, for this thread/context."""
    token = _LEDGER.set(ledger)
    try:
        yield ledger
    finally:
        _LEDGER.reset(token)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Attribute the LM calls inside to stage ``name``."""
    token = _STAGE.set(name)
    try:
        yield
    finally:
        _STAGE.reset(token)


def record(*, prompt_tokens: int, completion_tokens: int, thinking_tokens: int = 0, model: str = "",
           cached: bool = False, seconds: float = 0.0, stage_name: str | None = None,
           thinking_estimated: bool = False, prompt_reused: int | None = None,
           prompt_seconds: float | None = None, generation_seconds: float | None = None,
           server: str = "", clamp: dict[str, int] | None = None, thinking_switch: bool | None = None,
           note: str = "") -> Call | None:
    """Record one call into the active ledger (a no-op when none is active). Returns the call.

    ``prompt_reused``: prompt tokens the server took from a cached prefix (None: not reported);
    clamped to ``[0, prompt_tokens]`` so evaluated + reused always adds up to the prompt.

    Example:
        >>> record(prompt_tokens=100, completion_tokens=5, prompt_reused=70).prompt_evaluated
        30
    """
    prompt = int(prompt_tokens or 0)
    reused = None if prompt_reused is None else max(0, min(int(prompt_reused), prompt))
    call = Call(stage=stage_name or _STAGE.get(), model=model, prompt_tokens=prompt,
                completion_tokens=int(completion_tokens or 0), thinking_tokens=int(thinking_tokens or 0),
                cached=cached, seconds=seconds, thinking_estimated=thinking_estimated, prompt_reused=reused,
                prompt_seconds=prompt_seconds, generation_seconds=generation_seconds, server=server,
                clamp=clamp, thinking_switch=thinking_switch, note=note)
    ledger = _LEDGER.get()
    if ledger is not None:
        ledger.add(call)
    return call


@contextlib.contextmanager
def captured() -> Iterator[Ledger]:
    """Record the LM calls inside into a fresh ledger, and pass them on to the active one (if any).

    Lets a module know what one part of its work cost (a plan, a step) without hiding any call
    from the caller's ledger.
    """
    outer = current_ledger()
    inner = Ledger()
    try:
        with recording(inner):
            yield inner
    finally:
        if outer is not None:
            outer.extend(inner)


def usage_summary(calls: Ledger) -> dict[str, int]:
    """The token counts of a captured ledger, for traces."""
    totals = calls.totals()
    return {key: int(totals[key]) for key in ("calls", "prompt_tokens", "completion_tokens", "thinking_tokens")}
