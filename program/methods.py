"""One door from a ``ProgramConfig`` to a runnable program, for every name in ``METHODS``.

Example:
    >>> from program.config import ProgramConfig
    >>> from program.testing import scripted_systems
    >>> program = build_program(ProgramConfig(method="system2"), scripted_systems(str, str))
    >>> program.config.threshold, program(problem="2 + 2?").trace["method"]
    (-1.0, 'system2')
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import dspy

from program.baselines import BudgetForcing, CoT, InftyThink, MajorityVote
from program.clients.lm import Systems, build_systems
from program.config import METHODS, ConfigError, ProgramConfig
from program.scale import Scale
from program.scale.cascade import Cascade

__all__ = ["build_program", "METHOD_OPTIONS"]

# Keyword options each method accepts (anything else is a mistake worth naming).
_SCALE_OPTIONS = ("plan_cache", "decompose_retries", "difficulty_max_tokens")
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "scale": _SCALE_OPTIONS, "system1": _SCALE_OPTIONS, "system2": _SCALE_OPTIONS, "cascade": _SCALE_OPTIONS,
    "cot": (), "vote": (), "inftythink": (), "bf": ("lm", "thinking_budget", "num_waits"),
}


def build_program(config: ProgramConfig, systems: Systems | None = None, **options: Any) -> dspy.Module:
    """The program of ``config.method``, on ``systems`` (default: built from ``config.lm``).

    - ``scale``: SCALE with ``config.scale`` (System 2 a vote per ``config.vote`` when
      ``scale.system2_kind`` is ``vote``); options ``plan_cache``, ``decompose_retries``,
      ``difficulty_max_tokens``.
    - ``system1`` / ``system2``: uniform SCALE (tau = 1 / tau = -1, no last-step rule); the
      decomposition is kept, difficulty scoring is skipped (it could not change a route).
    - ``cascade``: the whole problem as one step, scored by ``config.scale.difficulty_source`` and
      escalated to System 2 above ``config.scale.threshold`` (the problem-level router).
    - ``cot``, ``vote`` (``config.vote``), ``inftythink`` (``config.inftythink``): on System 1.
    - ``bf``: the whole problem through budget forcing on System 2's endpoint; options ``lm``,
      ``thinking_budget``, ``num_waits``.

    Raises ``ConfigError`` for an unknown method or an option the method does not take.
    """
    method = config.method
    if method not in METHODS:
        raise ConfigError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    unknown = sorted(set(options) - set(METHOD_OPTIONS[method]))
    if unknown:
        allowed = ", ".join(METHOD_OPTIONS[method]) or "none"
        raise ConfigError(f"Method {method!r} takes no option(s) {', '.join(map(repr, unknown))}; "
                          f"its options are: {allowed}.")
    if method == "bf":
        return BudgetForcing(config.lm, **options)
    systems = systems or build_systems(config.lm)
    if method == "scale":
        return Scale(config.scale, systems, vote=config.vote, **options)
    if method == "cascade":
        return Cascade(config.scale, systems, vote=config.vote, **options)
    if method in ("system1", "system2"):
        uniform = replace(config.scale, threshold=1.0 if method == "system1" else -1.0, last_step_score=None)
        program = Scale(uniform, systems, assess_difficulty=False, vote=config.vote, **options)
        program.method = method  # its traces say which uniform method ran, not "scale"
        return program
    if method == "cot":
        return CoT(systems.system1)
    if method == "vote":
        return MajorityVote(systems.system1, config.vote)
    return InftyThink(systems.system1, config.inftythink)
