"""Several servers of one model behind one endpoint: litellm's Router spreads the requests.

An endpoint with ``api_bases`` (``program.config.Endpoint``) names replicas of one model, e.g.
four vLLM servers of Qwen3-32B. Every chat request of that endpoint goes through one
``litellm.Router`` per endpoint, which:

- spreads requests over the replicas (``simple-shuffle``: a random healthy replica per request);
- puts a replica that failed (refused connection, timeout, 5xx, 429) in cooldown for
  ``COOLDOWN_SECONDS`` and retries the request at once on another one (up to one retry per
  replica), so one replica going down costs no request;
- leaves the rest to ``program.clients.transport``: when every replica fails, its bounded backoff
  retries, then a ``ServerError`` naming the endpoint.

Raw text completions (s1 budget forcing over ``/v1/completions``) get the same behaviour from a
few lines here (round robin, the same cooldown, the next replica at once), because the Router's
synchronous ``text_completion`` sends the group name as the model and does not retry (litellm
1.110).

The replica that answered is recorded with each call in the ledger (``Call.server``), so a run
can show the tokens each replica served (``Ledger.by_server``).

Example:
    >>> from program.config import Endpoint
    >>> ep = Endpoint("openai/m", api_bases=("http://gpu1:8000/v1", "http://gpu2:8000/v1"))
    >>> send(ep, litellm.completion, model=ep.model, messages=[...], max_tokens=8)  # doctest: +SKIP
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from program.clients.failures import is_transient
from program.clients.litellm_import import import_litellm

if TYPE_CHECKING:
    from program.config import Endpoint

__all__ = ["send", "last_server", "COOLDOWN_SECONDS"]

COOLDOWN_SECONDS = 30.0
_GROUP = "scale-replicas"
# Connection settings live in the Router's model list, one per replica; the rest is the request.
_CONNECTION_KEYS = ("api_base", "api_key", "timeout", "num_retries", "model")

_ROUTERS: dict[tuple[Any, ...], Any] = {}
_ROUTERS_LOCK = threading.Lock()
_SERVED_BY: contextvars.ContextVar[str] = contextvars.ContextVar("scale_served_by", default="")


def last_server() -> str:
    """The replica that answered this thread's last replicated request ("" after a single-server one)."""
    return _SERVED_BY.get()


def send(endpoint: Endpoint, call: Callable[..., Any], **request: Any) -> Any:
    """``call(**request)`` (``litellm.completion`` or ``text_completion``), through the replicas if several."""
    if len(endpoint.api_bases) < 2:
        _SERVED_BY.set("")
        return call(**request)
    if getattr(call, "__name__", "") == "text_completion":
        return _failover(endpoint, call, request)
    router = _router(endpoint, request)
    body = {k: v for k, v in request.items() if k not in _CONNECTION_KEYS}
    response = router.completion(model=_GROUP, **body)
    hidden = getattr(response, "_hidden_params", None) or {}
    _SERVED_BY.set(str(hidden.get("api_base") or _base_of(endpoint, hidden.get("model_id"))))
    return response


def _base_of(endpoint: Endpoint, model_id: Any) -> str:
    """The replica URL of a Router deployment id (``replica-N``)."""
    text = str(model_id or "")
    if text.startswith("replica-") and text[8:].isdigit() and int(text[8:]) < len(endpoint.api_bases):
        return endpoint.api_bases[int(text[8:])]
    return text


_COOLING: dict[str, float] = {}  # replica -> when its cooldown ends (time.monotonic)
_TURN = itertools.count()


def _failover(endpoint: Endpoint, call: Callable[..., Any], request: dict[str, Any]) -> Any:
    """Round robin over the replicas not cooling down; a transient failure cools one and tries the next."""
    bases, turn = endpoint.api_bases, next(_TURN)
    order = [bases[(turn + i) % len(bases)] for i in range(len(bases))]
    now = time.monotonic()
    ready = [b for b in order if _COOLING.get(b, 0.0) <= now] or order  # all cooling: try them all anyway
    error: BaseException | None = None
    for base in ready:
        try:
            response = call(**{**request, "api_base": base})
        except Exception as exc:
            if not is_transient(exc):
                raise
            _COOLING[base] = time.monotonic() + COOLDOWN_SECONDS
            error = exc
            continue
        _SERVED_BY.set(base)
        return response
    assert error is not None
    raise error


def _router(endpoint: Endpoint, request: dict[str, Any]) -> Any:
    """One Router per endpoint and key (cooldowns are shared by every thread using it)."""
    key = (endpoint, request.get("api_key"))
    with _ROUTERS_LOCK:
        router = _ROUTERS.get(key)
        if router is None:
            deployments = [{"model_name": _GROUP,
                            "litellm_params": {"model": request["model"], "api_base": base,
                                               "api_key": request.get("api_key"), "timeout": endpoint.timeout},
                            "model_info": {"id": f"replica-{i}"}}
                           for i, base in enumerate(endpoint.api_bases)]
            router = import_litellm().Router(model_list=deployments, routing_strategy="simple-shuffle",
                                             num_retries=len(endpoint.api_bases) - 1, retry_after=0, allowed_fails=0,
                                             cooldown_time=COOLDOWN_SECONDS, timeout=endpoint.timeout)
            _ROUTERS[key] = router
        return router
