"""Majority voting: up to k independent solutions, the most common answer wins.

With ``VoteConfig.adaptive`` (the default) sampling stops once the majority is settled
(``program.voting``); the trace records ``samples_used``. Each sample is its own call with rollout
id and seed 0..k-1 at ``VoteConfig.temperature`` (never ``n > 1``, which not every server honours
and which would hide per-sample usage). Answers are compared after light normalisation (spaces,
``$``, thousands commas, a trailing period); a sample without an answer does not vote. Ties go to
the answer that appeared first.

Example:
    >>> majority(["18", "20", "20", "18"])
    '18'
"""

from __future__ import annotations

from collections.abc import Sequence

import dspy

from program.calls import Failure, Shared, Solution, solve
from program.clients import limits
from program.config import VoteConfig
from program.ledger import captured, usage_summary
from program.signatures import SolveProblem
from program.voting import answer_key, sample_settings, tally, vote

__all__ = ["MajorityVote", "majority", "answer_key"]

STAGE = "vote"


def majority(answers: Sequence[str | None]) -> str | None:
    """The most common answer (first occurrence wins a tie); None if no sample has one.

    Example:
        >>> majority([None, "1,000", "1000", "7"])
        '1,000'
    """
    return tally(answers)[0]


class MajorityVote(dspy.Module):
    """``vote.samples`` solutions on ``lm``; the trace keeps every vote."""

    def __init__(self, lm: dspy.LM, vote: VoteConfig | None = None) -> None:
        super().__init__()
        self._lm = Shared(lm)
        self.vote = vote or VoteConfig()
        self.solver = dspy.Predict(SolveProblem)

    def forward(self, problem: str) -> dspy.Prediction:
        """``Prediction(answer, solution, trace)``: the winning answer and one solution that gave it."""
        lm = self._lm.value

        def draw(i: int) -> Solution:
            return solve(self.solver, lm, STAGE, config=sample_settings(self.vote, i), problem=problem)

        with captured() as calls:
            outcome = vote(draw, self.vote, slots=lambda: limits.free(lm))
        # Failures of the samples that voted, in sample order (samples drawn past the stop do not vote).
        failures = [Failure(STAGE, f"sample {i}: {s.reason}").to_dict()
                    for i, s in enumerate(outcome.solutions) if s.reason]
        votes = [{"sample": i, "answer": s.answer, "visible": s.text} for i, s in enumerate(outcome.solutions)]
        trace = {"method": "vote", "votes": votes, "answer": outcome.answer, "samples_used": outcome.samples_used,
                 "samples_max": outcome.samples_max, **outcome.rounds_record(), "usage": usage_summary(calls),
                 "failures": failures}
        return dspy.Prediction(answer=outcome.answer or "", solution=outcome.solution.text if outcome.answer else "",
                               trace=trace)
