"""Client-side chat templates, for sending a conversation to a raw /v1/completions endpoint.

Budget forcing continues TEXT, so the conversation is turned into one prompt string here, the
same way the model's own chat template would, ending exactly where the assistant's turn starts.
The caller then opens the thinking section itself (``think_open + "\\n"``).

Built-in templates (``get_template(name)``):

- ``chatml``: Qwen2.5 and other ChatML models. No native thinking: ``instruction`` tells the model
  to think inside ``<think> ... </think>`` (no default system prompt is inserted).
- ``qwen3``: ChatML with Qwen3's native ``<think>`` section.
- ``llama3``: Llama 3 / 3.1 headers (no date/tool preamble; Llama 3.1's own template adds a
  "Cutting Knowledge Date" system preamble, so use its Jinja file for byte-identical prompts).
  No native thinking.
- ``deepseek-r1``: DeepSeek-R1 and its distills. The official template ends with
  ``<｜Assistant｜><think>\\n``; ``render`` stops before ``<think>`` so that adding
  ``think_open + "\\n"`` gives exactly that string.
- QwQ-32B and Qwen3-Thinking are ChatML: ``qwen3``.

No template starts with a BOS token: every server we send completions to adds one (vLLM's
``add_special_tokens`` defaults to true, llama.cpp's server adds BOS), so ours would make two.
Checked byte for byte against the models' own templates in tests/unit/test_real_servers.py.
- a path to a Jinja file (a Hugging Face ``chat_template``), rendered with ``messages`` and
  ``add_generation_prompt=True``. Think tags, stops and an optional instruction come from a sidecar
  JSON file beside it (``model.jinja`` -> ``model.json``), else the defaults ``<think>``/``</think>``.

Example:
    >>> t = get_template("chatml")
    >>> t.render([{"role": "user", "content": "1+1?"}])
    '<|im_start|>user\\n1+1?<|im_end|>\\n<|im_start|>assistant\\n'
    >>> t.think_open, t.think_close, t.stop
    ('<think>', '</think>', ('<|im_end|>', '<|endoftext|>'))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from program.config import ConfigError, check_known_keys

__all__ = ["ChatTemplate", "get_template", "TEMPLATES", "THINK_INSTRUCTION"]

Messages = Sequence[Mapping[str, str]]
_ROLES = ("system", "user", "assistant")

# For models without a thinking mode: we open the section, the model must know to close it.
THINK_INSTRUCTION = ("Think step by step before you answer. Your reasoning goes inside the thinking "
                     "section {open} ... {close}, which is already open for you: reason there, close it "
                     "with {close}, then write your answer after it.")


@dataclass(frozen=True)
class ChatTemplate:
    """How one model family formats a conversation, and its thinking and end-of-turn markers.

    Args:
        name: the template's name (or the Jinja file's path).
        think_open / think_close: the thinking section's delimiters.
        stop: end-of-turn strings; generation of the answer stops at any of them.
        instruction: added to the system prompt for models that do not think natively (empty for
            native thinkers), so the model knows the open section is for reasoning and must be closed.
        renderer: the function behind ``render``.
    """

    name: str
    renderer: Callable[[list[dict[str, str]]], str] = field(repr=False, compare=False)
    think_open: str = "<think>"
    think_close: str = "</think>"
    stop: tuple[str, ...] = ()
    instruction: str = ""

    def render(self, messages: Messages) -> str:
        """The prompt for ``messages``, ending right where the assistant's reply starts.

        Example:
            >>> get_template("qwen3").render([{"role": "system", "content": "Be brief."},
            ...                               {"role": "user", "content": "Hi"}])
            '<|im_start|>system\\nBe brief.<|im_end|>\\n<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n'
        """
        return self.renderer(_checked(messages))

    def with_instruction(self, messages: Messages) -> list[dict[str, str]]:
        """``messages`` with ``instruction`` appended to the system prompt (or as a new one).

        Example:
            >>> get_template("qwen3").with_instruction([{"role": "user", "content": "Hi"}])
            [{'role': 'user', 'content': 'Hi'}]
        """
        out = [dict(m) for m in _checked(messages)]
        if not self.instruction:
            return out
        if out and out[0]["role"] == "system":
            out[0]["content"] = f"{out[0]['content'].rstrip()}\n\n{self.instruction}".lstrip()
        else:
            out.insert(0, {"role": "system", "content": self.instruction})
        return out


def _checked(messages: Messages) -> list[dict[str, str]]:
    if not messages:
        raise ConfigError("A chat template needs at least one message; got none.")
    out = []
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES or not isinstance(content, str):
            raise ConfigError(f"`messages[{i}]={dict(message)!r}` must have a role in {', '.join(_ROLES)} "
                              "and a string content.")
        out.append({"role": role, "content": content})
    return out


# --- the built-in formats --------------------------------------------------------------------

def _chatml(messages: list[dict[str, str]]) -> str:
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def _llama3(messages: list[dict[str, str]]) -> str:
    # The official template trims every message's content.
    turns = "".join(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>"
                    for m in messages)
    # No <|begin_of_text|>: vLLM (add_special_tokens defaults to true for completions) and llama.cpp's
    # server add BOS themselves; ours would make two.
    return turns + "<|start_header_id|>assistant<|end_header_id|>\n\n"


_R1_BOS, _R1_EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"


def _deepseek_r1(messages: list[dict[str, str]]) -> str:
    # System prompts go first, right after BOS; earlier assistant turns end with EOS.
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = "".join(f"<｜User｜>{m['content']}" if m["role"] == "user" else f"<｜Assistant｜>{m['content']}{_R1_EOS}"
                    for m in messages if m["role"] != "system")
    # No BOS of our own: the server adds it (see _llama3).
    return system + turns + "<｜Assistant｜>"


_INSTRUCTION = THINK_INSTRUCTION.format(open="<think>", close="</think>")

TEMPLATES: dict[str, ChatTemplate] = {
    "chatml": ChatTemplate("chatml", _chatml, stop=("<|im_end|>", "<|endoftext|>"), instruction=_INSTRUCTION),
    "qwen3": ChatTemplate("qwen3", _chatml, stop=("<|im_end|>", "<|endoftext|>")),
    "llama3": ChatTemplate("llama3", _llama3, stop=("<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"),
                           instruction=_INSTRUCTION),
    "deepseek-r1": ChatTemplate("deepseek-r1", _deepseek_r1, stop=(_R1_EOS,)),
}


def get_template(name_or_path: str) -> ChatTemplate:
    """A built-in template by name, or one loaded from a Jinja file path.

    Example:
        >>> get_template("llama3").stop[0]
        '<|eot_id|>'
        >>> get_template("gpt2")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        program.validation.ConfigError: Unknown chat template 'gpt2': use one of chatml, deepseek-r1, llama3, ...
    """
    if name_or_path in TEMPLATES:
        return TEMPLATES[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return _jinja_template(path)
    raise ConfigError(f"Unknown chat template {name_or_path!r}: use one of {', '.join(sorted(TEMPLATES))}, "
                      "or the path to a Jinja file.")


# --- user-supplied Jinja templates -----------------------------------------------------------

_SIDECAR_KEYS = ("think_open", "think_close", "stop", "instruction", "variables")


def _jinja_template(path: Path) -> ChatTemplate:
    """Load a Hugging Face style Jinja chat template plus its optional sidecar JSON."""
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    sidecar = _sidecar(path)
    think_open = sidecar.get("think_open", "<think>")
    think_close = sidecar.get("think_close", "</think>")
    variables = {"bos_token": "", "eos_token": "", **sidecar.get("variables", {})}

    def raise_exception(message: str) -> None:
        raise ConfigError(f"Chat template {path}: {message}")

    # The same settings as transformers' apply_chat_template, so templates render identically.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)
    env.globals["raise_exception"] = raise_exception
    try:
        compiled = env.from_string(path.read_text(encoding="utf-8"))
    except TemplateError as exc:
        raise ConfigError(f"Chat template {path} is not valid Jinja: {exc}") from None

    def render(messages: list[dict[str, str]]) -> str:
        try:
            prompt = compiled.render(messages=messages, add_generation_prompt=True, **variables)
        except (TemplateError, OverflowError) as exc:  # OverflowError: the sandbox refused a huge range
            raise ConfigError(f"Chat template {path} failed to render: {exc}. Define missing variables "
                              f"under 'variables' in {path.with_suffix('.json')}.") from None
        # Some templates open the thinking section themselves (R1, QwQ); we open it, so drop theirs.
        stripped = prompt.rstrip()
        if stripped.endswith(think_open):
            prompt = stripped[: -len(think_open)]
        return prompt

    instruction = sidecar.get("instruction", "")
    return ChatTemplate(str(path), render, think_open=think_open, think_close=think_close,
                        stop=tuple(sidecar.get("stop", ())),
                        instruction=instruction.replace("{open}", think_open).replace("{close}", think_close))


def _sidecar(path: Path) -> dict[str, Any]:
    side = path.with_suffix(".json")
    if side == path or not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"Template sidecar {side} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Template sidecar {side} must hold a JSON object; got {type(data).__name__}.")
    check_known_keys(data, _SIDECAR_KEYS, f"Template sidecar {side}")
    for key in ("think_open", "think_close", "instruction"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"Template sidecar {side}: `{key}={data[key]!r}` must be a string.")
    if not all(isinstance(s, str) and s for s in data.get("stop", [])):
        raise ConfigError(f"Template sidecar {side}: `stop` must be a list of non-empty strings.")
    if not isinstance(data.get("variables", {}), dict):
        raise ConfigError(f"Template sidecar {side}: `variables` must be an object (e.g. bos_token).")
    return data
