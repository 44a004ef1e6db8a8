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

__all__ = ["forget_kinds", "kind_from_models", "server_kind", "SELF_HOSTED", "thinking_switch", "tokenize",
           "single_token_id"]

log = logging.getLogger(__name__)

# The kinds whose request fields (chat_template_kwargs, stop_token_ids, /tokenize) we rely on.
SELF_HOSTED: frozenset[str] = frozenset({"vllm", "sglang", "llama.cpp"})

# owned_by constants, each from the server source named in the module docstring.
_OWNED_BY: dict[str, ServerKind] = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama.cpp"}

_kinds: dict[str, ServerKind] = {}
_token_ids: dict[tuple[str, str], int | None] = {}
_lock = threading.Lock()


def thinking_switch(kind: str, thinking: str) -> bool | None:
    """The ``enable_thinking`` a mode sends to a server of ``kind`` (None: send no switch).

    ``none`` must not think: the self-hosted servers get ``false`` whatever the model is named (vLLM
    drops template kwargs a template does not use; SGLang and llama.cpp hand them to Jinja).
    ``qwen3`` thinks on request: ``true`` anywhere (the config asked for it). ``always`` (QwQ, R1
    distills, Qwen3-Thinking) gets ``true`` on self-hosted servers, since vLLM's qwen3 parser reads the
    flag (PR #35230) and some templates close the think block unless it is set; nothing elsewhere.

    Example:
        >>> thinking_switch("vllm", "none"), thinking_switch("provider", "none"), thinking_switch("sglang", "always")
        (False, None, True)
    """
    if thinking == "qwen3":
        return True
    if kind not in SELF_HOSTED:
        return None
    return {"none": False, "always": True}.get(thinking)


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
    """Forget detected kinds and looked-up token ids (a test, or another server now on a URL)."""
    with _lock:
        _kinds.clear()
        _token_ids.clear()


def tokenize(endpoint: Endpoint, text: str, *, timeout: float = 30.0) -> list[int] | None:
    """``text``'s token ids from the server's own tokenize endpoint, in the kind's request form.

    vLLM reads ``prompt`` (``vllm/entrypoints/openai/serving_tokenization.py``, TokenizeCompletionRequest)
    and llama.cpp's server ``content`` (``tools/server/server-context.cpp``, ``handle_tokenize``; it
    answers no tokens for a body without it). Neither adds special tokens here. Other kinds (SGLang,
    providers, unknown servers): None, nothing asked. None too when the server does not answer.

    Example:
        >>> tokenize(Endpoint("openai/m", api_base="http://127.0.0.1:9/v1", server="sglang"), "</think>") is None
        True
    """
    kind = server_kind(endpoint)
    if kind not in ("vllm", "llama.cpp") or not endpoint.api_base:
        return None
    body: dict[str, Any] = ({"model": endpoint.model.partition("/")[2], "prompt": text, "add_special_tokens": False}
                            if kind == "vllm" else {"content": text})
    root = endpoint.api_base.rstrip("/").removesuffix("/v1")
    try:
        import httpx

        response = httpx.post(root + "/tokenize", json=body, timeout=timeout)
        response.raise_for_status()
        tokens = response.json().get("tokens")
    except Exception as exc:  # noqa: BLE001 - no count from the server; the caller estimates
        log.info("no /tokenize answer from %s (%s)", root, type(exc).__name__)
        return None
    return [int(t) for t in tokens] if isinstance(tokens, list) and tokens else None


def single_token_id(endpoint: Endpoint, text: str) -> int | None:
    """The id of ``text`` when the server's tokenizer makes it ONE token (``</think>`` in Qwen3), else None.

    Looked up once per server and text, and cached. Budget forcing sends it in ``stop_token_ids``
    after a "Wait", so vLLM's min-tokens mask blocks it (stop strings are not checked then). Only
    vLLM is asked: llama.cpp's server has no ``stop_token_ids`` field (nor ``min_tokens``), and
    SGLang's tokenize endpoint is not one we rely on; those keep stop strings alone.
    """
    if server_kind(endpoint) != "vllm":
        return None
    key = (str(endpoint.api_base), text)
    with _lock:
        if key in _token_ids:
            return _token_ids[key]
    tokens = tokenize(endpoint, text)
    found = tokens[0] if tokens is not None and len(tokens) == 1 else None
    if tokens is not None and found is None:
        log.info("%r is %d tokens on %s: no stop_token_ids after 'Wait' (stop strings only, as before)",
                 text, len(tokens), endpoint.api_base)
    with _lock:
        _token_ids[key] = found
    return found


def _get_json(url: str, timeout: float) -> Any:
    import httpx

    response = httpx.get(url, timeout=timeout)
    response.raise_for_status()
    return cast(Any, response.json())
