r"""SFT export: correct SCALE traces as chat-format training examples (the paper's data-generator use).

SCALE's authors fine-tuned a non-reasoning model on 800 filtered SCALE traces (arXiv 2512.00466).
This turns a results file into that kind of data: for every problem solved correctly with a plan,
one JSON line ``{"messages": [system?, user, assistant]}`` where the user turn is the problem and
the assistant turn walks through the plan: each step's description and its visible answer (never
the hidden thinking), then the final answer in ``\boxed{}``.

Left out: failed or wrong problems, and methods without a plan (no ``trace["steps"]``).

Example:
    >>> export_sft("runs/demo/scale-gsm8k/results.jsonl", "runs/demo/sft.jsonl")  # doctest: +SKIP
    SftExport(path=PosixPath('runs/demo/sft.jsonl'), written=12, skipped=3)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimize.evaluation.results import ProblemResult, load_results
from optimize.evaluation.traces import step_description, step_solution, step_value, steps_of

__all__ = ["SftExport", "DEFAULT_SYSTEM", "export_sft", "compose_solution"]

log = logging.getLogger(__name__)

DEFAULT_SYSTEM = ("Solve the math problem. Break it into sub-problems, solve them in order, "
                  "and give the final answer in \\boxed{}.")


@dataclass(frozen=True)
class SftExport:
    """Where the examples went, how many were written, and how many results were passed over."""

    path: Path
    written: int
    skipped: int


def compose_solution(steps: list[dict[str, Any]], answer: str) -> str | None:
    r"""The assistant turn for one plan, or None when a step lacks its description or answer.

    Example:
        >>> print(compose_solution([{"step": "Find 2+2.", "visible": "2+2 = 4."}], "4"))
        Step 1: Find 2+2.
        2+2 = 4.
        <BLANKLINE>
        Final answer: \boxed{4}
    """
    parts = []
    for number, step in enumerate(steps, 1):
        # a step whose solution text was not kept still has its value: better than nothing
        description, visible = step_description(step), step_solution(step) or step_value(step)
        if not description or not visible:
            return None
        parts.append(f"Step {number}: {description}\n{visible}")
    parts.append(f"Final answer: \\boxed{{{answer}}}")
    return "\n\n".join(parts)


def export_sft(results_path: str | Path, out_path: str | Path, *, system: str | None = DEFAULT_SYSTEM) -> SftExport:
    """Write the correct SCALE traces of ``results_path`` to ``out_path`` as chat JSONL.

    Args:
        system: the system turn of every example; None leaves it out.
    """
    results = load_results(results_path)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with out_path.open("w", encoding="utf-8") as handle:
        for result in results:
            messages = _messages(result, system)
            if messages is not None:
                handle.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
                written += 1
    if results and not written:
        log.warning("%s: no correct results with a plan (trace steps) to export; SFT export is "
                    "meant for the scale method", results_path)
    return SftExport(path=out_path, written=written, skipped=len(results) - written)


def _messages(result: ProblemResult, system: str | None) -> list[dict[str, str]] | None:
    steps = steps_of(result.trace)
    if not result.correct or result.failed or not steps or not result.problem:
        return None
    solution = compose_solution(steps, result.extracted or result.answer or "")
    if solution is None:
        log.warning("%s: a plan step has no description or answer; not exported", result.id)
        return None
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": result.problem}, {"role": "assistant", "content": solution}]

