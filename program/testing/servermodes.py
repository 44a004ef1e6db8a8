"""How the fake server imitates vLLM, SGLang and llama.cpp's server: each rule from the server's source.

``program.testing.fakeserver.FakeServer(server=...)`` uses these. A scripted reply is the model's raw
output (``"<think>hmm</think>42"``); what a real server then does with it is here:

- **Tokens.** One token per word, ``<think>`` and ``</think>`` one token each (Qwen3's special
  tokens 151667 and 151668); ``think_tokens=3`` splits them as a model without them would.
- **Generation limits**, as vLLM applies them (``vllm/v1/engine/detokenizer.py``, ``check_stop_strings``
  runs only once more than ``min_tokens`` tokens exist; ``vllm/v1/sample/logits_processor``
  ``MinTokensLogitsProcessor`` masks EOS and ``stop_token_ids`` during the first ``min_tokens``): a
  masked token is skipped (the model writes its next choice), a stop string or stop token id ends
  the reply (neither included), ``max_tokens`` cuts it with ``finish_reason: length``.
- **The reasoning parser** (``vllm/reasoning/qwen3_reasoning_parser.py``): ``</think>`` splits the
  reply; with no ``</think>``, the current parser (after vLLM PR #35230, 2026-02-24) makes it all
  ``reasoning`` when thinking is on (``enable_thinking`` not false), the old one all ``content``.
  vLLM names the field ``reasoning``; SGLang (``python/sglang/srt/entrypoints/openai/serving_chat.py``)
  and llama.cpp (``tools/server/server-common.cpp``, ``--reasoning-format deepseek``) ``reasoning_content``.
- **The thinking switch**: Qwen3's template with ``enable_thinking: false`` closes an empty think
  block, so the model writes no thinking: its ``<think>...</think>`` sections are dropped.
  ``honours_thinking=False`` imitates a template that ignores the switch.
- **Usage details**: vLLM sends ``prompt_tokens_details.cached_tokens`` only when started with
  ``--enable-prompt-tokens-details`` and the count is non-zero (``vllm/entrypoints/openai/serving_chat.py``,
  ``if self.enable_prompt_tokens_details and num_cached_tokens``); SGLang with ``--enable-cache-report``
  always (``python/sglang/srt/entrypoints/openai/usage_processor.py``); llama.cpp's ``timings.cache_n``
  always (``tools/server/server-task.cpp``, ``result_timings``).
- **``continue_final_message``**: vLLM renders the whole chat through the model's template and
  cuts it after the final message as transformers does
  (``transformers/utils/chat_template_utils.py``, ``render_jinja_template``), raising
  "continue_final_message is set but the final message does not appear in the chat" as HTTP 400.
  SGLang renders the chat without the final message, with the generation prompt, and appends the
  message's text (``serving_chat.py``, ``_apply_jinja_template``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Generated", "THINK_IDS", "continue_prompt", "generate", "parse_reasoning", "pieces", "usage_details",
           "KNOWN_FIELDS"]

THINK_IDS = {"<think>": 151667, "</think>": 151668}  # Qwen3's tokenizer.json added_tokens

# Request fields a strict server accepts (OpenAI's chat and completions parameters plus each server's
# documented extras: vLLM's protocol.py ChatCompletionRequest, SGLang's protocol.py, llama.cpp's README).
_OPENAI = {"model", "messages", "prompt", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n",
           "stream", "stop", "seed", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty", "user",
           "reasoning_effort", "echo", "stream_options"}
_EXTRAS = {"top_k", "min_tokens", "stop_token_ids", "chat_template_kwargs", "continue_final_message",
           "add_generation_prompt", "skip_special_tokens", "include_stop_str_in_output", "min_p",
           "repetition_penalty"}
KNOWN_FIELDS: dict[str | None, set[str]] = {None: _OPENAI, "vllm": _OPENAI | _EXTRAS, "sglang": _OPENAI | _EXTRAS,
                                            "llama.cpp": _OPENAI | {"top_k", "min_p", "chat_template_kwargs",
                                                                    "cache_prompt", "n_probs"}}


def pieces(text: str, think_tokens: int = 1) -> list[str]:
    """The tokens of ``text``: words with their leading whitespace; think tags one token (or split)."""
    out: list[str] = []
    for part in re.split(r"(</?think>)", text):
        if part in THINK_IDS:
            size = -(-len(part) // think_tokens)  # a tokenizer without the special token splits it
            out.extend(part[i:i + size] for i in range(0, len(part), size))
        elif part:
            out.extend(re.findall(r"\s*\S+|\s+", part))
    return out


def token_id(piece: str) -> int:
    """A stable id per token text (special tokens their real ids)."""
    return THINK_IDS.get(piece, 1000 + sum(ord(c) for c in piece) % 100_000)


@dataclass(frozen=True)
class Generated:
    text: str
    tokens: int
    finish_reason: str


def generate(raw: str, body: dict[str, Any], *, think_tokens: int = 1, eos: str | None = None) -> Generated:
    """What a vLLM-style engine returns for the model output ``raw`` under the request's limits."""
    stops = body.get("stop") or []
    stops = [stops] if isinstance(stops, str) else list(stops)
    stop_ids = set(body.get("stop_token_ids") or [])
    min_tokens = int(body.get("min_tokens") or 0)
    cap = body.get("max_tokens")
    text, count = "", 0
    for piece in pieces(raw, think_tokens):
        if count < min_tokens and (token_id(piece) in stop_ids or piece == eos):
            continue  # masked during min_tokens: the model writes its next choice
        if token_id(piece) in stop_ids or piece == eos:
            return Generated(text, count, "stop")
        if cap is not None and count >= int(cap):
            return Generated(text, count, "length")
        text, count = text + piece, count + 1
        if count > min_tokens:  # vLLM looks for a stop string only where the new text could complete one
            for stop in stops:
                at = text.find(stop, max(0, len(text) - len(piece) - len(stop) + 1))
                if at != -1:
                    return Generated(text[:at], count, "stop")
    return Generated(text, count, "stop")


def parse_reasoning(text: str, thinking_on: bool, parser: str) -> tuple[str | None, str | None]:
    """(reasoning, content) as vLLM's qwen3 parser splits a reply; ``parser`` "qwen3" or "qwen3-old"."""
    if parser == "qwen3-old":
        if "<think>" not in text or "</think>" not in text:
            return None, text
    body = text.split("<think>", 1)[1] if "<think>" in text.split("</think>", 1)[0] else text
    if "</think>" in body:
        reasoning, content = body.split("</think>", 1)
        return reasoning, content or None
    return (body, None) if thinking_on else (None, body)


def usage_details(kind: str | None, cached: int, report: bool) -> dict[str, Any]:
    """The usage fields each server adds about reused prompt tokens (see the module docstring)."""
    if kind == "vllm":
        return {"prompt_tokens_details": {"cached_tokens": cached}} if report and cached else {}
    if kind == "sglang":
        return {"prompt_tokens_details": {"cached_tokens": cached}} if report else {}
    return {}


class TemplateRefusal(ValueError):
    """transformers' refusal to continue a final message its template does not reproduce."""


def render(template: str, messages: list[dict[str, Any]], **variables: Any) -> str:
    """``template`` rendered as transformers does (sandboxed jinja2, trim_blocks, lstrip_blocks)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = lambda message: (_ for _ in ()).throw(ValueError(message))
    return env.from_string(template).render(messages=messages, bos_token="", eos_token="", **variables)


def continue_prompt(kind: str | None, template: str, body: dict[str, Any]) -> str:
    """The prompt a server builds for a chat whose final assistant message is to be continued."""
    messages = list(body.get("messages") or [])
    variables = dict(body.get("chat_template_kwargs") or {})
    final = str(messages[-1].get("content") or "")
    if kind == "sglang":
        return render(template, messages[:-1], add_generation_prompt=True, **variables) + final
    rendered = render(template, messages, add_generation_prompt=False, **variables)
    if final.strip() not in rendered:
        raise TemplateRefusal("continue_final_message is set but the final message does not appear in the chat "
                              "after applying the chat template! This can happen if the chat template deletes "
                              "portions of the final message. Please verify the chat template outputs the final "
                              "message correctly.")
    at = rendered.rindex(final.strip())
    if rendered[at:at + len(final.lstrip())] == final:
        return rendered[:at + len(final.lstrip())]
    return rendered[:at + len(final.strip())]
