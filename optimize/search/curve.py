"""The exact accuracy-and-tokens curve over tau of a score-routed program (cascade, SCALE).

A step goes to System 2 iff its score is strictly above tau (``program.scale.routing``), so a
problem's outcome changes only where tau crosses one of its scores: the curve is a step function,
and a few solves per problem give all of it. ``routing_tree`` finds a problem's distinct routings
by splitting the tau interval at the first score inside it:

- run the program at the interval's lowest tau and read the scores in its trace;
- the steps before the first score strictly inside the interval route the same way for every tau
  in it, so that score is the same for every tau in it too (it is made from the same inputs): the
  interval splits there, ``[low, s)`` (System 2 at that step) and ``[s, high)`` (System 1);
- an interval with no score strictly inside it is a leaf: one routing, one outcome.

This holds whatever makes the scores. The cascade has at most 2 leaves per problem (one System 1
and one System 2 pass); SCALE with scores fixed up front (``rating``) at most steps + 1; scores
made while solving (the ``attempt`` source, ``difficulty_mode: solved_context``) form a tree of at
most 2^steps leaves, so ``cap`` bounds it: a problem that needs more leaves makes the curve give up
(``None``), and the caller falls back to sampling tau. Solves that share their first steps share
those calls through the plan store and the response cache, so a leaf costs only what differs.

``exact_curve`` merges the problems' leaves into one point per interval between breakpoints:
accuracy and mean tokens over the problems, exactly what an evaluation at any tau in that interval
gives (``tests/unit/test_curve.py`` checks this against brute force at every breakpoint).

Example:
    >>> from types import SimpleNamespace as NS
    >>> def run(tau):  # one step, score 0.4: System 2 (correct, 300 tokens) below it, else System 1
    ...     mode = "system2" if 0.4 > tau else "system1"
    ...     return NS(trace={"steps": [{"score": 0.4, "mode": mode}]}, correct=mode == "system2", failed=False,
    ...               totals={"total_tokens": 300 if mode == "system2" else 100}, spent={})
    >>> [(leaf.low, leaf.high, leaf.correct) for leaf in routing_tree(run, 0.0, 1.0)]
    [(0.0, 0.4, True), (0.4, 1.0, False)]
    >>> [(p.low, p.accuracy, p.mean_tokens) for p in exact_curve([routing_tree(run, 0.0, 1.0)])]
    [(0.0, 100.0, 300.0), (0.4, 0.0, 100.0)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Leaf", "CurvePoint", "routing_tree", "exact_curve", "best_within", "DEFAULT_CAP", "TOKEN_KEYS"]

DEFAULT_CAP = 16  # leaves per problem: 2^4, every routing of a 4-step plan scored while solving

# objective token kind (SearchConfig.token_objective) -> the ledger total it reads
TOKEN_KEYS = {"total": "total_tokens", "completion": "completion_tokens"}


@dataclass(frozen=True)
class Leaf:
    """One routing of one problem: the tau interval ``[low, high)`` it holds on, and its outcome."""

    low: float
    high: float
    correct: bool
    total_tokens: float
    completion_tokens: float
    spent_tokens: float
    calls: int
    spent_calls: int
    failed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CurvePoint:
    """The program at every tau in ``[low, high)``: accuracy (%) and mean tokens per problem."""

    low: float
    high: float
    accuracy: float
    mean_tokens: float
    n: int

    @property
    def tau(self) -> float:
        """The tau to write in a config for this point (its interval's lowest value)."""
        return self.low

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scores(trace: dict[str, Any]) -> list[float]:
    return [float(step["score"]) for step in trace.get("steps", ()) if step.get("score") is not None]


def _leaf(result: Any, low: float, high: float) -> Leaf:
    totals, spent = result.totals or {}, result.spent or {}
    return Leaf(low, high, bool(result.correct), float(totals.get("total_tokens", 0)),
                float(totals.get("completion_tokens", 0)), float(spent.get("total_tokens", 0)),
                int(totals.get("calls", 0)), int(spent.get("calls", 0)), bool(result.failed))


def routing_tree(run: Callable[[float], Any], low: float, high: float, *, cap: int = DEFAULT_CAP) -> list[Leaf] | None:
    """A problem's distinct routings over tau in ``[low, high)``, sorted by tau; None past ``cap`` leaves.

    ``run(tau)`` solves the problem at tau and returns its graded result (``ProblemResult``: trace,
    correct, totals, spent, failed). A failed solve is a leaf (no trace to split on).
    """
    if not low < high:
        raise ValueError(f"the tau interval [{low}, {high}) is empty.")
    done: dict[float, Any] = {}
    todo, leaves = [(low, high)], []
    while todo:
        lo, hi = todo.pop()
        result = done.get(lo)
        if result is None:
            result = done[lo] = run(lo)
        inside = [] if result.failed else [s for s in _scores(result.trace) if lo < s < hi]
        if not inside:
            leaves.append(_leaf(result, lo, hi))
            continue
        split = inside[0]  # the first score inside: the steps before it route alike on [lo, hi)
        todo += [(split, hi), (lo, split)]
        if len(leaves) + len(todo) > cap:
            return None
    return sorted(leaves, key=lambda leaf: leaf.low)


def _leaf_at(leaves: Sequence[Leaf], tau: float) -> Leaf:
    return next(leaf for leaf in leaves if leaf.low <= tau < leaf.high)


def exact_curve(trees: Sequence[Sequence[Leaf]], token_objective: str = "total") -> list[CurvePoint]:
    """One point per interval between the problems' breakpoints (all trees cover the same interval)."""
    if not trees:
        return []
    key = TOKEN_KEYS[token_objective]
    bounds = sorted({leaf.low for tree in trees for leaf in tree} | {tree[-1].high for tree in trees})
    points = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        leaves = [_leaf_at(tree, lo) for tree in trees]
        points.append(CurvePoint(lo, hi, 100.0 * sum(leaf.correct for leaf in leaves) / len(leaves),
                                 sum(getattr(leaf, key) for leaf in leaves) / len(leaves), len(leaves)))
    return points


def best_within(points: Sequence[CurvePoint], budget: float | None) -> CurvePoint:
    """The point a trial reports: the most accurate within ``budget`` mean tokens (fewest tokens on ties).

    With no budget, or no point within it, the most accurate point at the fewest tokens overall
    (the budget form's constraint then marks the trial infeasible).

    Example:
        >>> pts = [CurvePoint(0.0, 0.5, 60.0, 400.0, 5), CurvePoint(0.5, 1.0, 40.0, 200.0, 5)]
        >>> best_within(pts, 300).tau, best_within(pts, None).tau
        (0.5, 0.0)
    """
    if not points:
        raise ValueError("an empty curve has no best point.")
    within = [p for p in points if budget is None or p.mean_tokens <= budget] or list(points)
    return max(within, key=lambda p: (p.accuracy, -p.mean_tokens, -p.low))
