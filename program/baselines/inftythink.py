r"""Prompted InftyThink (arXiv 2503.06692): bounded reasoning segments joined by summaries.

Iteration i sees ONLY the question and the latest summary (never earlier reasoning). Its segment
is capped at ``segment_tokens`` and is asked to end either with a final ``\boxed{}`` answer or
with "Summary:" and a bullet list of what has been achieved. Then:

- a final answer in the reasoning (before any summary) stops the loop;
- otherwise the segment's own summary is carried on; a segment without one (cut off by its token
  cap) is summarised by a separate call (ledger stage ``inftythink_summary``);
- after ``max_iterations`` segments the loop stops with whatever answer the last one gave.

Example:
    >>> split_summary("Work so far.\nSummary:\n- x = 3")
    ('Work so far.', '- x = 3')
"""

from __future__ import annotations

import re

import dspy

from data.grading import extract_answer, strip_thinking
from program.calls import Failure, Shared, call, solve
from program.config import InftyThinkConfig
from program.ledger import captured, usage_summary
from program.signatures import InftyThinkSegment, InftyThinkSummary

__all__ = ["InftyThink", "split_summary"]

NO_PROGRESS = "(nothing yet: this is the first segment)"
_SUMMARY = re.compile(r"^[\s*#]*summary[\s*]*:?[\s*]*$|^[\s*#]*summary[\s*]*:[\s*]*", re.I | re.M)


def split_summary(segment: str) -> tuple[str, str]:
    """(reasoning, summary) at the last "Summary:" header; the summary is "" when there is none."""
    matches = list(_SUMMARY.finditer(segment))
    if not matches:
        return segment.strip(), ""
    last = matches[-1]
    return segment[:last.start()].strip(), segment[last.end():].strip()


class InftyThink(dspy.Module):
    """Segments of at most ``segment_tokens`` with summaries in between, on ``lm``."""

    def __init__(self, lm: dspy.LM, config: InftyThinkConfig | None = None) -> None:
        super().__init__()
        self._lm = Shared(lm)
        self.config = config or InftyThinkConfig()
        self.segment = dspy.Predict(InftyThinkSegment)
        self.summarize = dspy.Predict(InftyThinkSummary)

    def forward(self, problem: str) -> dspy.Prediction:
        """``Prediction(answer, solution, trace)``; ``solution`` is the last segment's reasoning."""
        progress, answer, reasoning = NO_PROGRESS, None, ""
        iterations: list[dict[str, object]] = []
        failures: list[dict[str, object]] = []
        with captured() as calls:
            for i in range(self.config.max_iterations):
                result = solve(self.segment, self._lm.value, "inftythink",
                               config={"max_tokens": self.config.segment_tokens}, problem=problem,
                               progress=progress, token_limit=self.config.segment_tokens)
                reasoning, summary = split_summary(result.text)
                answer = extract_answer(reasoning)
                record = {"iteration": i, "progress": progress, "reasoning": reasoning, "summary": summary,
                          "answer": answer}
                iterations.append(record)
                if answer is not None:
                    break
                if not summary:
                    summary = self._summarize(problem, progress, reasoning, i, failures)
                    record["summary"] = summary
                progress = summary or progress
            else:
                failures.append(Failure("inftythink", f"no final answer after {self.config.max_iterations} "
                                                      "iteration(s)").to_dict())
        trace = {"method": "inftythink", "iterations": iterations, "usage": usage_summary(calls),
                 "failures": failures}
        return dspy.Prediction(answer=answer or "", solution=reasoning, trace=trace)

    def _summarize(self, problem: str, progress: str, reasoning: str, iteration: int,
                   failures: list[dict[str, object]]) -> str:
        """A summary for a segment that ended without one ("" when it cannot be read, recorded)."""
        result = call(self.summarize, self._lm.value, "inftythink_summary",
                      config={"max_tokens": self.config.summary_max_tokens}, problem=problem, progress=progress,
                      reasoning=reasoning)
        summary = strip_thinking(str(result.prediction.summary)) if result.prediction is not None else None
        reason = result.reason or ("the summary ended inside an unclosed thinking section" if summary is None
                                   else "the summary was empty")
        if summary is None or not summary.strip():
            failures.append(Failure("inftythink_summary", f"iteration {iteration}: {reason}; "
                                                          "kept the previous summary").to_dict())
            return ""
        return summary.strip()
