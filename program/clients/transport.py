"""The one door to LLM servers: chat and text completions through litellm.

Every request of the project passes here, which is where three promises are kept:

- **Retries are bounded.** Connection errors, timeouts, HTTP 429 and 5xx are retried with
  exponential backoff (tenacity) ``endpoint.retries`` times, then a ``ServerError`` says which
  server failed and how to check it. Other errors (400, 401, 404) fail at once: retrying a bad
  request only costs time.
- **Usage survives the cache.** Responses are cached by us (not by DSPy, whose cache hits report
  no usage) together with the usage the server reported, so token accounting is the same whether
  or not the cache was warm. The ledger flags cache hits so a run can also report what it paid.
- **No server gets more than its limit.** Each attempt holds a slot of the server's process-wide
  limiter (``program.clients.limits``) while it is on the wire; the time spent waiting for the slot
  is not counted in the call's seconds.
- **A cached answer names its engine.** The cache key includes the server's kind and version when
  it says them (llama.cpp's ``/props``, vLLM's ``/version``), so after the embedded engine changes
  (or a server is upgraded) on the same URL, answers cached from the old one are not served.
- **Secrets stay in the environment.** The API key is read from the variable the endpoint names,
  at call time, and is never part of a cache key, a log line or a saved file.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import tenacity

from program import ledger
from program.clients import context, limits, replicas, servers
from program.clients.failures import is_transient, refuses_logprobs
from program.clients.litellm_import import import_litellm
from program.clients.replies import reasoning_text, server_work, split_thinking, token_logprobs, valid_unicode
from program.config import ConfigError, Endpoint
from program.errors import LogprobsRefusedError, ServerError

# split_thinking and server_work live in program.clients.replies; named here too, where callers found them
__all__ = ["Completion", "chat", "text", "split_thinking", "set_cache_enabled", "server_work", "RETRY_WAIT"]

log = logging.getLogger(__name__)

# Backoff between retries: 1 s, 2 s, 4 s ... capped at 30 s. Tests shrink it.
RETRY_WAIT = {"multiplier": 1.0, "max": 30.0}
_CACHE_ENABLED = os.environ.get("SCALE_NO_CACHE", "") == ""
_NO_KEY = "sk-no-key"  # OpenAI-compatible local servers want some key; they ignore it.


@dataclass(frozen=True)
class Completion:
    """One server reply: visible text, thinking text, and the server's token counts."""

    text: str
    thinking: str = ""
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    thinking_tokens: int = 0
    thinking_estimated: bool = False
    cached: bool = False
    clamp: dict[str, int] | None = None
    prompt_reused: int | None = None
    prompt_seconds: float | None = None
    generation_seconds: float | None = None
    # Per generated token {"token", "logprob", "top": [[token, logprob], ...]} when asked for
    # (``chat(logprobs=k)``); None when not asked or the server sent none.
    logprobs: list[dict[str, Any]] | None = None
    # "cut off in thinking": the cap ended a thinking reply before its end of thinking, so all its
    # text is thinking and it holds no answer (``chat(thinks=True)``).
    note: str = ""


CUT_OFF = "cut off in thinking"


# Repeated samples (``scale compare --samples K``): sample k > 0 shifts every request's seed and is
# part of the cache key, so it is a new draw, and a rerun of the same sample is a cache hit.
# Sample 0 changes nothing: it is what ``scale eval`` runs and caches.
_SAMPLE: contextvars.ContextVar[int] = contextvars.ContextVar("scale_sample", default=0)
SAMPLE_SEED_STRIDE = 1_000_003


@contextlib.contextmanager
def sample(index: int) -> Iterator[None]:
    """Make every request inside a draw of repeated sample ``index`` (0: the default sample).

    Example:
        >>> with sample(2):
        ...     sampled_seed(5)
        2000011
    """
    if index < 0:
        raise ValueError(f"`index={index}` must be non-negative.")
    token = _SAMPLE.set(index)
    try:
        yield
    finally:
        _SAMPLE.reset(token)


def sampled_seed(seed: int | None) -> int | None:
    """``seed`` as the current repeated sample sends it (unchanged for sample 0)."""
    k = _SAMPLE.get()
    return seed if k == 0 else (seed or 0) + k * SAMPLE_SEED_STRIDE


def _with_sample(request: dict[str, Any]) -> dict[str, Any]:
    k = _SAMPLE.get()
    return request if k == 0 else {**request, "sample": k}


def set_cache_enabled(enabled: bool) -> None:
    """Turn our response cache on or off for this process (``SCALE_NO_CACHE=1`` starts it off)."""
    global _CACHE_ENABLED
    _CACHE_ENABLED = enabled


def chat(endpoint: Endpoint, messages: list[dict[str, str]], *, max_tokens: int, temperature: float = 0.0,
         top_p: float | None = None, top_k: int | None = None, seed: int | None = None,
         stop: list[str] | None = None, extra_body: dict[str, Any] | None = None,
         reasoning_effort: str | None = None, thinking_tokens_are_completion: bool = False,
         logprobs: int | None = None, thinks: bool = False) -> Completion:
    """A chat completion. Thinking comes from the server's reasoning field or a ``<think>`` section.

    The reasoning field is read under both names: ``reasoning_content`` (SGLang, llama.cpp, older
    vLLM) and ``reasoning`` (vLLM since the rename; litellm maps it, but not when a server sends
    ``reasoning_content: null`` beside it).

    ``thinks``: the mode thinks (``qwen3``/``always``). A reply the cap cut off inside its thinking
    (``finish_reason`` length, no ``</think>``, and no reasoning field or an empty content) is then
    all thinking: its text moves to ``thinking`` and the call is noted ``cut off in thinking`` (vLLM's
    qwen3 parser before PR #35230 returned such a reply as content; it must never be graded).

    ``logprobs=k`` asks for each generated token's logprob and its ``k`` most likely alternatives
    (OpenAI ``logprobs``/``top_logprobs``; llama-server returns them always, llama-cpp-python's
    server only with ``--logits_all true``).

    ``thinking_tokens_are_completion``: count every completion token as thinking (a forced
    thinking segment sent through assistant prefill).

    Example:
        >>> chat(Endpoint("openai/m", api_base="http://127.0.0.1:9/v1"), [{"role": "user", "content": "1+1?"}],
        ...      max_tokens=8)  # doctest: +SKIP
    """
    max_tokens, clamp = context.fit(endpoint, max_tokens, messages=messages)  # never past the window
    params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
    body = dict(extra_body or {})
    if top_k is not None:
        body["top_k"] = top_k
    _optional(params, top_p=top_p, seed=sampled_seed(seed), stop=stop or None, reasoning_effort=reasoning_effort)
    if logprobs is not None:
        params.update(logprobs=True, top_logprobs=logprobs)
    if body:
        params["extra_body"] = body
    request = {"kind": "chat", "model": endpoint.model, "api_base": endpoint.api_base, "messages": messages, **params}
    if thinks:
        request["thinks"] = True

    def call() -> Completion:
        litellm = import_litellm()
        response = replicas.send(endpoint, litellm.completion, model=endpoint.model, messages=messages,
                                 **_connection(endpoint), **params)
        choice = response.choices[0]
        message = choice.message
        raw = valid_unicode(message.content or "")
        visible, thinking = split_thinking(raw)
        reasoning = valid_unicode(reasoning_text(message))
        cut_off = (thinks and choice.finish_reason == "length" and "</think>" not in raw
                   and (not reasoning or not visible.strip()))
        if cut_off:
            visible, thinking = "", thinking or visible
        thinking = reasoning + thinking
        usage = response.usage
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        details = getattr(usage, "completion_tokens_details", None)
        reported = getattr(details, "reasoning_tokens", None) if details is not None else None
        if cut_off:
            n_thinking, estimated = completion, False
        elif thinking_tokens_are_completion:
            n_thinking, estimated = completion, False
        elif reported:
            n_thinking, estimated = int(reported), False
        elif thinking:
            # The server sent thinking text but no separate count: split by characters, flagged.
            share = len(thinking) / max(1, len(thinking) + len(visible))
            n_thinking, estimated = round(completion * share), True
        else:
            n_thinking, estimated = 0, False
        return Completion(text=visible, thinking=thinking, finish_reason=choice.finish_reason or "stop",
                          prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                          completion_tokens=completion, thinking_tokens=n_thinking, thinking_estimated=estimated,
                          clamp=clamp, logprobs=token_logprobs(choice) if logprobs is not None else None,
                          note=CUT_OFF if cut_off else "", **server_work(response))

    return _cached_call(endpoint, request, call)


def text(endpoint: Endpoint, prompt: str, *, max_tokens: int, temperature: float = 0.0,
         top_p: float | None = None, top_k: int | None = None, seed: int | None = None,
         stop: list[str] | None = None, thinking: bool = False, extra_body: dict[str, Any] | None = None,
         ) -> Completion:
    """A raw text completion (/v1/completions): the prompt is sent exactly as given.

    ``thinking=True`` counts the generated tokens as thinking (a budget-forcing thinking segment).
    ``extra_body``: server-specific fields (vLLM's ``min_tokens``).
    """
    provider, _, name = endpoint.model.partition("/")
    if provider not in ("openai", "text-completion-openai", "hosted_vllm"):
        raise ConfigError(f"Raw text continuation needs an OpenAI-compatible /v1/completions server; "
                          f"model {endpoint.model!r} is not one. Use transport 'prefill' or thinking 'effort'.")
    max_tokens, clamp = context.fit(endpoint, max_tokens, prompt=prompt)  # never past the window
    params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
    _optional(params, top_p=top_p, seed=sampled_seed(seed), stop=stop or None)
    body = dict(extra_body or {})
    if top_k is not None:
        body["top_k"] = top_k
    if body:
        params["extra_body"] = body
    request = {"kind": "text", "model": endpoint.model, "api_base": endpoint.api_base, "prompt": prompt, **params}

    def call() -> Completion:
        litellm = import_litellm()
        response = replicas.send(endpoint, litellm.text_completion, model=f"text-completion-openai/{name}",
                                 prompt=prompt, **_connection(endpoint), **params)
        choice = response.choices[0]
        usage = response.usage
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        return Completion(text=valid_unicode(choice.text or ""), finish_reason=choice.finish_reason or "stop",
                          prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                          completion_tokens=completion, thinking_tokens=completion if thinking else 0,
                          clamp=clamp, **server_work(response))

    return _cached_call(endpoint, request, call)


# --- internals -------------------------------------------------------------------------------

def _optional(params: dict[str, Any], **values: Any) -> None:
    params.update({k: v for k, v in values.items() if v is not None})


def _connection(endpoint: Endpoint) -> dict[str, Any]:
    key = _NO_KEY
    if endpoint.api_key_env:
        key = os.environ.get(endpoint.api_key_env) or ""
        if not key:
            raise ConfigError(f"The API key variable {endpoint.api_key_env} is not set. "
                              f"Export it (export {endpoint.api_key_env}=...) or pass --api-key-env NAME.")
    connection: dict[str, Any] = {"api_key": key, "timeout": endpoint.timeout, "num_retries": 0}
    if endpoint.api_base:
        connection["api_base"] = endpoint.api_base
    return connection


def _failure_name(state: tenacity.RetryCallState) -> str:
    """The failed attempt's exception type, for the retry warning (tenacity's ``outcome`` may be None)."""
    error = state.outcome.exception() if state.outcome is not None else None
    return type(error).__name__ if error is not None else "no exception"


def _cached_call(endpoint: Endpoint, request: dict[str, Any], call: Any) -> Completion:
    cache_key = {"_fn_identifier": "scale_tts.transport", **_with_sample(request)}
    if _CACHE_ENABLED:
        engine = servers.identity(endpoint).cache_tag()
        if engine:  # a server that says nothing keeps the keys it had before engines were told apart
            cache_key["engine"] = engine
        import dspy

        hit = dspy.cache.get(cache_key)
        if isinstance(hit, dict) and hit.get("_scale_completion") == 1:
            result = Completion(**{k: v for k, v in hit.items() if k != "_scale_completion"}, cached=True)
            _record(endpoint, result, seconds=0.0, switch=_switch(request))
            return result

    limiter = limits.limiter_for(endpoint)
    waited = 0.0

    def attempt() -> Completion:
        nonlocal waited
        with limiter.slot() as wait:
            waited += wait
            return call()

    started = time.monotonic()
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(endpoint.retries + 1),
        wait=tenacity.wait_exponential(multiplier=RETRY_WAIT["multiplier"], max=RETRY_WAIT["max"]),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=lambda state: log.warning("LLM call to %s failed (%s); retry %d of %d",
                                               endpoint.api_base or endpoint.model,
                                               _failure_name(state),
                                               state.attempt_number, endpoint.retries),
        reraise=True,
    )
    try:
        result = retrying(attempt)
    except Exception as exc:
        if refuses_logprobs(exc):
            raise LogprobsRefusedError(f"The LLM server {endpoint.api_base or endpoint.model} does not return token "
                                       f"logprobs ({_short(exc)}).") from exc
        if is_transient(exc):
            raise ServerError(
                f"The LLM server {endpoint.api_base or endpoint.model} failed after {endpoint.retries + 1} "
                f"attempts ({type(exc).__name__}: {_short(exc)}). Check that it is running "
                f"(curl {endpoint.api_base or '<api_base>'}/models) or raise `retries`/`timeout`.") from exc
        raise
    seconds = time.monotonic() - started - waited
    _record(endpoint, result, seconds=seconds, server=replicas.last_server(), switch=_switch(request))
    if _CACHE_ENABLED and result.finish_reason != "error":
        import dspy

        stored = {k: v for k, v in asdict(result).items() if k != "cached"}
        dspy.cache.put(cache_key, {"_scale_completion": 1, **stored})
    return result


def _switch(request: dict[str, Any]) -> bool | None:
    """The ``enable_thinking`` a request sent (None: none), for the trace."""
    kwargs = (request.get("extra_body") or {}).get("chat_template_kwargs") or {}
    value = kwargs.get("enable_thinking")
    return value if isinstance(value, bool) else None


def _record(endpoint: Endpoint, result: Completion, *, seconds: float, server: str = "",
            switch: bool | None = None) -> None:
    ledger.record(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                  thinking_tokens=result.thinking_tokens, model=endpoint.model, cached=result.cached,
                  seconds=seconds, thinking_estimated=result.thinking_estimated, server=server,
                  clamp=result.clamp, prompt_reused=result.prompt_reused, prompt_seconds=result.prompt_seconds,
                  generation_seconds=result.generation_seconds, thinking_switch=switch, note=result.note)


def _short(exc: BaseException, limit: int = 300) -> str:
    message = str(exc).replace("\n", " ")
    return message if len(message) <= limit else message[:limit] + "..."
