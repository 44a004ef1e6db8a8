"""A plain-text DSPy adapter with forgiving parsers, for models that break DSPy's reply format.

Small models (the default is a 1.5B coder model at temperature 0) often break DSPy's
``[[ ## field ## ]]`` reply format. ``PlainAdapter`` asks for no format at all: the system message
is the signature's instruction, the user message lists the inputs under plain labels, and the
WHOLE reply is read as the output.

The layout serves prefix caches (llama.cpp keeps the last prompt's KV cache; vLLM and SGLang keep
many): everything fixed for a stage comes first and is byte-identical for every problem, the
instruction with the reply format (system message), then the compiled demos; only the inputs
follow (the last user message), the problem first. The output's type decides how a reply is read:

- ``str``: the reply itself (a solution that ends in ``\\boxed{}``);
- ``list[str]``: a JSON list/object, else numbered lines ("1. ...", "Step 2: ..."), else bullets;
- ``float`` / ``int``: a number anywhere in the reply (``0.3``, ``30%``, ``3/10``);
- several outputs: ``Label: value`` sections.

Replies in DSPy's own ``[[ ## field ## ]]`` format are accepted too. Instructions and demos stay
DSPy parameters, so optimizers still tune them. A reply that cannot be read raises an
``AdapterParseError`` whose ``reason`` says why; ``program.calls.call`` records it as a failure.

Example:
    >>> parse_steps("Here is the plan:\\n1. Find the eggs left.\\n2. Find the income.")
    ['Find the eggs left.', 'Find the income.']
    >>> parse_number("Difficulty: 0.35")
    0.35
"""

from __future__ import annotations

import re
import textwrap
from typing import Any, get_origin

import dspy
import json_repair
from dspy.utils.exceptions import AdapterParseError

__all__ = ["PlainAdapter", "ParseError", "DEFAULT_ADAPTER", "parse_steps", "parse_number", "parse_index"]

_DSPY_HEADER = re.compile(r"^\s*\[\[ ## (\w+) ## \]\]\s*$", re.M)
_NUMBERED = re.compile(r"^(?:(?:step|sub-?problem|part)\s*)?\(?(\d{1,2})\)?(?:[.)]\s+|\s*[:\-–]\s*)(\S.*)$|"
                       r"^(?:step|sub-?problem|part)\s+(\d{1,2})\s+(\S.*)$", re.I)
_BULLET = re.compile(r"^[-*•]\s+(\S.*)$")
_NUMBER = re.compile(r"(?<![\w.])(-?(?:\d+(?:\.\d+)?|\.\d+))(?:\s*/\s*(\d+(?:\.\d+)?))?(\s*%)?")
# parse_index: a whole number; one named as the pick; what follows a number that counts the candidates.
_WHOLE_NUMBER = re.compile(r"(?<![\w.])(\d+)(?![\d.]\d)")
_NAMED_INDEX = re.compile(r"(?:\bcandidate|\boption|\bdecomposition|#)\s*(?:number\s*|no\.\s*)?(\d+)(?![\d.]\d)",
                          re.IGNORECASE)
_COUNTED = re.compile(r"\s+(?:candidates|options|decompositions|choices)\b", re.IGNORECASE)


class ParseError(AdapterParseError):
    """A reply that could not be read; ``reason`` is a short, recordable explanation."""

    def __init__(self, signature: Any, completion: str, reason: str) -> None:
        super().__init__(adapter_name="PlainAdapter", signature=signature, lm_response=completion, message=reason)
        self.reason = reason


# --- parsers -----------------------------------------------------------------------------------

def parse_steps(text: str) -> list[str]:
    """Items of a list reply: JSON (list or ``{"step1": ...}``), numbered lines, or bullets.

    Raises ``ValueError`` (with the reason) when no item is found.

    Example:
        >>> parse_steps('{"step1": "Find A", "step2": "Find B"}')
        ['Find A', 'Find B']
    """
    body = _unfence(text)
    if body.lstrip().startswith(("{", "[")):
        items = _json_items(body)
        if items:
            return items
    items = _line_items(body)
    if items:
        return items
    items = _json_items(body)
    if items:
        return items
    raise ValueError("no list of sub-problems found (expected numbered lines or a JSON list)")


def parse_number(text: str) -> float:
    """The number a reply gives, preferring a decimal in [0, 1] (so "Step 2: 0.3" reads 0.3).

    ``30%`` reads 0.3 and ``3/10`` reads 0.3. Raises ``ValueError`` when there is no number.

    Example:
        >>> parse_number("I'd say 7/10.")
        0.7
    """
    values: list[tuple[float, bool]] = []
    for match in _NUMBER.finditer(text):
        number, denominator, percent = match.groups()
        value = float(number)
        if denominator is not None and float(denominator) != 0:
            value /= float(denominator)
        if percent:
            value /= 100.0
        values.append((value, "." in number or denominator is not None or bool(percent)))
    if not values:
        raise ValueError("no number in the reply")
    for wanted in (lambda v, d: d and 0.0 <= v <= 1.0, lambda v, d: 0.0 <= v <= 1.0, lambda v, d: True):
        for value, decimal in values:
            if wanted(value, decimal):
                return value
    raise AssertionError("unreachable")


def parse_index(text: str) -> int:
    """The number a reply picks: the one after "Candidate"/"#", else the first that counts nothing.

    A judge's reply often says how many there were before naming its pick ("Of the 3 candidates,
    2 is best"): a number followed by "candidates" (or "options", "decompositions") is a count,
    not a choice. Raises ``ValueError`` if no number is left.

    Example:
        >>> parse_index("Of the 3 candidates, 2 is best"), parse_index("Candidate 2"), parse_index("7")
        (2, 2, 7)
    """
    named = _NAMED_INDEX.search(text)
    if named is not None:
        return int(named.group(1))
    for match in _WHOLE_NUMBER.finditer(text):
        if not _COUNTED.match(text, match.end()):
            return int(match.group(1))
    raise ValueError("no number in the reply")


def _unfence(text: str) -> str:
    """Drop Markdown code fences and DSPy field headers but keep what is inside."""
    return _DSPY_HEADER.sub("", re.sub(r"```[a-zA-Z]*", "", text)).strip()


def _json_items(text: str) -> list[str]:
    start = min((i for i in (text.find("{"), text.find("[")) if i != -1), default=-1)
    if start == -1:
        return []
    try:
        data = json_repair.loads(text[start:])
    except Exception:  # json_repair is lenient but not total; a bad blob is simply not JSON
        return []
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), (list, dict)):
        data = next(iter(data.values()))  # {"steps": [...]} or {"plan": {...}}
    values = list(data.values()) if isinstance(data, dict) else data if isinstance(data, list) else []
    items = []
    for value in values:
        if isinstance(value, dict):  # {"id": 1, "description": "..."}: the longest text is the step
            texts = [v for v in value.values() if isinstance(v, str)]
            value = max(texts, key=len) if texts else ""
        if isinstance(value, (str, int, float)) and str(value).strip():
            items.append(str(value).strip())
    return items


def _line_items(text: str) -> list[str]:
    """Numbered lines (continuation lines glued on); bullets only when nothing is numbered."""
    numbered: list[str] = []
    bullets: list[str] = []
    last: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip().replace("**", "").lstrip("#").strip()
        if not line:
            last = None
            continue
        match = _NUMBERED.match(line)
        if match:
            numbered.append((match.group(2) or match.group(4)).strip())
            last = numbered
        elif (bullet := _BULLET.match(line)) and not numbered:
            bullets.append(bullet.group(1).strip())
            last = bullets
        elif last:
            last[-1] = f"{last[-1]} {line}"  # a wrapped line belongs to the item above it
    items = numbered or bullets
    return [item.strip(' "\',') for item in items if item.strip(' "\',')]


def _parse_value(text: str, annotation: Any) -> Any:
    if annotation is str:
        return text
    if get_origin(annotation) is list:
        return parse_steps(text)
    if annotation is float:
        return parse_number(text)
    if annotation is int:
        return parse_index(text)
    raise ValueError(f"PlainAdapter cannot read an output of type {annotation!r}")


def _dspy_sections(text: str) -> dict[str, str]:
    """``[[ ## name ## ]]`` blocks of a reply in DSPy's ChatAdapter format (empty if none)."""
    parts = _DSPY_HEADER.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=False)}


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _render(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(f"{i}. {item}" for i, item in enumerate(value, 1))
    return "" if value is None else str(value)


# --- the adapter -------------------------------------------------------------------------------

class PlainAdapter(dspy.Adapter):
    """Plain labelled text in, the whole reply out (see the module docstring)."""

    def format(self, signature: Any, demos: list[dict[str, Any]], inputs: dict[str, Any]) -> list[dict[str, Any]]:
        # Fixed part first (instruction + reply format, then demos), so a prefix cache can reuse it.
        system = "\n\n".join(p for p in (textwrap.dedent(signature.instructions).strip(),
                                           self._reply_hint(signature)) if p)
        messages = [{"role": "system", "content": system}]
        messages.extend(self.format_demos(signature, demos))
        messages.append({"role": "user",
                         "content": self.format_user_message_content(signature, inputs, main_request=True)})
        return messages

    def format_user_message_content(self, signature: Any, inputs: dict[str, Any], prefix: str = "",
                                    suffix: str = "", main_request: bool = False) -> str:
        # The reply format is in the system message (fixed), not here: this message holds only inputs.
        parts = [prefix]
        parts += [f"{_label(name)}:\n{_render(inputs[name])}" for name in signature.input_fields if name in inputs]
        parts.append(suffix)
        return "\n\n".join(p for p in parts if p).strip()

    def format_assistant_message_content(self, signature: Any, outputs: dict[str, Any],
                                         missing_field_message: str | None = None) -> str:
        names = list(signature.output_fields)
        if len(names) == 1:
            return _render(outputs.get(names[0], missing_field_message))
        return "\n".join(f"{_label(n)}: {_render(outputs.get(n, missing_field_message))}" for n in names)

    def parse(self, signature: Any, completion: str) -> dict[str, Any]:
        # A reply can carry lone surrogates (JSON escapes like \ud800): replace them, or the text would
        # break the next prompt it reaches (DSPy refuses invalid Unicode) and any file it is written to.
        completion = completion.encode("utf-8", "replace").decode("utf-8")
        text = completion.replace("[[ ## completed ## ]]", "").strip()
        fields = signature.output_fields
        sections = _dspy_sections(text)
        if len(fields) > 1:
            sections = {k: v for k, v in sections.items() if k in fields} or _labelled(text, list(fields))
            missing = [name for name in fields if not sections.get(name)]
            if missing:
                raise ParseError(signature, completion, f"missing section(s) {', '.join(missing)}")
        else:
            name = next(iter(fields))
            sections = {name: sections.get(name, text)}
        values = {}
        for name, field in fields.items():
            try:
                values[name] = _parse_value(sections[name], field.annotation)
            except ValueError as exc:
                raise ParseError(signature, completion, f"{name}: {exc}") from None
        return values

    @staticmethod
    def _reply_hint(signature: Any) -> str:
        fields = signature.output_fields
        if len(fields) > 1:
            return "Reply in exactly this form:\n" + "\n".join(f"{_label(n)}: <{f.json_schema_extra.get('desc', n)}>"
                                                              for n, f in fields.items())
        field = next(iter(fields.values()))
        desc = field.json_schema_extra.get("desc", "answer")
        if get_origin(field.annotation) is list:
            return f"Reply with {desc} as a numbered list (1., 2., ...), one per line, and nothing else."
        if field.annotation is int:
            return f"Reply with {desc} (one whole number) and nothing else."
        if field.annotation is float:
            return f"Reply with {desc} (one number) and nothing else."
        return f"Reply with {desc}."


def _labelled(text: str, names: list[str]) -> dict[str, str]:
    """``Conditions: ...`` / ``**Question:** ...`` sections, each running to the next label.

    Example:
        >>> _labelled("Conditions: He pays $5. Question: How much?", ["conditions", "question"])
        {'conditions': 'He pays $5.', 'question': 'How much?'}
    """
    # A label starts a line, or follows the end of a sentence ("... 150%. Question: ...").
    pattern = re.compile(r"(?:^|(?<=[.!?])[ \t]+)[\s*#]*(" + "|".join(re.escape(_label(n)) for n in names)
                         + r")[\s*]*:[\s*]*", re.I | re.M)
    matches = list(pattern.finditer(text))
    sections: dict[str, str] = {}
    for match, after in zip(matches, [*matches[1:], None], strict=False):
        name = match.group(1).lower().replace(" ", "_")
        body = text[match.end(): after.start() if after else len(text)].strip()
        sections.setdefault(name, body)
    return sections


DEFAULT_ADAPTER = PlainAdapter()
