"""Which server answers an endpoint: vLLM, SGLang, llama.cpp's server, a provider API, or other.

Rules that differ per server (the thinking switch, prefill, the tokenize request's form, the
concurrency default, the response cache's engine tag) key on this one answer. An endpoint may
declare it (``Endpoint.server``); otherwise it is detected once per server URL from what the server
says about itself, and cached:

- ``GET /v1/models``: each model's ``owned_by`` is the server's own constant:
  vLLM ``vllm/entrypoints/openai/protocol.py`` (``ModelCard.owned_by = "vllm"``),
  SGLang ``python/sglang/srt/entrypoints/openai/protocol.py`` (``ModelCard.owned_by = "sglang"``),
  llama.cpp ``tools/server/server-context.cpp`` (``handle_models``: ``{"owned_by", "llamacpp"}``).
  OpenAI's own API answers ``openai``/``system``, so only the values above are read as a kind.
- Else ``GET /props`` with ``total_slots``: a route only llama.cpp's server has (tools/server/README.md).
- litellm's ``hosted_vllm/`` prefix is vLLM; no URL (litellm's provider default) is a ``provider``;
  a URL that names none of the above is ``other``.

``identity`` adds what the server says of its version (vLLM ``GET /version``, SGLang ``GET /get_server_info``
``version`` (python/sglang/srt/entrypoints/http_server.py; SGLang has no ``/version``), llama.cpp
``/props`` ``build_info``) and slots (llama.cpp ``/props`` ``total_slots``, its ``--parallel``).

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
from dataclasses import dataclass
from typing import Any, cast

from program.config import Endpoint, ServerKind

__all__ = ["Identity", "forget_kinds", "get_json", "identity", "kind_from_models", "llama_props", "post_json", "root",
           "server_kind", "SELF_HOSTED", "thinking_switch", "tokenize", "single_token_id"]

log = logging.getLogger(__name__)

# The kinds whose request fields (chat_template_kwargs, stop_token_ids, /tokenize) we rely on.
SELF_HOSTED: frozenset[str] = frozenset({"vllm", "sglang", "llama.cpp"})

# owned_by constants, each from the server source named in the module docstring.
_OWNED_BY: dict[str, ServerKind] = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama.cpp"}

_kinds: dict[str, ServerKind] = {}
_identities: dict[str, Identity] = {}
_token_ids: dict[tuple[str, str], int | None] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Identity:
    """What a server says it is: its kind, its version ("" when unsaid) and its slots (None when unsaid).

    Example:
        >>> Identity("llama.cpp", "b6000", 4).cache_tag(), Identity("other").cache_tag()
        ('llama.cpp b6000', '')
    """

    kind: ServerKind
    version: str = ""
    slots: int | None = None

    def cache_tag(self) -> str:
        """The part of a response-cache key naming the engine ("" when nothing is known: the keys of before)."""
        return "" if self.kind in ("other", "provider") else f"{self.kind} {self.version}".strip()


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
    if endpoint.model.partition("/")[0] == "hosted_vllm":  # litellm's provider for vLLM servers
        return "vllm"
    base = endpoint.api_base.rstrip("/")
    with _lock:
        if base in _kinds:
            return _kinds[base]
    timeout = min(endpoint.timeout, 10.0)
    try:
        listing = get_json(base + "/models", timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - unknown for now; the request itself will say what is wrong
        log.info("could not ask %s/models which server it is (%s): treated as 'other'", base, type(exc).__name__)
        return "other"
    kind: ServerKind = kind_from_models(listing) or ("llama.cpp" if _slots(llama_props(base, timeout)) else "other")
    log.info("server at %s detected as %s", base, kind)
    with _lock:
        _kinds[base] = kind
    return kind


def identity(endpoint: Endpoint) -> Identity:
    """The kind, version and slots of ``endpoint``'s (first) server, asked once per URL and cached.

    A server that is not reached is not cached (it may still be starting): the next call asks again.

    Example:
        >>> identity(Endpoint("anthropic/claude-sonnet-4"))
        Identity(kind='provider', version='', slots=None)
    """
    kind = server_kind(endpoint)
    if not endpoint.api_base or kind == "provider":
        return Identity(kind)
    base = endpoint.api_base.rstrip("/")
    with _lock:
        if base in _identities and _identities[base].kind == kind:
            return _identities[base]
    timeout, root_url = min(endpoint.timeout, 10.0), root(base)
    version, slots = "", None
    if kind in ("vllm", "sglang"):  # vllm/entrypoints/openai/api_server.py, sglang/srt/entrypoints/http_server.py
        try:
            answer = get_json(root_url + ("/version" if kind == "vllm" else "/get_server_info"), timeout=timeout)
            version = str(answer.get("version") or "") if isinstance(answer, dict) else ""
        except Exception:  # noqa: BLE001 - no version said: none in the tag
            pass
    elif kind == "llama.cpp":  # tools/server/server-context.cpp, /props
        props = llama_props(base, timeout)
        version, slots = str(props.get("build_info") or ""), _slots(props)
    found = Identity(kind, version, slots)
    if kind != "other" or endpoint.server is not None or base in _kinds:  # "other" of an unreached server: ask again
        with _lock:
            _identities[base] = found
    return found


def forget_kinds() -> None:
    """Forget detected kinds and looked-up token ids (a test, or another server now on a URL)."""
    with _lock:
        _kinds.clear()
        _identities.clear()
        _token_ids.clear()


def tokenize(endpoint: Endpoint, text: str, *, timeout: float = 30.0, form: str | None = None) -> list[int] | None:
    """``text``'s token ids from the server's own tokenize endpoint, in the kind's request form.

    vLLM reads ``prompt`` (``vllm/entrypoints/openai/serving_tokenization.py``, TokenizeCompletionRequest)
    and llama.cpp's server ``content`` (``tools/server/server-context.cpp``, ``handle_tokenize``; it
    answers no tokens for a body without it). Neither adds special tokens here. Other kinds (SGLang,
    providers, unknown servers): None, nothing asked. None too when the server does not answer or
    answers no tokens. ``form`` (``vllm`` or ``llama.cpp``) asks in that kind's form whatever the
    detected kind is: a server of unknown kind may answer one of them.

    Example:
        >>> tokenize(Endpoint("openai/m", api_base="http://127.0.0.1:9/v1", server="sglang"), "</think>") is None
        True
    """
    kind = form or server_kind(endpoint)
    if kind not in ("vllm", "llama.cpp") or not endpoint.api_base:
        return None
    body: dict[str, Any] = ({"model": endpoint.model.partition("/")[2], "prompt": text, "add_special_tokens": False}
                            if kind == "vllm" else {"content": text})
    root_url = root(endpoint.api_base)
    try:
        answer = post_json(root_url + "/tokenize", body, timeout)
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
    except Exception as exc:  # noqa: BLE001 - no count from the server; the caller estimates
        log.info("no /tokenize answer from %s (%s)", root_url, type(exc).__name__)
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


def root(api_base: str) -> str:
    """The server's root URL: ``api_base`` without ``/v1``, where ``/version``, ``/props`` and ``/tokenize`` live.

    Example:
        >>> root("http://127.0.0.1:8000/v1/")
        'http://127.0.0.1:8000'
    """
    return api_base.rstrip("/").removesuffix("/v1")


def llama_props(api_base: str, timeout: float) -> dict[str, Any]:
    """llama.cpp's ``GET /props`` (beside /v1), or {} where the server has no such route."""
    try:
        props = get_json(root(api_base) + "/props", timeout=timeout)
    except Exception:  # noqa: BLE001 - no /props: not llama.cpp's server
        return {}
    return props if isinstance(props, dict) else {}


def _slots(props: dict[str, Any]) -> int | None:
    slots = props.get("total_slots")
    return slots if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else None


def get_json(url: str, timeout: float) -> Any:
    """``GET url``'s JSON body, raising on any failure (unit tests block it: tests/conftest.py)."""
    import httpx

    response = httpx.get(url, timeout=timeout)
    response.raise_for_status()
    return cast(Any, response.json())


def post_json(url: str, body: dict[str, Any], timeout: float) -> Any:
    """``POST url`` with a JSON ``body``; its JSON answer, raising on any failure."""
    import httpx

    response = httpx.post(url, json=body, timeout=timeout)
    response.raise_for_status()
    return cast(Any, response.json())
