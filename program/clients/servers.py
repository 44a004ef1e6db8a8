"""Which server answers an endpoint: vLLM, SGLang, llama.cpp's server, a provider API, or other.

Rules that differ per server (the thinking switch, prefill, the tokenize request's form, the
concurrency default) key on this one answer. An endpoint may declare it (``Endpoint.server``);
otherwise it is detected once per server URL from what the server says about itself, and cached:

- ``GET /v1/models``: each model's ``owned_by`` is the server's own constant:
  vLLM ``vllm/entrypoints/openai/protocol.py`` (``ModelCard.owned_by = "vllm"``),
  SGLang ``python/sglang/srt/entrypoints/openai/protocol.py`` (``ModelCard.owned_by = "sglang"``),
  llama.cpp ``tools/server/server-context.cpp`` (``handle_models``: ``{"owned_by", "llamacpp"}``).
  OpenAI's own API answers ``openai``/``system``, so only the values above are read as a kind.
- No URL (litellm's provider default) is a ``provider``; a URL that names none of the above is ``other``.

Example:
    >>> from program.config import Endpoint
    >>> server_kind(Endpoint("openai/m", api_base="http://127.0.0.1:9/v1", server="sglang"))
    'sglang'
    >>> server_kind(Endpoint("anthropic/claude-sonnet-4"))
    'provider'
    >>> kind_from_models({"data": [{"id": "served-32b", "owned_by": "vllm", "max_model_len": 32768}]})
    'vllm'
"""

from __future__ import annotations

import logging
import threading
from typing import Any, cast

from program.config import Endpoint, ServerKind

__all__ = ["forget_kinds", "kind_from_models", "server_kind", "SELF_HOSTED"]

log = logging.getLogger(__name__)

# The kinds whose request fields (chat_template_kwargs, stop_token_ids, /tokenize) we rely on.
SELF_HOSTED: frozenset[str] = frozenset({"vllm", "sglang", "llama.cpp"})

# owned_by constants, each from the server source named in the module docstring.
_OWNED_BY: dict[str, ServerKind] = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama.cpp"}

_kinds: dict[str, ServerKind] = {}
_lock = threading.Lock()


def kind_from_models(listing: Any) -> ServerKind | None:
    """The kind a ``/v1/models`` answer names through ``owned_by``, or None when it names none we know.

    Example:
        >>> kind_from_models({"data": [{"id": "m", "owned_by": "openai"}]}) is None
        True
    """
    models = listing.get("data") if isinstance(listing, dict) else None
    for model in models if isinstance(models, list) else ():
        owner = model.get("owned_by") if isinstance(model, dict) else None
        if isinstance(owner, str) and owner in _OWNED_BY:
            return _OWNED_BY[owner]
    return None


def server_kind(endpoint: Endpoint) -> ServerKind:
    """The endpoint's server kind: declared, else detected once per URL and cached.

    An unreachable server is not cached: the next call asks again (it may still be starting).
    """
    if endpoint.server is not None:
        return endpoint.server
    if not endpoint.api_base:
        return "provider"
    base = endpoint.api_base.rstrip("/")
    with _lock:
        if base in _kinds:
            return _kinds[base]
    try:
        listing = _get_json(base + "/models", timeout=min(endpoint.timeout, 10.0))
    except Exception as exc:  # noqa: BLE001 - unknown for now; the request itself will say what is wrong
        log.info("could not ask %s/models which server it is (%s): treated as 'other'", base, type(exc).__name__)
        return "other"
    kind: ServerKind = kind_from_models(listing) or "other"
    log.info("server at %s detected as %s", base, kind)
    with _lock:
        _kinds[base] = kind
    return kind


def forget_kinds() -> None:
    """Forget detected kinds (a test, or another server now listening on a URL)."""
    with _lock:
        _kinds.clear()


def _get_json(url: str, timeout: float) -> Any:
    import httpx

    response = httpx.get(url, timeout=timeout)
    response.raise_for_status()
    return cast(Any, response.json())
