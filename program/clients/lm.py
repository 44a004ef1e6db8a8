"""Build the ``dspy.LM`` objects of a run from an ``LMConfig``.

Three roles, each its own LM (and so its own line in DSPy's usage tracker):

- ``stages``: decomposition, selection, difficulty (non-thinking, small budgets);
- ``system1``: the fast solver (non-thinking);
- ``system2``: the slow solver (thinking: Qwen3 switch, provider effort, or s1 budget forcing).

The LMs carry custom engines (``program.clients.engine``), so DSPy's own cache is off: ours lives in
``program.clients.transport`` and keeps usage on cache hits. The LMs are bound with ``dspy.context`` at
call time, never stored on predictors, so saved programs hold no connection settings.

Example:
    >>> from program.presets import preset
    >>> systems = build_systems(preset("qwen3"))
    >>> systems.system2.model
    'scale/system2'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import dspy

from program.clients.engine import ChatEngine, lm_from_engine
from program.config import LMConfig, ModeConfig

__all__ = ["Role", "Systems", "build_lm", "build_systems", "lm_from_engine"]


class _CapsAreExpected(logging.Filter):
    """Drop DSPy's "LM response was truncated" warning: every budget here is a deliberate cap (a
    1-token digit rating, System 1's attempt, a forced-thinking segment), and where it matters the
    trace says so (``attempt_capped``, the ledger's clamp, budget forcing's cap records)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "LM response was truncated" not in record.getMessage()


logging.getLogger("dspy.clients.lm").addFilter(_CapsAreExpected())

Role = Literal["stages", "system1", "system2"]


@dataclass(frozen=True)
class Systems:
    """The three LMs a method runs on."""

    stages: dspy.LM
    system1: dspy.LM
    system2: dspy.LM


def build_lm(config: LMConfig, role: Role) -> dspy.LM:
    """The LM of one role, with the mode's sampling defaults and thinking transport."""
    return build_mode_lm(config, getattr(config, role), role)


def build_mode_lm(config: LMConfig, mode: ModeConfig, name: str) -> dspy.LM:
    """An LM for ``mode`` (its own endpoint, else ``config``'s), named ``scale/<name>``: e.g. GEPA's reflection LM.

    Example:
        >>> from program.config import Endpoint
        >>> lm = build_mode_lm(LMConfig(Endpoint("openai/m", api_base="http://h:8000/v1")), ModeConfig(), "x")
        >>> lm.model
        'scale/x'
    """
    endpoint = config.endpoint_for(mode)
    if mode.thinking == "forced":
        from program.clients.budget_forcing import ForcedEngine

        engine: object = ForcedEngine(endpoint, mode, config.forcing)
    else:
        engine = ChatEngine(endpoint, mode, config.forcing)
    return lm_from_engine(engine, name, temperature=mode.temperature, max_tokens=mode.max_tokens)


def build_systems(config: LMConfig) -> Systems:
    """All three LMs of ``config``."""
    return Systems(stages=build_lm(config, "stages"), system1=build_lm(config, "system1"),
                   system2=build_lm(config, "system2"))
