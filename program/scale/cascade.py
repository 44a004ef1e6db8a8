"""The cascade: the whole problem as ONE step, scored by the difficulty source, escalated above tau.

The problem-level router that SCALE's step-level routing is measured against: System 1 solves
the problem (with ``difficulty_source: attempt`` that attempt is the score's evidence), and a
problem whose score is above tau is solved again by System 2. There is no decomposition call and
no last-step rule (the one step is the last, and the rule would send every problem to System 2).
Everything else is SCALE's: the same predictors, sources, routing, ledger stages and trace.

Example:
    >>> from program.config import ScaleConfig
    >>> from program.testing import scripted_systems
    >>> cascade = Cascade(ScaleConfig(threshold=0.5), scripted_systems(lambda m: "0.8", lambda m: "\\\\boxed{4}"))
    >>> prediction = cascade(problem="2 + 2?")
    >>> prediction.answer, prediction.trace["steps"][0]["mode"], prediction.trace["method"]
    ('4', 'system2', 'cascade')
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from program.clients.lm import Systems
from program.config import ScaleConfig
from program.scale import Scale
from program.scale.decompose import Decomposition

__all__ = ["Cascade", "WHOLE_PROBLEM"]

WHOLE_PROBLEM = "Solve the whole problem and give its final answer."


class Cascade(Scale):
    """SCALE with a one-step plan: route the whole problem, no decomposition."""

    def __init__(self, config: ScaleConfig, systems: Systems, **options: Any) -> None:
        if not isinstance(config, ScaleConfig):  # Scale names the mistake: from_config is for a ProgramConfig
            super().__init__(config, systems, **options)
        super().__init__(replace(config, last_step_score=None, rewrite=False, num_candidates=1), systems, **options)
        self.method = "cascade"

    def idle_predictors(self) -> list[str]:
        """SCALE's idle predictors, and the planning ones: a cascade never decomposes."""
        return sorted(set(super().idle_predictors()) | {"decompose", "select", "rewrite"})

    def plan_settings(self) -> dict[str, Any]:
        """SCALE's, marked: a cascade's one-step plan is never a SCALE plan with the same knobs."""
        return {**super().plan_settings(), "plan": "whole problem"}

    def decomposition_of(self, problem: str) -> Decomposition:
        """One step, the whole problem; no call."""
        return Decomposition(steps=[WHOLE_PROBLEM])
