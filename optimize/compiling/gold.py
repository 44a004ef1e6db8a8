r"""Gold demos for a compile: train problems' worked solutions, in the tuned predictor's own reply format.

The pool is drawn from the END of the dev slice's seeded shuffle (dev and held-out slices are
carved from its start, so a later, larger held-out slice stays clear of it), skipping every
excluded id: the dev and held-out problems of this compile, and every slice recorded under a
results folder (``recorded_ids``: saved programs' ``metadata.json`` slices and calibration
``labels.jsonl`` files). So no held-out problem's own solution can be a demo.

A gold demo is a ``dspy.Example`` with the predictor's inputs and its one output: for the
cascade's System 1 (``SolveStep``) the problem, no earlier steps and the whole-problem step; for
CoT (``SolveProblem``) the problem. The output is ``data.gold.gold_reply``: the solution without
calculator marks, the answer boxed. ``shortest`` keeps the k shortest solutions (the point is to
show the model how to finish inside its cap); ``demo_tokens`` and ``bound_demos`` measure and
bound the tokens the demos add to every prompt (as ``PlainAdapter`` renders them).

Example:
    >>> pool = gold_pool("gsm8k_train", 50, seed=0, exclude={"gsm8k-train-0001"},
    ...                  count=len)  # doctest: +SKIP
    >>> demos = stage_demos(pool, SolveProblem)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy

from data.errors import DataError
from data.gold import gold_reply, gold_solutions
from data.loading import load_benchmark
from program.adapter import DEFAULT_ADAPTER
from program.clients.context import MESSAGE_OVERHEAD
from program.scale.cascade import WHOLE_PROBLEM
from program.scale.steps import NO_EARLIER_STEPS

__all__ = ["GoldDemo", "Counter", "recorded_ids", "gold_pool", "stage_demos", "demo_tokens", "bound_demos"]

Counter = Callable[[str], int]  # tokens of a text, in the tuned model's tokenizer (or an estimate of it)
_FIXED_INPUTS = {"earlier_steps": NO_EARLIER_STEPS, "current_step": WHOLE_PROBLEM}  # the cascade's one step


@dataclass(frozen=True)
class GoldDemo:
    """One train problem with its gold reply (``data.gold.gold_reply``) and the reply's token count."""

    id: str
    problem: str
    answer: str
    reply: str
    tokens: int


def recorded_ids(root: str | os.PathLike[str] | None) -> set[str]:
    """Problem ids of every slice recorded under ``root``: saved programs' data slices, calibration labels.

    A missing folder records nothing (a project of your own has no recorded slices).

    Example:
        >>> recorded_ids("experiments/results") >= {"gsm8k-train-4530"}  # doctest: +SKIP
        True
    """
    found: set[str] = set()
    if root is None or not Path(root).is_dir():
        return found
    for path in sorted(Path(root).rglob("metadata.json")):
        data = _json(path)
        slices = data.get("data") if isinstance(data, dict) else None
        for part in slices.values() if isinstance(slices, dict) else ():
            if isinstance(part, dict):
                found.update(str(i) for i in part.get("ids") or [])
    for path in sorted(Path(root).rglob("labels.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else None
            if isinstance(row, dict) and row.get("id") is not None:
                found.add(str(row["id"]))
    return found


def gold_pool(pool: str, size: int, *, seed: int, exclude: Iterable[str], count: Counter,
              shortest: int | None = None, max_tokens: int | None = None,
              data_dir: str | os.PathLike[str] | None = None) -> list[GoldDemo]:
    """``size`` gold demos from the end of ``pool``'s shuffle (seed ``seed``), none with an id in ``exclude``.

    ``max_tokens`` leaves out a solution longer than that on its own; ``shortest`` then keeps the
    k shortest (ties in shuffle order).

    Raises:
        DataError: the pool has no gold solutions, or fewer than ``size`` problems are left.
    """
    excluded = set(exclude)
    solutions = gold_solutions(pool, data_dir=data_dir)
    demos: list[GoldDemo] = []
    for example in reversed(load_benchmark(pool, seed=seed, data_dir=data_dir)):
        if len(demos) == size:
            break
        solution = solutions.get(str(example.id))
        if str(example.id) in excluded or solution is None:
            continue
        reply = gold_reply(solution, str(example.answer))
        tokens = count(reply)
        if max_tokens is None or tokens <= max_tokens:
            demos.append(GoldDemo(str(example.id), str(example.problem), str(example.answer), reply, tokens))
    if len(demos) < size:
        raise DataError(f"{pool}: only {len(demos)} problems with a gold solution are left after excluding "
                        f"{len(excluded)} dev, held-out and recorded ids; lower `gold_demos` (was {size}).")
    if shortest is not None:
        demos = sorted(demos, key=lambda d: d.tokens)[:shortest]
    return demos


def stage_demos(demos: Iterable[GoldDemo], signature: type[dspy.Signature]) -> list[dspy.Example]:
    """The demos as examples of ``signature`` (its inputs, its one output = the gold reply, and ``answer``).

    Raises:
        ValueError: a signature with more than one output, or an input a whole-problem demo cannot fill.

    Example:
        >>> from program.signatures import SolveProblem
        >>> demo = GoldDemo("x", "2 + 3?", "5", "2 + 3 = 5\\nThe answer is \\\\boxed{5}.", 9)
        >>> example = stage_demos([demo], SolveProblem)[0]
        >>> example.inputs().toDict(), example.solution.endswith("\\\\boxed{5}.")
        ({'problem': '2 + 3?'}, True)
    """
    outputs = list(signature.output_fields)
    unknown = [name for name in signature.input_fields if name != "problem" and name not in _FIXED_INPUTS]
    if len(outputs) != 1 or unknown:
        raise ValueError(f"gold demos are whole-problem solutions: they fit a solver with inputs problem (and the "
                         f"cascade's earlier_steps/current_step) and one output; {signature.__name__} has inputs "
                         f"{list(signature.input_fields)} and outputs {outputs}.")
    inputs = list(signature.input_fields)
    return [dspy.Example(id=d.id, problem=d.problem, answer=d.answer, **{outputs[0]: d.reply},
                         **{k: v for k, v in _FIXED_INPUTS.items() if k in inputs}).with_inputs(*inputs)
            for d in demos]


def demo_tokens(program: dspy.Module, count: Counter) -> dict[str, dict[str, int]]:
    """``{predictor: {"demos": n, "tokens": t}}`` for each predictor with demos: what they add to its prompt."""
    found = {}
    for name, predictor in program.named_predictors():
        if predictor.demos:
            found[name] = {"demos": len(predictor.demos),
                           "tokens": sum(_tokens(predictor.signature, demo, count) for demo in predictor.demos)}
    return found


def bound_demos(program: dspy.Module, max_tokens: int, count: Counter) -> dict[str, int]:
    """Drop each predictor's demos from the last until they add at most ``max_tokens``; ``{predictor: dropped}``."""
    dropped = {}
    for name, predictor in program.named_predictors():
        kept, used = [], 0
        for demo in predictor.demos:
            tokens = _tokens(predictor.signature, demo, count)
            if used + tokens > max_tokens:
                break
            kept.append(demo)
            used += tokens
        if len(kept) < len(predictor.demos):
            dropped[name] = len(predictor.demos) - len(kept)
            predictor.demos = kept
    return dropped


def _tokens(signature: Any, demo: Any, count: Counter) -> int:
    """Tokens of one demo as the adapter renders it (a user and an assistant message, with their overhead)."""
    messages = DEFAULT_ADAPTER.format_demos(signature, [demo])
    return sum(count(str(m.get("content") or "")) + MESSAGE_OVERHEAD for m in messages)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
