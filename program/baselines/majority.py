"""Majority voting: k independent solutions, the most common answer wins.

Each sample is its own call with rollout id and seed 0..k-1 at ``VoteConfig.temperature`` (never
``n > 1``, which not every server honours and which would hide per-sample usage). Answers are
compared after light normalisation (spaces, ``$``, thousands commas, a trailing period); a sample
without an answer does not vote. Ties go to the answer that appeared first.

Example:
    >>> majority(["18", "20", "20", "18"])
    '18'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import dspy

from program.config import VoteConfig
from program.execute import Failure, Shared, captured, rollout, solve, usage_summary
from program.signatures import SolveProblem

__all__ = ["MajorityVote", "majority", "answer_key"]

STAGE = "vote"


def answer_key(answer: str) -> str:
    """The form answers are compared in: no spaces or `$`, no thousands commas, no trailing period.

    Example:
        >>> answer_key("$1,000.")
        '1000'
    """
    key = re.sub(r"\s+|\$", "", answer)
    key = re.sub(r"(?<=\d),(?=\d{3}\b)", "", key)
    return key.rstrip(".")


def majority(answers: Sequence[str | None]) -> str | None:
    """The most common answer (first occurrence wins a tie); None if no sample has one.

    Example:
        >>> majority([None, "1,000", "1000", "7"])
        '1,000'
    """
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for answer in answers:
        if answer is None:
            continue
        key = answer_key(answer)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, answer)
    if not counts:
        return None
    best = max(counts.values())
    winner = next(key for key in counts if counts[key] == best)  # dicts keep first-seen order
    return first[winner]


class MajorityVote(dspy.Module):
    """``vote.samples`` solutions on ``lm``; the trace keeps every vote."""

    def __init__(self, lm: dspy.LM, vote: VoteConfig | None = None) -> None:
        super().__init__()
        self._lm = Shared(lm)
        self.vote = vote or VoteConfig()
        self.solver = dspy.Predict(SolveProblem)

    def forward(self, problem: str) -> dspy.Prediction:
        """``Prediction(answer, solution, trace)``: the winning answer and one solution that gave it."""
        votes: list[dict[str, Any]] = []
        failures: list[dict[str, object]] = []
        with captured() as calls:
            for i in range(self.vote.samples):
                settings = {**rollout(i), "temperature": self.vote.temperature}
                result = solve(self.solver, self._lm.value, STAGE, config=settings, problem=problem)
                votes.append({"sample": i, "answer": result.answer, "visible": result.text})
                if result.reason:
                    failures.append(Failure(STAGE, f"sample {i}: {result.reason}").to_dict())
        answer = majority([v["answer"] for v in votes])
        solution = next((v["visible"] for v in votes if answer is not None and v["answer"] == answer), "")
        trace = {"method": "vote", "votes": votes, "answer": answer, "usage": usage_summary(calls),
                 "failures": failures}
        return dspy.Prediction(answer=answer or "", solution=solution, trace=trace)
