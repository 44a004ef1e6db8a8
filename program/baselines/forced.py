"""s1 budget forcing alone: the whole problem in one budget-forced pass (ledger stage ``bf``).

The thinking cap and the number of "Wait" continuations come from the LM config's System 2 mode
and forcing settings, or from ``thinking_budget`` / ``num_waits`` (budget sweeps).

Example:
    >>> from program.presets import preset
    >>> BudgetForcing(preset("local"), thinking_budget=128).stage_name
    'bf'
"""

from __future__ import annotations

import dspy

from program.baselines.cot import CoT
from program.config import ConfigError, LMConfig

__all__ = ["BudgetForcing"]


class BudgetForcing(CoT):
    """CoT through ``program.clients.budget_forcing.forced_lm`` (or a given ``lm``, e.g. a scripted one)."""

    def __init__(self, config: LMConfig | None = None, *, lm: dspy.LM | None = None,
                 thinking_budget: int | None = None, num_waits: int | None = None) -> None:
        if lm is None:
            if config is None:
                raise ConfigError("BudgetForcing needs an LM config (or `lm=`) to build its budget-forced LM.")
            from program.clients.budget_forcing import forced_lm

            lm = forced_lm(config, thinking_budget=thinking_budget, num_waits=num_waits)
        super().__init__(lm, stage_name="bf", method="bf")
