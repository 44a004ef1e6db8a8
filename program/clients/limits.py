"""How many requests each server gets at once: one limiter per server, shared by the whole process.

Concurrency inside a problem (``program.concurrent.run_all``: the k decompositions, the up-front
ratings, vote and agreement samples) sends several requests at once. Every request passes
``program.clients.transport``, which holds a slot of its server's ``Limiter`` while the request
is on the wire (not while it backs off between retries). The limiters live here, one per server
URL (per replica group for ``Endpoint.api_bases``), so every worker thread of a process shares
them: ``--workers 4`` with k = 8 still sends a 4-slot server at most 4 requests. Separate
processes (two ``scale search`` runs) each have their own limiters and together may send more.

The limit is ``Endpoint.max_concurrency``, else what the server says, else a default by kind:

==================  =====================================================================
llama.cpp           ``total_slots`` of ``GET /props`` (tools/server/README.md): its ``--parallel``
vLLM, SGLang        256: vLLM's ``max_num_seqs`` default (vllm/engine/arg_utils.py; 1024 on
                    70 GiB GPUs); past its batch a server queues, so a higher limit gains nothing
provider API        64 (no ``api_base``): rate limits answer 429, which the transport retries
Ollama, other       no limit, and one request at a time inside a problem: exactly as before this
                    module (``--workers N`` sends N at once). Set ``max_concurrency`` to the
                    server's slots (Ollama: ``OLLAMA_NUM_PARALLEL``) to run a problem's calls at once
==================  =====================================================================

The kind, version and slots come from ``program.clients.servers.identity`` (the one place that
detects a server's kind). The identity is also part of the response-cache key, so answers cached
from one engine are not served as another's.

Example:
    >>> from program.config import Endpoint
    >>> limiter_for(Endpoint("openai/m", api_base="http://127.0.0.1:9/v1", max_concurrency=3)).limit
    3
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from program.clients import servers
from program.config import Endpoint

__all__ = ["DEFAULTS", "Limiter", "for_lm", "forget", "free", "limiter_for", "width"]

log = logging.getLogger(__name__)

# Requests at once by server kind, when the server does not report its slots (see the table above);
# None: no limit, one request at a time inside a problem.
DEFAULTS: dict[str, int | None] = {"llama.cpp": 1, "vllm": 256, "sglang": 256, "provider": 64, "other": None}


class Limiter:
    """A counting semaphore that also says how many of its slots are free (for vote rounds).

    ``limit`` None: no limit (a server of unknown kind): nothing waits, and ``width`` is 1, so the
    calls of a problem are sent one at a time, as before concurrency inside a problem.

    Example:
        >>> limiter = Limiter(2)
        >>> with limiter.slot():
        ...     limiter.free()
        1
    """

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"a limiter needs at least one slot, got {limit}")
        self.limit = limit
        self._busy = 0
        self._changed = threading.Condition()

    @property
    def width(self) -> int:
        """How many calls of one problem may run at once."""
        return self.limit or 1

    def free(self) -> int:
        """Slots free right now (a snapshot: other threads may take them); 1 without a limit."""
        if self.limit is None:
            return 1
        with self._changed:
            return self.limit - self._busy

    @contextlib.contextmanager
    def slot(self) -> Iterator[float]:
        """Hold one slot, waiting for it; yields the seconds spent waiting."""
        started = time.monotonic()
        with self._changed:
            while self.limit is not None and self._busy >= self.limit:
                self._changed.wait()
            self._busy += 1
        try:
            yield time.monotonic() - started
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify()


_LIMITERS: dict[tuple[str, ...], Limiter] = {}
_LOCK = threading.Lock()


def limiter_for(endpoint: Endpoint) -> Limiter:
    """The process-wide limiter of ``endpoint``'s server (its replicas share one, ``limit`` each).

    The first endpoint naming a server sets its limit; another one naming the same server with a
    different ``max_concurrency`` is told so in the log and shares the first one's limiter.
    """
    key = endpoint.api_bases or (endpoint.api_base or endpoint.model,)
    with _LOCK:
        found = _LIMITERS.get(key)
    if found is not None:
        wanted = None if endpoint.max_concurrency is None else endpoint.max_concurrency * len(key)
        if wanted is not None and found.limit != wanted:
            log.warning("max_concurrency=%d for %s is ignored: this process already limits that server to %s",
                        endpoint.max_concurrency, key[0],
                        "nothing" if found.limit is None else found.limit // len(key))
        return found
    per_server = endpoint.max_concurrency or _default_limit(endpoint)
    with _LOCK:
        return _LIMITERS.setdefault(key, Limiter(None if per_server is None else per_server * len(key)))


def for_lm(lm: Any) -> Limiter | None:
    """The limiter of a ``dspy.LM`` of ours: its engine's endpoint's, or the engine's own (a test
    double's ``limiter``); None for an LM with neither (it is sent one request at a time)."""
    engine = getattr(lm, "engine", None)
    endpoint = getattr(engine, "endpoint", None)
    if isinstance(endpoint, Endpoint):
        return limiter_for(endpoint)
    own = getattr(engine, "limiter", None)
    return own if isinstance(own, Limiter) else None


def width(lm: Any) -> int:
    """How many requests ``lm``'s server takes at once (1 when unknown).

    Example:
        >>> width(object())
        1
    """
    limiter = for_lm(lm)
    return 1 if limiter is None else limiter.width


def free(lm: Any) -> int:
    """Slots of ``lm``'s server free right now (at least 1; 1 when unknown): a vote round's size.

    Example:
        >>> free(object())
        1
    """
    limiter = for_lm(lm)
    return 1 if limiter is None else max(1, limiter.free())


def forget() -> None:
    """Forget every limiter and server identity (a test, or servers restarted with other slots)."""
    with _LOCK:
        _LIMITERS.clear()
    servers.forget_kinds()


# --- internals -------------------------------------------------------------------------------

def _default_limit(endpoint: Endpoint) -> int | None:
    identity = servers.identity(endpoint)
    return identity.slots or DEFAULTS.get(identity.kind)
