r"""Calling predictors: one stage call (``call``) and one solution (``solve``), with their records.

``call`` runs a predictor on an LM bound for that call only, books its tokens to a ledger stage,
and turns an unreadable reply into a recorded reason instead of an exception.

``solve`` is the one place where a method asks an LM for a solution and reads its answer; SCALE's
steps, CoT, majority voting, budget forcing and InftyThink all go through it. Only the VISIBLE
reply is kept: the engines hand thinking over as a separate part that the adapter never reads,
and any ``<think>`` section that slipped into the text is cut here as well. So earlier thinking
can never reach a later step's prompt.

Example:
    >>> rollout(1)
    {'seed': 1, 'rollout_id': 1}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

import dspy
from dspy.utils.exceptions import AdapterParseError

from data.grading import extract_answer, strip_thinking
from program import ledger
from program.adapter import DEFAULT_ADAPTER

__all__ = ["Failure", "Attempt", "Shared", "call", "rollout", "Solution", "solve"]

T = TypeVar("T")


@dataclass(frozen=True)
class Failure:
    """Something a stage could not do, and what it did instead (kept in every trace)."""

    stage: str
    reason: str
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Attempt:
    """One predictor call: its prediction, or why there is none."""

    prediction: dspy.Prediction | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.prediction is not None


class Shared(Generic[T]):
    """Holds what every copy of a program shares (LMs, a plan cache): optimizers deep-copy
    programs, but connections and caches are not parameters."""

    def __init__(self, value: T) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict[int, Any]) -> Shared[T]:
        return self


def rollout(index: int) -> dict[str, int]:
    """Call settings for sample ``index``: a distinct seed (what our engines see) and DSPy rollout id.

    Rollout 0 is the default sample, so it carries no rollout id (DSPy warns about rollout ids at
    temperature 0, where only the first sample is ever needed).

    Example:
        >>> rollout(0), rollout(2)
        ({'seed': 0}, {'seed': 2, 'rollout_id': 2})
    """
    return {"seed": index, "rollout_id": index} if index else {"seed": index}


def call(predictor: dspy.Predict, lm: dspy.LM, stage_name: str, *, config: dict[str, Any] | None = None,
         adapter: dspy.Adapter | None = None, signature: type[dspy.Signature] | None = None,
         demos: list[Any] | None = None, **inputs: Any) -> Attempt:
    """Run ``predictor`` on ``lm`` with its calls booked to ``stage_name``; unreadable replies become reasons.

    The LM is bound for this call only (never stored on the predictor), so a saved program holds no
    connection settings. Server errors propagate: they are not the model's answer. ``signature`` and
    ``demos`` replace the predictor's for this call only (DSPy's own per-call arguments of
    ``Predict``): the call is still traced under ``predictor``, the one an optimizer tunes.

    Example:
        >>> from program.testing import function_lm
        >>> lm = function_lm(lambda messages: "0.4")
        >>> call(dspy.Predict("question -> score: float"), lm, "difficulty", question="?").prediction.score
        0.4
    """
    per_call = {k: v for k, v in (("signature", signature), ("demos", demos)) if v is not None}
    with dspy.context(lm=lm, adapter=adapter or DEFAULT_ADAPTER), ledger.stage(stage_name):
        try:
            return Attempt(predictor(**inputs, **per_call, config=dict(config or {})))
        except AdapterParseError as exc:
            reason = getattr(exc, "reason", None) or str(exc).strip().splitlines()[0]
            return Attempt(None, reason)


@dataclass(frozen=True)
class Solution:
    """A visible reply and the answer found in it; ``reason`` says why either is missing."""

    text: str
    answer: str | None
    reason: str | None = None
    logprobs: list[dict[str, Any]] | None = None  # per token, when the call asked for them


def solve(predictor: dspy.Predict, lm: dspy.LM, stage_name: str, *, config: dict[str, Any] | None = None,
          adapter: dspy.Adapter | None = None, **inputs: Any) -> Solution:
    r"""Ask ``predictor`` (one free-text output) on ``lm`` in ``stage_name`` and extract the answer.

    Example:
        >>> from program.testing import function_lm
        >>> from program.signatures import SolveProblem
        >>> lm = function_lm(lambda messages: "2 + 2 = 4, so \\boxed{4}.")
        >>> solve(dspy.Predict(SolveProblem), lm, "cot", problem="2 + 2?").answer
        '4'
    """
    attempt = call(predictor, lm, stage_name, config=config, adapter=adapter, **inputs)
    if not attempt.ok:
        return Solution("", None, attempt.reason)
    output = next(iter(predictor.signature.output_fields))
    text = strip_thinking(str(getattr(attempt.prediction, output) or ""))
    if text is None:  # an unclosed <think>: the model never got to a visible answer
        return Solution("", None, "the reply ended inside an unclosed thinking section")
    answer = extract_answer(text)
    reason = None if answer is not None else r"no final answer (\boxed{}) in the reply"
    return Solution(text.strip(), answer, reason, _token_logprobs(attempt.prediction))


def _token_logprobs(prediction: dspy.Prediction) -> list[dict[str, Any]] | None:
    """DSPy's ``prediction.logprobs`` back in the transport's shape (None when none were sent)."""
    content = (prediction.get("logprobs") or {}).get("content") if hasattr(prediction, "get") else None
    if not content:
        return None
    return [{"token": t["token"], "logprob": t["logprob"],
             "top": [[alt["token"], alt["logprob"]] for alt in t.get("top_logprobs") or []]} for t in content]
