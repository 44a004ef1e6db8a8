"""A trial's exact tau curve over the dev problems: routing trees per problem, kept in a resumable file.

``curve_trees`` solves each problem at the taus its routing tree needs (``optimize.search.curve``)
and appends one JSON line per problem (its leaves, or ``null`` past the cap) to ``curve.jsonl``
beside the configuration's results; a rerun with the same fingerprint skips the problems already
there. The program is built once; ``at_tau`` gives a shallow copy routing at another tau (tau is
read only when routing a step, ``program.scale.scale.Scale.solve``), so the copies share the
predictors, the plan cache and the response cache, and a leaf pays only for the calls that differ.

Example:
    >>> trees = curve_trees(program, dev, path=tmp / "c.jsonl", fingerprint="f", domain=(0.0, 1.0))  # doctest: +SKIP
    >>> exact_curve([t for t in trees.values() if t is not None])  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optimize.errors import ServerDownError
from optimize.evaluation.evaluate import solve_one
from optimize.search.curve import DEFAULT_CAP, Leaf, routing_tree

if TYPE_CHECKING:
    import dspy

__all__ = ["at_tau", "curve_trees", "read_trees"]


def at_tau(program: Any, tau: float) -> Any:
    """A shallow copy of a SCALE or cascade program that routes at ``tau`` (the original is untouched)."""
    copied = copy.copy(program)
    copied.config = replace(program.config, threshold=float(tau))
    return copied


def read_trees(path: Path, fingerprint: str) -> dict[str, list[Leaf] | None]:
    """The trees already in ``path`` for ``fingerprint`` (latest line per problem wins)."""
    trees: dict[str, list[Leaf] | None] = {}
    if not path.exists():
        return trees
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut off by a kill: that problem runs again
            continue
        if row.get("fingerprint") == fingerprint:
            leaves = row.get("leaves")
            trees[str(row["id"])] = None if leaves is None else [Leaf(**leaf) for leaf in leaves]
    return trees


def _tree(program: Any, example: dspy.Example, domain: tuple[float, float], cap: int) -> list[Leaf] | None:
    def run(tau: float) -> Any:
        result = solve_one(at_tau(program, tau), example)
        if result.error_type == "ServerError":  # not the configuration's fault: stop, the trial runs again
            raise ServerDownError(f"problem {example.id} at tau {tau:g}: {result.error}")
        return result

    return routing_tree(run, domain[0], domain[1], cap=cap)


def curve_trees(program: Any, examples: Sequence[dspy.Example], *, path: str | Path, fingerprint: str,
                domain: tuple[float, float], cap: int = DEFAULT_CAP, workers: int = 1) -> dict[str, list[Leaf] | None]:
    """Each problem's routing tree over ``domain`` (None past ``cap`` leaves), resumed from ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    trees = read_trees(path, fingerprint)
    todo = [ex for ex in examples if str(ex.id) not in trees]
    lock = threading.Lock()

    def one(example: dspy.Example) -> None:
        tree = _tree(program, example, domain, cap)
        line = {"id": str(example.id), "fingerprint": fingerprint,
                "leaves": None if tree is None else [leaf.to_dict() for leaf in tree]}
        with lock, open(path, "a") as handle:
            handle.write(json.dumps(line) + "\n")
            handle.flush()
        trees[str(example.id)] = tree

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(one, ex) for ex in todo]:
            future.result()
    return {str(ex.id): trees[str(ex.id)] for ex in examples}
