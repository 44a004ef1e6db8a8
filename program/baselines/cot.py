r"""Chain of thought: one pass, "reason step by step and put the final answer in \boxed{}".

The single-sample baseline of the SCALE paper, on System 1's LM by default. ``BudgetForcing``
(``forced.py``) is the same pass through an s1 budget-forced LM.

Example:
    >>> from program.testing import function_lm
    >>> CoT(function_lm(lambda m: "3 + 4 = 7. \\boxed{7}"))(problem="3 + 4?").answer
    '7'
"""

from __future__ import annotations

import dspy

from program.calls import Failure, Shared, solve
from program.ledger import captured, usage_summary
from program.signatures import SolveProblem

__all__ = ["CoT"]


class CoT(dspy.Module):
    """One solution per problem. ``stage_name``/``method`` name its ledger stage and trace."""

    def __init__(self, lm: dspy.LM, *, stage_name: str = "cot", method: str = "cot") -> None:
        super().__init__()
        self._lm = Shared(lm)
        self.stage_name = stage_name
        self.method = method
        self.solver = dspy.Predict(SolveProblem)

    def forward(self, problem: str) -> dspy.Prediction:
        """``Prediction(answer, solution, trace)``; ``answer`` is "" when none could be read."""
        with captured() as calls:
            result = solve(self.solver, self._lm.value, self.stage_name, problem=problem)
        failures = [Failure(self.stage_name, result.reason).to_dict()] if result.reason else []
        trace = {"method": self.method, "visible": result.text, "value": result.answer,
                 "usage": usage_summary(calls), "failures": failures}
        return dspy.Prediction(answer=result.answer or "", solution=result.text, trace=trace)
