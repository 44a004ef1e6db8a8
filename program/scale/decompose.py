"""Decomposition: the problem as an ordered list of sub-problems (targets, not methods).

The pipeline, following the SCALE reference code where it is sound:

1. optional **rewrite** into conditions + question (the last sub-problem becomes the question, so
   the final step always answers what was asked);
2. **k candidates**, each its own call with a distinct rollout id and seed (never ``n > 1``); an
   unreadable candidate is asked again (bounded), then dropped with the reason recorded;
3. **selection** when more than one candidate survives: an LLM judge returns the number of the best
   (by logical correctness, clarity, completeness, relevance, simplicity); an unreadable or
   out-of-range choice means the first candidate, recorded;
4. a plan longer than ``max_steps`` is **asked for once more** with the limit stated; a reply
   within the limit replaces it, otherwise every step of the first plan is **kept** and a warning
   recorded (dropping middle steps would leave later steps referring to quantities no step
   found; the reference code has no limit at all);
5. no usable candidate at all, or a kept plan over ``PLAN_CEILING`` steps (a list that long is a
   garbled reply, not a plan: solving it would cost one call per line): a **one-step plan**, the
   problem itself, recorded as a failure.

The instruction asks for ``range_min_steps`` to ``range_max_steps`` sub-problems when both are set:
that sentence is appended to the (possibly tuned) Decompose instruction at call time.

Example:
    >>> Decomposition(steps=["Find x."]).to_dict()["steps"]
    ['Find x.']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import dspy

from program.calls import Failure, call, rollout
from program.clients import limits
from program.concurrent import run_all
from program.config import ScaleConfig

__all__ = ["Decomposition", "decompose_problem", "rewrite_problem", "sample_candidates", "select_candidate",
           "render_candidates", "with_sentence", "range_sentence", "limit_sentence", "within_limit"]


@dataclass(frozen=True)
class Decomposition:
    """The chosen plan and how it was chosen."""

    steps: list[str]
    candidates: list[list[str]] = field(default_factory=list)
    selected: int = 0
    conditions: str | None = None
    question: str | None = None
    failures: list[Failure] = field(default_factory=list)
    reasked: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decomposition:
        return cls(**{**data, "failures": [Failure(**f) for f in data.get("failures", [])]})


# No decomposer means to split one math problem into 33 sub-problems; a reply that parses into that many items is noise
# (e.g. a 100k-character reply, one "step" per line), and every step is a call with all earlier steps in
# its prompt. Above max_steps this only applies after the plan was asked for again.
PLAN_CEILING = 32


def rewrite_problem(predictor: dspy.Predict, lm: dspy.LM, problem: str) -> tuple[str | None, str | None, list[Failure]]:
    """(conditions, question) of ``problem``, or (None, None) and the failure when unreadable."""
    result = call(predictor, lm, "rewrite", problem=problem)
    if result.prediction is None:
        return None, None, [Failure("rewrite", f"{result.reason}; kept the problem as it is")]
    conditions, question = str(result.prediction.conditions).strip(), str(result.prediction.question).strip()
    return conditions, question, []


def with_sentence(predictor: dspy.Predict, sentence: str) -> type[dspy.Signature]:
    """``predictor``'s signature (its tuned instruction) with ``sentence`` appended to the instruction.

    Passed per call (``call(..., signature=...)``, DSPy's own argument), so the call is traced under
    ``predictor`` itself: optimizers find a predictor's traces by identity (bootstrap) or by
    signature (GEPA), and the one they tune is the predictor, whose instruction the sentence is
    appended to at call time.

    Example:
        >>> from program.signatures import Decompose
        >>> with_sentence(dspy.Predict(Decompose), "Use 2 to 3 sub-problems.").instructions.endswith("sub-problems.")
        True
    """
    signature: type[dspy.Signature] = predictor.signature
    if not sentence:
        return signature
    return signature.with_instructions(signature.instructions.rstrip() + "\n" + sentence)


def range_sentence(config: ScaleConfig) -> str:
    """The range the instruction asks for, or "" when the config sets none (reference code).

    The range never reaches past ``max_steps``: asking for "2 to 5" under a limit of 3 invites a plan
    that must be asked for again (measured: 4 of 5 GSM8K plans were, with max_steps 3).

    Example:
        >>> range_sentence(ScaleConfig(range_min_steps=2, range_max_steps=5))
        '- Use 2 to 5 sub-problems; a simple problem needs fewer.'
        >>> range_sentence(ScaleConfig(range_min_steps=2, range_max_steps=5, max_steps=3))
        '- Use 2 to 3 sub-problems; a simple problem needs fewer.'
    """
    if config.range_min_steps is None or config.range_max_steps is None:
        return ""
    high = config.range_max_steps if config.max_steps is None else min(config.range_max_steps, config.max_steps)
    low = min(config.range_min_steps, high)
    if low == high:
        return f"- Use at most {high} sub-problems; a simple problem needs fewer."
    return f"- Use {low} to {high} sub-problems; a simple problem needs fewer."


def limit_sentence(limit: int, had: int) -> str:
    """What the second request adds when a plan was longer than ``max_steps``.

    Example:
        >>> limit_sentence(3, 5)[:50]
        '- Use AT MOST 3 sub-problems (a plan of 5 was too '
    """
    return (f"- Use AT MOST {limit} sub-problems (a plan of {had} was too long): merge steps, "
            "do not drop any quantity the answer needs.")


def within_limit(predictor: dspy.Predict, lm: dspy.LM, problem: str, steps: list[str], config: ScaleConfig,
                 ) -> tuple[list[str], list[str] | None, list[Failure]]:
    """(plan, second reply's steps or None, failures): a plan over ``max_steps`` is asked for once more.

    A second plan within the limit replaces the first; otherwise the first is kept WHOLE (never cut)
    and a warning recorded.

    Example:
        >>> from program.testing import function_lm
        >>> from program.signatures import Decompose
        >>> lm = function_lm(lambda m: "1. Find A.\\n2. Find B.")
        >>> within_limit(dspy.Predict(Decompose), lm, "p", ["a", "b", "c"], ScaleConfig(max_steps=2))[0]
        ['Find A.', 'Find B.']
    """
    limit = config.max_steps
    if limit is None or len(steps) <= limit:
        return steps, None, []
    sentences = (range_sentence(config), limit_sentence(limit, len(steps)))
    asked = with_sentence(predictor, "\n".join(s for s in sentences if s))
    result = call(predictor, lm, "decompose", config=rollout(0), signature=asked, problem=problem)
    again = [s.strip() for s in (result.prediction.steps or [])] if result.prediction is not None else []
    again = [s for s in again if s]
    if again and len(again) <= limit:
        note = f"plan of {len(steps)} steps was over max_steps={limit}; asked again and got {len(again)}"
        return again, again, [Failure("decompose", note)]
    why = (result.reason or "an empty plan") if not again else f"{len(again)} steps"
    note = (f"plan of {len(steps)} steps is over max_steps={limit}; asked again and got {why}; "
            "kept every step of the first plan")
    return steps, again, [Failure("decompose", note)]


def sample_candidates(predictor: dspy.Predict, lm: dspy.LM, problem: str, *, k: int, retries: int,
                      temperature: float | None = None, signature: type[dspy.Signature] | None = None,
                      ) -> tuple[list[list[str]], list[Failure]]:
    """Up to ``k`` decompositions. Attempt j of candidate i uses rollout id and seed ``i + j*k``.

    The candidates are asked at once, up to the server's limit (``program.concurrent.run_all``);
    the result is the sequential one: candidates and failures in index order.

    With k > 1, ``temperature`` (if given) replaces the LM's own: distinct seeds only give
    distinct candidates when sampling is not greedy. ``signature``: asked instead of the
    predictor's (``with_sentence``).
    """
    sampling = {"temperature": temperature} if k > 1 and temperature is not None else {}

    def candidate(i: int) -> tuple[list[str] | None, list[Failure]]:
        failed: list[Failure] = []
        for attempt in range(retries + 1):
            result = call(predictor, lm, "decompose", config={**rollout(i + attempt * k), **sampling},
                          signature=signature, problem=problem)
            steps = [s.strip() for s in (result.prediction.steps or [])] if result.prediction is not None else []
            steps = [s for s in steps if s]
            if steps:
                return steps, failed
            reason = result.reason or "the decomposition was empty"
            failed.append(Failure("decompose", f"candidate {i + 1}, attempt {attempt + 1}: {reason}"))
        return None, failed

    # The k candidates are independent: they run at once, up to the server's limit, in index order.
    candidates: list[list[str]] = []
    failures: list[Failure] = []
    for steps, failed in run_all([partial(candidate, i) for i in range(k)], limits.width(lm)):
        candidates += [steps] if steps is not None else []
        failures += failed
    return candidates, failures


def render_candidates(candidates: list[list[str]]) -> str:
    """Candidates as the judge sees them: "Candidate 1:" followed by its numbered steps."""
    blocks = []
    for i, steps in enumerate(candidates, 1):
        lines = "\n".join(f"  {j}. {step}" for j, step in enumerate(steps, 1))
        blocks.append(f"Candidate {i}:\n{lines}")
    return "\n\n".join(blocks)


def select_candidate(predictor: dspy.Predict, lm: dspy.LM, problem: str, candidates: list[list[str]],
                     ) -> tuple[int, list[Failure]]:
    """Index (0-based) of the judge's choice; 0 with a recorded failure when unreadable or out of range."""
    if len(candidates) < 2:
        return 0, []
    result = call(predictor, lm, "select", problem=problem, candidates=render_candidates(candidates))
    if result.prediction is None:
        return 0, [Failure("select", f"{result.reason}; took the first candidate")]
    choice = result.prediction.best
    if not isinstance(choice, int) or not 1 <= choice <= len(candidates):
        return 0, [Failure("select", f"choice {choice!r} is not a candidate number 1..{len(candidates)}; "
                                     "took the first candidate")]
    return choice - 1, []


def decompose_problem(problem: str, *, decompose: dspy.Predict, select: dspy.Predict, rewrite: dspy.Predict,
                      lm: dspy.LM, config: ScaleConfig, retries: int = 1) -> Decomposition:
    """Rewrite (optional), sample k candidates, select one, apply the length and last-step rules.

    Example:
        >>> from program.testing import function_lm
        >>> from program.signatures import Decompose, SelectDecomposition, Rewrite
        >>> lm = function_lm(lambda m: "1. Find A.\\n2. Find B.")
        >>> decompose_problem("p", decompose=dspy.Predict(Decompose), select=dspy.Predict(SelectDecomposition),
        ...                   rewrite=dspy.Predict(Rewrite), lm=lm, config=ScaleConfig()).steps
        ['Find A.', 'Find B.']
    """
    failures: list[Failure] = []
    conditions = question = None
    if config.rewrite:
        conditions, question, failed = rewrite_problem(rewrite, lm, problem)
        failures += failed
    candidates, failed = sample_candidates(decompose, lm, problem, k=config.num_candidates, retries=retries,
                                          temperature=config.candidate_temperature,
                                          signature=with_sentence(decompose, range_sentence(config)))
    failures += failed
    if not candidates:
        failures.append(Failure("decompose", "no usable decomposition; solving the problem as one step"))
        return Decomposition(steps=[problem], conditions=conditions, question=question, failures=failures)
    selected, failed = select_candidate(select, lm, problem, candidates)
    failures += failed
    steps, reasked, failed = within_limit(decompose, lm, problem, list(candidates[selected]), config)
    failures += failed
    steps = list(steps)
    if len(steps) > PLAN_CEILING:
        failures.append(Failure("decompose", f"plan of {len(steps)} steps is over the ceiling of {PLAN_CEILING}; "
                                             "solving the problem as one step"))
        return Decomposition(steps=[problem], candidates=candidates, selected=selected, conditions=conditions,
                             question=question, failures=failures, reasked=reasked)
    if question:
        steps[-1] = question  # the final step answers exactly what was asked
    return Decomposition(steps=steps, candidates=candidates, selected=selected, conditions=conditions,
                         question=question, failures=failures, reasked=reasked)
