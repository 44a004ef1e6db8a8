r"""The compile metric: correctness, less what the tokens and a cut-off System 1 attempt cost.

``CompileMetric`` scores one prediction as ``correct - token_penalty * tokens / 1000 -
cap_penalty * failed_attempt``. The tokens come from a fresh ledger per problem (``Metered``).
A failed attempt is a System 1 call that was cut off at its cap (completion tokens >= the cap,
the rule of the attempt source, ``program.scale.sources.attempt``) or a reply with no boxed
answer; it is charged once per problem. ``within_cap`` (the stage-level System 1 metric) counts
an answer right only when its attempt finished inside the cap.

GEPA gets the same score and text (``CompileMetric.feedback``): gold vs predicted answer, "cut
off at N tokens without an answer" when that is what happened, the plan's steps and routing,
failures, what the predictor being tuned produced, and the gold worked solution when the example
carries one (a gold demo).

Example:
    >>> metric = CompileMetric(token_penalty=0.1)
    >>> ex = dspy.Example(problem="2+2?", answer="4").with_inputs("problem")
    >>> metric(ex, dspy.Prediction(answer="4"))
    1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dspy

from program.ledger import Ledger, recording

__all__ = ["METRIC_DESCRIPTION", "Attempt", "CompileMetric", "Metered", "attempt_of", "describe_outcome",
           "prediction_tokens", "system1_caps"]

METRIC_DESCRIPTION = ("correct (data.grading: the answer field vs the gold answer, math-verify) minus "
                      "token_penalty x total tokens (prompt + completion, all stages) / 1000, minus cap_penalty "
                      "once per problem whose System 1 attempt was cut off at its cap or gave no boxed answer; "
                      "stage system1: right only within its cap; while bootstrapping demos: correct only")
CAPPED_STAGES = ("system1", "cot")  # ledger stages whose calls run on System 1's LM under its max_tokens
_MAX_TEXT = 600  # characters of one model output quoted in GEPA feedback


def system1_caps(lm: Any) -> dict[str, int]:
    """``{stage: cap}`` for the ledger stages that run on System 1's LM ``lm`` (empty without a cap).

    Example:
        >>> from program.testing import function_lm
        >>> system1_caps(function_lm(str, max_tokens=256))
        {'system1': 256, 'cot': 256}
    """
    cap = getattr(lm, "kwargs", {}).get("max_tokens")
    return {stage: int(cap) for stage in CAPPED_STAGES} if cap else {}


class Metered(dspy.Module):
    """Runs ``program`` in a fresh token ledger per call and hangs the ledger on the prediction.

    Optimizers call programs from worker threads, where no caller's ledger is active; this gives
    every problem its own (as ``optimize.evaluation.evaluate`` does), so the metric can charge its tokens.
    The wrapped program is ``.program``; its predictors appear as ``program.<name>``. ``total``, when
    given, also receives every call (what the whole optimization cost).
    """

    def __init__(self, program: dspy.Module, total: Ledger | None = None) -> None:
        super().__init__()
        self.program = program
        self._total = _Held(total)

    def forward(self, **inputs: Any) -> Any:
        ledger = Ledger()
        try:
            with recording(ledger):
                prediction = self.program(**inputs)
        finally:
            if self._total.value is not None:
                self._total.value.extend(ledger)
        if isinstance(prediction, dspy.Prediction):
            prediction._scale_ledger = ledger  # an underscore attribute, not an output field
        return prediction


class _Held:
    """Shared by every copy of a ``Metered`` (optimizers deep-copy their students)."""

    def __init__(self, value: Ledger | None) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict[int, Any]) -> _Held:
        return self


def prediction_tokens(prediction: Any) -> int:
    """Total tokens of one prediction: from its ledger (``Metered``), else its trace's steps, else 0.

    The trace fallback (a SCALE trace's per-step usage) misses the planning calls: prefer ``Metered``.
    """
    ledger = getattr(prediction, "_scale_ledger", None)
    if isinstance(ledger, Ledger):
        return int(ledger.totals()["total_tokens"])
    trace = getattr(prediction, "trace", None) if isinstance(prediction, dspy.Prediction) else None
    steps = trace.get("steps") or [] if isinstance(trace, dict) else []
    usages = [s.get("usage") or {} for s in steps if isinstance(s, dict)]
    return int(sum(u.get("prompt_tokens", 0) + u.get("completion_tokens", 0) for u in usages))


@dataclass(frozen=True)
class Attempt:
    """How System 1's attempt at a problem ended: cut off at ``cut_off_at`` tokens (cap ``cap``), unboxed."""

    cut_off_at: int | None = None
    cap: int | None = None
    unboxed: bool = False

    @property
    def failed(self) -> bool:
        return self.cut_off_at is not None or self.unboxed


def attempt_of(prediction: Any, caps: Mapping[str, int]) -> Attempt:
    """Whether ``prediction``'s System 1 attempt was cut off at its cap or gave no boxed answer.

    Cut off: a call of a capped stage (``caps``, from ``system1_caps``) whose completion tokens reached
    the cap, read from the prediction's ledger (``Metered``); without one, the attempt source's
    ``attempt_capped`` signal in the trace. Unboxed: no answer, or a step whose attempt had none.

    Example:
        >>> from program.ledger import Call, Ledger
        >>> p = dspy.Prediction(answer="")
        >>> p._scale_ledger = Ledger([Call("system1", "m", prompt_tokens=90, completion_tokens=256)])
        >>> attempt_of(p, {"system1": 256})
        Attempt(cut_off_at=256, cap=256, unboxed=True)
    """
    if prediction is None:
        return Attempt(unboxed=True)
    cut_off_at, cap = None, None
    ledger = getattr(prediction, "_scale_ledger", None)
    signals = _attempt_signals(prediction)
    if isinstance(ledger, Ledger):
        for call in ledger.calls:
            limit = caps.get(call.stage)
            if limit and call.completion_tokens >= limit:
                cut_off_at, cap = call.completion_tokens, limit
                break
    else:
        for signal in signals:
            if signal.get("attempt_capped"):
                cut_off_at, cap = int(signal.get("attempt_length", 0)), caps.get("system1")
                break
    answer = getattr(prediction, "answer", None)
    unboxed = answer in (None, "") or any(signal.get("attempt_no_answer") for signal in signals)
    return Attempt(cut_off_at, cap, unboxed)


def _attempt_signals(prediction: Any) -> list[dict[str, Any]]:
    trace = getattr(prediction, "trace", None) if isinstance(prediction, dspy.Prediction) else None
    steps = trace.get("steps") or [] if isinstance(trace, dict) else []
    found = []
    for step in steps:
        difficulty = step.get("difficulty") if isinstance(step, dict) else None
        signals = difficulty.get("signals") if isinstance(difficulty, dict) else None
        if isinstance(signals, dict):
            found.append(signals)
    return found


@dataclass(frozen=True)
class CompileMetric:
    """The compile metric (see the module docstring and ``METRIC_DESCRIPTION``).

    Called with a ``trace`` (an optimizer bootstrapping demos) it returns correctness as a bool
    (within the cap, for ``within_cap``): a penalised wrong answer is a negative float, which DSPy
    would read as a success.
    """

    token_penalty: float = 0.0
    cap_penalty: float = 0.0
    caps: Mapping[str, int] = field(default_factory=dict)
    within_cap: bool = False

    def __call__(self, example: Any, prediction: Any, trace: Any = None) -> float | bool:
        attempt = attempt_of(prediction, self.caps)
        correct = self.correct(example, prediction) and not (self.within_cap and attempt.failed)
        if trace is not None:
            return correct
        return (float(correct) - self.token_penalty * prediction_tokens(prediction) / 1000
                - (self.cap_penalty if attempt.failed else 0.0))

    @staticmethod
    def correct(example: Any, prediction: Any) -> bool:
        from data.grading import metric

        return prediction is not None and bool(metric(example, prediction))

    def feedback(self, gold: Any, pred: Any, trace: Any = None, pred_name: str | None = None,
                 pred_trace: Any = None) -> dspy.Prediction:
        """GEPA's 5-argument metric: the score, and text saying what went wrong and where.

        Example:
            >>> out = CompileMetric().feedback(dspy.Example(answer="4"), dspy.Prediction(answer="5"))
            >>> out.score, out.feedback.splitlines()[0]
            (0.0, 'Wrong: the gold answer is 4, the program answered 5.')
        """
        return dspy.Prediction(score=self(gold, pred), feedback=describe_outcome(gold, pred, self, pred_name,
                                                                                  pred_trace))


def describe_outcome(gold: Any, pred: Any, metric: CompileMetric | None = None, pred_name: str | None = None,
                     pred_trace: Any = None) -> str:
    """Feedback text: verdict, the cap, tokens, the plan's steps, failures, the tuned predictor's output."""
    metric = metric or CompileMetric()
    answer = getattr(pred, "answer", None) if pred is not None else None
    attempt = attempt_of(pred, metric.caps)
    if CompileMetric.correct(gold, pred) and not (metric.within_cap and attempt.failed):
        lines = [f"Correct: the program answered {answer}, matching the gold answer {gold.answer}."]
    else:
        shown = answer if answer not in (None, "") else "nothing (no final answer)"
        lines = [f"Wrong: the gold answer is {gold.answer}, the program answered {shown}."]
    lines += _cap_lines(attempt, metric)
    tokens = prediction_tokens(pred)
    if tokens:
        cost = f" (costing {metric.token_penalty * tokens / 1000:.3f} of the score)" if metric.token_penalty else ""
        lines.append(f"It used {tokens} tokens{cost}.")
    trace = getattr(pred, "trace", None) if isinstance(pred, dspy.Prediction) else None
    if isinstance(trace, dict):
        for step in trace.get("steps") or []:
            lines.append(_describe_step(step))
        for failure in trace.get("failures") or []:
            if isinstance(failure, dict):
                where = f" at step {failure['step'] + 1}" if failure.get("step") is not None else ""
                lines.append(f"Problem in {failure.get('stage')}{where}: {failure.get('reason')}.")
    if pred_name:
        outputs = [dict(out) for _, _, out in (pred_trace or []) if hasattr(out, "items")]
        if outputs:
            text = "; ".join(str(o)[:_MAX_TEXT] for o in outputs)
            lines.append(f"The predictor being tuned ({pred_name}) produced: {text}")
    solution = getattr(gold, "solution", None) if hasattr(gold, "get") else None
    if solution and attempt.failed:
        lines.append(f"A worked solution that finishes: {str(solution)[:_MAX_TEXT]}")
    return "\n".join(lines)


def _cap_lines(attempt: Attempt, metric: CompileMetric) -> list[str]:
    cost = f" (costing {metric.cap_penalty:.3f} of the score)" if metric.cap_penalty and attempt.failed else ""
    if attempt.cut_off_at is not None:
        cap = f" (its cap is {attempt.cap})" if attempt.cap else ""
        ending = "without an answer" if attempt.unboxed else "before it finished"
        return [f"System 1's attempt was cut off at {attempt.cut_off_at} tokens {ending}{cap}{cost}: "
                "a shorter solution that ends in \\boxed{} within the cap is needed."]
    if attempt.unboxed:
        return [f"The reply ended without a \\boxed{{}} answer{cost}."]
    return []


def _describe_step(step: Any) -> str:
    if not isinstance(step, dict):
        return f"Step: {str(step)[:_MAX_TEXT]}"
    difficulty = step.get("difficulty")
    score = difficulty.get("score") if isinstance(difficulty, dict) else difficulty
    rated = f"difficulty {score:.2f}, " if isinstance(score, (int, float)) else ""
    value = step.get("value")
    result = f"result {value}" if value not in (None, "") else "NO result (no \\boxed{} answer)"
    return (f"Step {int(step.get('index', 0)) + 1} ({rated}{step.get('mode', '?')}): "
            f"{str(step.get('step', ''))[:_MAX_TEXT]} -> {result}")
