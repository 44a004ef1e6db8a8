"""Short raw HTTP requests to a user's server, and what its replies say: the tools of ``scale check``.

The preflight (``program.clients.preflight``) must see a reply as the server sent it (which field
the reasoning came in, which usage fields exist), so it asks over plain HTTP (httpx) rather than
through ``program.clients.transport``, whose cache, retries and litellm parsing would hide that.
Nothing here is recorded in the ledger. The API key is read from the endpoint's variable at call
time and sent as a header only; no reply or error text here ever contains it.

Example:
    >>> where_reasoning({"choices": [{"message": {"content": None, "reasoning": "2 + 3 is 5"}}]})
    'reasoning'
    >>> where_reasoning({"choices": [{"message": {"content": "<think>hmm</think>5"}}]})
    'tags'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from program.config import Endpoint

__all__ = ["Reply", "cached_tokens", "get", "post", "root", "served_name", "where_reasoning"]


@dataclass(frozen=True)
class Reply:
    """One answer: HTTP ``status`` (0: no answer at all), the JSON body (None if not JSON), or ``error``."""

    status: int
    body: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and isinstance(self.body, dict)

    def why(self) -> str:
        """What went wrong, in one line (the server's own message where it sent one)."""
        if self.status == 0:
            return self.error
        message = _message(self.body) or self.error
        return f"HTTP {self.status}" + (f": {message[:200]}" if message else "")


def root(endpoint: Endpoint) -> str:
    """The server's root URL (``api_base`` without ``/v1``): ``program.clients.servers.root``."""
    from program.clients import servers

    return servers.root(str(endpoint.api_base))


def served_name(endpoint: Endpoint) -> str:
    """The model name a request body carries: the litellm name without its provider prefix."""
    return endpoint.model.partition("/")[2] or endpoint.model


def get(endpoint: Endpoint, url: str) -> Reply:
    """``GET url`` with the endpoint's key and timeout (at most 30 s: a question about the server)."""
    return _send(endpoint, "GET", url, None, min(endpoint.timeout, 30.0))


def post(endpoint: Endpoint, path: str, body: dict[str, Any]) -> Reply:
    """``POST api_base + path`` (``/chat/completions``, ``/completions``) with the endpoint's key and timeout."""
    return _send(endpoint, "POST", str(endpoint.api_base).rstrip("/") + path, body, endpoint.timeout)


def where_reasoning(body: Any) -> str | None:
    """Where a chat reply carries its thinking: ``reasoning`` or ``reasoning_content`` (the field,
    filled), ``tags`` (``<think>``/``</think>`` in the content), or None (no thinking came back)."""
    message = _message_of(body)
    for name in ("reasoning", "reasoning_content"):
        value = message.get(name)
        if isinstance(value, str) and value.strip():
            return name
    content = message.get("content")
    if isinstance(content, str) and ("<think>" in content or "</think>" in content):
        return "tags"
    return None


def cached_tokens(body: Any) -> tuple[int, str] | None:
    """(prompt tokens the server says it reused, the field that said so), or None when it says nothing.

    llama.cpp's server: ``timings.cache_n``; vLLM and SGLang: ``usage.prompt_tokens_details.cached_tokens``
    (the same fields ``program.clients.transport.server_work`` reads).

    Example:
        >>> cached_tokens({"usage": {"prompt_tokens": 90}}) is None
        True
        >>> cached_tokens({"usage": {"prompt_tokens_details": {"cached_tokens": 64}}})
        (64, 'usage.prompt_tokens_details.cached_tokens')
    """
    if not isinstance(body, dict):
        return None
    timings = body.get("timings")
    if isinstance(timings, dict) and isinstance(timings.get("cache_n"), int):
        return int(timings["cache_n"]), "timings.cache_n"
    details = (body.get("usage") or {}).get("prompt_tokens_details") if isinstance(body.get("usage"), dict) else None
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        return int(details["cached_tokens"]), "usage.prompt_tokens_details.cached_tokens"
    return None


def _message_of(body: Any) -> dict[str, Any]:
    choices = body.get("choices") if isinstance(body, dict) else None
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = first.get("message")
    return message if isinstance(message, dict) else {}


def _message(body: Any) -> str:
    """An error body's message: OpenAI's ``{"error": {"message"}}``, vLLM's ``{"message"}``, FastAPI's ``detail``."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    for key in ("message", "detail"):
        if body.get(key):
            return str(body[key])
    return str(error or "")


def _send(endpoint: Endpoint, method: str, url: str, body: dict[str, Any] | None, timeout: float) -> Reply:
    import httpx

    headers = {}
    if endpoint.api_key_env and os.environ.get(endpoint.api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[endpoint.api_key_env]}"
    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - an unreachable server is an answer of its own
        return Reply(0, error=f"no answer from {url} ({type(exc).__name__})")
    try:
        payload = response.json()
    except ValueError:
        payload = None
    return Reply(response.status_code, payload, "" if payload is not None else response.text[:200])
