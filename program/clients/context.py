"""The context window: every request's ``max_tokens`` is clamped to what the prompt leaves.

A server answers HTTP 400 when prompt + ``max_tokens`` exceeds its context window (vLLM does for a
32K System 2 cap after a long prompt); the SCALE reference code clamps ``max_tokens`` to the window
minus the prompt. So does ``program.clients.transport``, for every request, with this module:

- **The window** is ``Endpoint.context_window`` when set, else the server's model list
  (``GET {api_base}/models``: vLLM's ``max_model_len``, or a ``context_length`` /
  ``context_window`` field), else llama.cpp's ``GET /props`` (one slot's window,
  ``default_generation_settings.n_ctx``: with ``--parallel N`` a request gets ``--ctx-size``/N,
  not the whole), asked once per server and process. Unknown: no clamp.
- **The prompt's tokens.** Cheap first: byte-level BPE never makes more tokens than UTF-8 bytes,
  so when bytes + ``max_tokens`` fit, nothing is counted and nothing changes. Otherwise the
  server's ``/tokenize`` counts it in the server kind's form (vLLM ``prompt``, llama.cpp ``content``:
  ``program.clients.servers.tokenize``), else an estimate (litellm's tokenizer, plus 10%).
- **The clamp** leaves ``margin`` tokens spare (the reference: 50) and is recorded in the ledger
  (``Call.clamp``). A prompt that leaves no room at all raises ``ContextWindowError``.

Not handled: an estimate can still be short for an unusual tokenizer; the server then says 400.

Example:
    >>> clamp_max_tokens(32768, prompt_tokens=3000, window=4096)
    1096
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from program.clients import servers
from program.clients.litellm_import import import_litellm
from program.config import Endpoint
from program.errors import ProgramError

__all__ = ["ContextWindowError", "clamp_max_tokens", "context_window", "count_prompt_tokens", "fit",
           "forget_windows", "window_source", "MESSAGE_OVERHEAD"]

log = logging.getLogger(__name__)

MESSAGE_OVERHEAD = 8  # chat-template tokens around each message (role markers, end of turn)
_windows: dict[tuple[str, str], tuple[int | None, str]] = {}
_lock = threading.Lock()


class ContextWindowError(ProgramError):
    """The prompt alone fills the server's context window: no ``max_tokens`` can be sent."""


def clamp_max_tokens(max_tokens: int, *, prompt_tokens: int, window: int, margin: int = 0) -> int:
    """``max_tokens``, lowered to what ``window`` leaves after the prompt and ``margin``.

    Example:
        >>> clamp_max_tokens(512, prompt_tokens=3000, window=4096)
        512
        >>> clamp_max_tokens(2000, prompt_tokens=4090, window=4096)
        6
        >>> try:
        ...     clamp_max_tokens(2000, prompt_tokens=4096, window=4096)
        ... except ContextWindowError as exc:
        ...     print(str(exc)[:60])
        The prompt (4096 tokens) leaves no room in the context windo
    """
    room = window - prompt_tokens - margin
    if room < 1:
        raise ContextWindowError(
            f"The prompt ({prompt_tokens} tokens) leaves no room in the context window of {window} tokens "
            f"(margin {margin}). Shorten the prompt (fewer steps in context: `context: final_value`) or serve "
            "the model with a longer window (vLLM --max-model-len).")
    return min(max_tokens, room)


def context_window(endpoint: Endpoint) -> int | None:
    """The endpoint's window: configured, else asked of the server once (None when it does not say).

    Example:
        >>> context_window(Endpoint("openai/m", api_base="http://127.0.0.1:9/v1", context_window=4096))
        4096
    """
    return window_source(endpoint)[0]


def window_source(endpoint: Endpoint) -> tuple[int | None, str]:
    """(the endpoint's window or None, where it came from): what ``context_window`` uses, and ``scale check`` prints.

    Example:
        >>> window_source(Endpoint("openai/m", api_base="http://127.0.0.1:9/v1", context_window=4096))
        (4096, 'lm.endpoint.context_window')
    """
    if endpoint.context_window is not None:
        return endpoint.context_window, "lm.endpoint.context_window"
    if not endpoint.api_base:
        return None, "no api_base (a provider API): not asked"
    key = (endpoint.api_base, endpoint.model)
    with _lock:
        if key in _windows:
            return _windows[key]
    found = _ask_window(endpoint)
    with _lock:
        _windows[key] = found
    return found


def forget_windows() -> None:
    """Forget the windows servers reported (a test, or a server restarted with another window)."""
    with _lock:
        _windows.clear()


def count_prompt_tokens(endpoint: Endpoint, prompt: str) -> int:
    """Tokens of ``prompt``: the server's ``/tokenize`` (vLLM), else litellm's count plus 10%."""
    counted = _tokenize(endpoint, prompt)
    if counted is not None:
        return counted
    litellm = import_litellm()

    name = endpoint.model.partition("/")[2] or endpoint.model
    try:
        estimate = int(litellm.token_counter(model=name, text=prompt))
    except Exception:  # noqa: BLE001 - no tokenizer at hand: characters / 3, generous for English
        estimate = len(prompt) // 3
    return int(estimate * 1.1) + 1


def fit(endpoint: Endpoint, max_tokens: int, *, prompt: str | None = None,
        messages: Sequence[dict[str, str]] | None = None, margin: int = 50) -> tuple[int, dict[str, int] | None]:
    """(max_tokens to send, the clamp record or None): the request fitted to the window.

    Example:
        >>> e = Endpoint("openai/m", api_base="http://127.0.0.1:9/v1", context_window=4096)
        >>> fit(e, 64, prompt="What is 2 + 2?")
        (64, None)
    """
    window = context_window(endpoint)
    if window is None:
        return max_tokens, None
    if prompt is None:
        texts = [str(m.get("content") or "") for m in messages or ()]
        prompt, overhead = "\n".join(texts), MESSAGE_OVERHEAD * len(texts)
    else:
        overhead = 0
    if len(prompt.encode("utf-8")) + overhead + max_tokens + margin <= window:
        return max_tokens, None  # cannot overflow: byte-level BPE makes at most one token per byte
    prompt_tokens = count_prompt_tokens(endpoint, prompt) + overhead
    sent = clamp_max_tokens(max_tokens, prompt_tokens=prompt_tokens, window=window, margin=margin)
    if sent == max_tokens:
        return max_tokens, None
    return sent, {"requested": max_tokens, "sent": sent, "window": window, "prompt_tokens": prompt_tokens}


# --- server questions ----------------------------------------------------------------------------

def _ask_window(endpoint: Endpoint) -> tuple[int | None, str]:
    try:
        listing = servers.get_json(str(endpoint.api_base).rstrip("/") + "/models", timeout=min(endpoint.timeout, 10.0))
    except Exception as exc:  # noqa: BLE001 - no list, no clamp; the server itself will say what is wrong
        log.info("no model list at %s (%s): max_tokens is not clamped", endpoint.api_base, type(exc).__name__)
        return None, f"GET /v1/models failed ({type(exc).__name__})"
    name = endpoint.model.partition("/")[2]
    models = listing.get("data") if isinstance(listing, dict) else None
    models = models if isinstance(models, list) else []
    for model in models:
        if not isinstance(model, dict) or (len(models) > 1 and model.get("id") != name):
            continue
        for key in ("max_model_len", "context_length", "context_window"):
            value = model.get(key)
            if isinstance(value, int) and value > 0:
                return value, f"GET /v1/models {key}"
    slot = _slot_window(endpoint)
    if slot is not None:
        return slot, "GET /props default_generation_settings.n_ctx (one slot's window)"
    return None, "neither GET /v1/models nor GET /props names it"


def _slot_window(endpoint: Endpoint) -> int | None:
    """llama-server's per-slot window: GET /props ``default_generation_settings.n_ctx``.

    From tools/server/server-context.cpp (llama.cpp vendored in llama-cpp-python 0.3.36),
    ``get_res_props``: ``n_ctx`` there is ``n_ctx_slot()``, the KV cache one slot may fill.
    """
    props = servers.llama_props(str(endpoint.api_base), timeout=min(endpoint.timeout, 10.0))
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    value = settings.get("n_ctx") if isinstance(settings, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _tokenize(endpoint: Endpoint, prompt: str) -> int | None:
    """The server's count of ``prompt`` in its kind's tokenize form (``program.clients.servers.tokenize``).

    A server of unknown kind is asked in vLLM's form first, then llama.cpp's, which answers a request
    without "content" with no tokens at all (200, not an error): tools/server/server-context.cpp,
    post_tokenize (llama.cpp in llama-cpp-python 0.3.36).
    """
    if not endpoint.api_base:
        return None
    kind = servers.server_kind(endpoint)
    forms = [kind] if kind in ("vllm", "llama.cpp") else ["vllm", "llama.cpp"]
    for form in forms:
        tokens = servers.tokenize(endpoint, prompt, form=form)
        if tokens is not None:
            return len(tokens)
    return None
