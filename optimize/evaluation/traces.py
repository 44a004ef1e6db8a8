"""Reading the traces programs return: the plan steps of SCALE and what each step holds.

A SCALE prediction's ``trace["steps"]`` is a list of dicts with at least ``mode`` ("system1" /
"system2") and ``difficulty``; the description, the visible solution, the step's value and its
token usage are read here under the names the program uses (a few spellings are accepted so that
a renamed field degrades to "-" in a printout instead of a crash).

Example:
    >>> step = {"step": "Find 2+2.", "text": "2+2 = 4, so \\\\boxed{4}.", "value": "4", "mode": "system1"}
    >>> step_description(step), step_value(step)
    ('Find 2+2.', '4')
"""

from __future__ import annotations

from typing import Any

__all__ = ["steps_of", "step_description", "step_difficulty", "step_solution", "step_value", "step_usage",
           "failure_text"]

_DESCRIPTION_KEYS = ("description", "step", "sub_problem", "subproblem", "question")
_SOLUTION_KEYS = ("visible", "solution", "text", "output")
_VALUE_KEYS = ("value", "answer", "result")
_USAGE_KEYS = ("usage", "tokens")


def steps_of(trace: Any) -> list[dict[str, Any]]:
    """The plan steps of a trace (empty for methods without a plan)."""
    steps = trace.get("steps") if isinstance(trace, dict) else None
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def step_description(step: dict[str, Any]) -> str:
    """What the step asks for ("" if missing)."""
    return _first_text(step, _DESCRIPTION_KEYS)


def step_difficulty(step: dict[str, Any]) -> float | None:
    """The step's difficulty score (None when it was not scored, as in uniform methods)."""
    value = step.get("difficulty")
    if isinstance(value, dict):
        value = value.get("score")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def failure_text(failure: Any) -> str:
    """One line for a trace failure: ``"difficulty (step 2): unreadable score; used 1.0"``."""
    if not isinstance(failure, dict):
        return str(failure)
    where = failure.get("stage") or "?"
    if isinstance(failure.get("step"), int):
        where += f" (step {failure['step'] + 1})"
    return f"{where}: {failure.get('reason', '')}"


def step_solution(step: dict[str, Any]) -> str:
    """The step's visible solution text, never its thinking ("" if missing)."""
    return _first_text(step, _SOLUTION_KEYS)


def step_value(step: dict[str, Any]) -> str:
    """The step's extracted result ("" if missing)."""
    return _first_text(step, _VALUE_KEYS)


def step_usage(step: dict[str, Any]) -> dict[str, int]:
    """The step's token counts (``prompt_tokens``, ``completion_tokens``, ``thinking_tokens``...), or {}."""
    for key in _USAGE_KEYS:
        value = step.get(key)
        if isinstance(value, dict):
            return {k: int(v) for k, v in value.items() if isinstance(v, (int, float))}
    return {}


def _first_text(step: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = step.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return ""
