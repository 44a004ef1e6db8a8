"""What a server's reply says, read from litellm's objects or plain JSON: the answer and its thinking,
the server's own timings and reused prompt tokens, and per-token logprobs.

``program.clients.transport`` builds its ``Completion`` from these. Each reader names the server
source it follows; a field a server does not send reads as None, never as 0.

Example:
    >>> split_thinking("<think>hmm</think>42")
    ('42', 'hmm')
"""

from __future__ import annotations

from typing import Any

__all__ = ["split_thinking", "server_work", "token_logprobs", "reasoning_text", "valid_unicode"]


def split_thinking(content: str, open_tag: str = "<think>", close_tag: str = "</think>") -> tuple[str, str]:
    """Split ``<think>...</think>answer`` into (answer, thinking). An unclosed section is all thinking.

    Example:
        >>> split_thinking("<think>hmm</think>42")
        ('42', 'hmm')
    """
    start = content.find(open_tag)
    end = content.find(close_tag)
    if end != -1 and (start == -1 or start < end):
        begin = start + len(open_tag) if start != -1 else 0
        return content[end + len(close_tag):].lstrip(), content[begin:end].strip()
    if start != -1:
        return content[:start].strip(), content[start + len(open_tag):].strip()
    return content, ""


def server_work(response: Any) -> dict[str, Any]:
    """What a reply says about the server's work: prompt tokens reused from a cached prefix, seconds
    spent evaluating the prompt and generating (each None when the server does not say).

    Read from llama.cpp's ``timings`` (``cache_n``: prompt tokens reused from the slot's cache,
    ``prompt_ms``, ``predicted_ms``; llama-server's ``server_slot_stats::to_json`` in
    tools/server/server-common.cpp, llama.cpp vendored in llama-cpp-python 0.3.36, sent on every
    non-streaming completion) or the OpenAI/vLLM ``usage.prompt_tokens_details.cached_tokens``.

    Example:
        >>> server_work({"timings": {"prompt_n": 30, "cache_n": 70, "prompt_ms": 400.0, "predicted_ms": 900.0}})
        {'prompt_reused': 70, 'prompt_seconds': 0.4, 'generation_seconds': 0.9}
        >>> server_work({"usage": {"prompt_tokens": 90, "prompt_tokens_details": {"cached_tokens": 64}}})
        {'prompt_reused': 64, 'prompt_seconds': None, 'generation_seconds': None}
    """
    timings = _field(response, "timings")
    reused = _number(_field(timings, "cache_n"))
    if reused is None:
        reused = _number(_field(_field(_field(response, "usage"), "prompt_tokens_details"), "cached_tokens"))
    prompt_ms, predicted_ms = _number(_field(timings, "prompt_ms")), _number(_field(timings, "predicted_ms"))
    return {"prompt_reused": None if reused is None else int(reused),
            "prompt_seconds": None if prompt_ms is None else round(prompt_ms / 1000.0, 4),
            "generation_seconds": None if predicted_ms is None else round(predicted_ms / 1000.0, 4)}


def token_logprobs(choice: Any) -> list[dict[str, Any]] | None:
    """A chat choice's per-token logprobs as plain data, or None when the server sent none.

    Example:
        >>> token_logprobs({"logprobs": {"content": [{"token": "7", "logprob": -0.2,
        ...     "top_logprobs": [{"token": "7", "logprob": -0.2}, {"token": "3", "logprob": -1.9}]}]}})
        [{'token': '7', 'logprob': -0.2, 'top': [['7', -0.2], ['3', -1.9]]}]
    """
    content = _field(_field(choice, "logprobs"), "content")
    if not content:
        return None
    return [{"token": str(_field(item, "token")), "logprob": float(_field(item, "logprob")),
             "top": [[str(_field(top, "token")), float(_field(top, "logprob"))]
                     for top in (_field(item, "top_logprobs") or [])]}
            for item in content]


# --- fields of a reply ------------------------------------------------------------------------

def reasoning_text(message: Any) -> str:
    """The reply's reasoning field under either name (litellm keeps undeclared fields in its extras)."""
    for name in ("reasoning_content", "reasoning"):
        value = _field(message, name)
        if not value:
            value = (_field(message, "provider_specific_fields") or {}).get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` or ``obj.name``; pydantic models keep fields they do not declare in ``model_extra``."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    value = getattr(obj, name, None)
    if value is None:
        value = (getattr(obj, "model_extra", None) or {}).get(name)
    return value


def _number(value: Any) -> float | None:
    """A non-negative number, else None (a server's missing or malformed field)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return None
    return float(value)


def valid_unicode(text: str) -> str:
    """Model text with lone surrogates (a JSON reply may escape them) replaced by "?".

    Such text cannot be encoded: re-fed in a prompt (budget forcing, later steps) it would fail
    as if the server had, and no file could store it.
    """
    return text.encode("utf-8", "replace").decode("utf-8")
