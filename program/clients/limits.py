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
hosted API          64 (no ``api_base``): rate limits answer 429, which the transport retries
Ollama, unknown     no limit, and one request at a time inside a problem: exactly as before this
                    module (``--workers N`` sends N at once). Set ``max_concurrency`` to the
                    server's slots (Ollama: ``OLLAMA_NUM_PARALLEL``) to run a problem's calls at once
==================  =====================================================================

The kind comes from ``server_identity``: the litellm provider prefix, llama.cpp's ``/props``,
and the ``owned_by`` of ``GET /v1/models`` (vLLM ``vllm/entrypoints/openai/protocol.py``:
``"vllm"``; SGLang ``sglang/srt/entrypoints/openai/protocol.py``: ``"sglang"``; llama.cpp
``tools/server/server-context.cpp``: ``"llamacpp"``). The identity (kind and version) is also
part of the response-cache key, so answers cached from one engine are not served as another's.

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
from dataclasses import dataclass
from typing import Any

from program.config import Endpoint

__all__ = ["DEFAULTS", "Identity", "Limiter", "for_lm", "forget", "free", "limiter_for", "server_identity", "width"]

log = logging.getLogger(__name__)

# Requests at once by server kind, when the server does not report its slots (see the table above);
# None: no limit, one request at a time inside a problem.
DEFAULTS: dict[str, int | None] = {"llama.cpp": 1, "vllm": 256, "sglang": 256, "api": 64, "ollama": None,
                                   "unknown": None}
_OWNED_BY = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama.cpp"}


@dataclass(frozen=True)
class Identity:
    """What a server says it is: its kind, its version ("" when unsaid) and its slots (None when unsaid)."""

    kind: str
    version: str = ""
    slots: int | None = None

    def cache_tag(self) -> str:
        """The part of a response-cache key naming the engine ("" when nothing is known: today's keys)."""
        return "" if self.kind in ("unknown", "api") else f"{self.kind} {self.version}".strip()


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
_IDENTITIES: dict[str, Identity] = {}
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


def server_identity(endpoint: Endpoint) -> Identity:
    """The kind, version and slots of ``endpoint``'s (first) server, asked once per process.

    A stand-in for the real-servers detection (issue 24): the provider prefix, then llama.cpp's
    ``/props``, then the model list's ``owned_by``. A server that answers none of it is ``unknown``.
    """
    provider = endpoint.model.partition("/")[0]
    if not endpoint.api_base:
        return Identity("api")
    if provider == "hosted_vllm":
        kind: str | None = "vllm"
    elif provider in ("ollama", "ollama_chat"):
        kind = "ollama"
    else:
        kind = None
    base = endpoint.api_base
    with _LOCK:
        known = _IDENTITIES.get(base)
    if known is not None:
        return known
    identity = _ask(endpoint, kind)
    with _LOCK:
        return _IDENTITIES.setdefault(base, identity)


def forget() -> None:
    """Forget every limiter and server identity (a test, or servers restarted with other slots)."""
    with _LOCK:
        _LIMITERS.clear()
        _IDENTITIES.clear()


# --- internals -------------------------------------------------------------------------------

def _default_limit(endpoint: Endpoint) -> int | None:
    identity = server_identity(endpoint)
    return identity.slots or DEFAULTS.get(identity.kind)


def _root(api_base: str) -> str:
    base = api_base.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


def _get(url: str, timeout: float) -> Any:
    import httpx

    response = httpx.get(url, timeout=timeout)
    response.raise_for_status()
    return response.json()


def _ask(endpoint: Endpoint, kind: str | None) -> Identity:
    base, timeout = str(endpoint.api_base), min(endpoint.timeout, 10.0)
    try:
        props = _get(_root(base) + "/props", timeout)
    except Exception:  # noqa: BLE001 - no /props: not llama.cpp's server
        props = None
    slots = props.get("total_slots") if isinstance(props, dict) else None
    if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0:
        return Identity("llama.cpp", str(props.get("build_info") or ""), slots)
    if kind in (None, "vllm"):
        try:
            listing = _get(base.rstrip("/") + "/models", timeout)
        except Exception as exc:  # noqa: BLE001 - the first request will say what is wrong
            log.info("no model list at %s (%s): server kind unknown", base, type(exc).__name__)
            listing = None
        models = listing.get("data") if isinstance(listing, dict) else None
        owners = {m.get("owned_by") for m in models or [] if isinstance(m, dict)}
        kind = kind or next((_OWNED_BY[o] for o in owners if o in _OWNED_BY), None)
    version = ""
    if kind == "vllm":  # vllm/entrypoints/openai/api_server.py: GET /version -> {"version": ...}
        with contextlib.suppress(Exception):
            version = str(_get(_root(base) + "/version", timeout).get("version") or "")
    return Identity(kind or "unknown", version)
