"""One door from a ``ProgramConfig`` to a runnable program, for every name in ``METHODS``.

Example:
    >>> from program.config import ProgramConfig
    >>> from program.testing import scripted_systems
    >>> program = build_program(ProgramConfig(method="system2"), scripted_systems(str, str))
    >>> program.config.threshold, program(problem="2 + 2?").trace["method"]
    (-1.0, 'system2')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import dspy

from program.baselines import BudgetForcing, CoT, InftyThink, MajorityVote
from program.clients.lm import Systems, build_systems
from program.config import METHODS, ConfigError, ProgramConfig
from program.scale import Scale
from program.scale.cascade import Cascade

__all__ = ["build_program", "MethodBuilder", "METHOD_REGISTRY", "METHOD_OPTIONS"]


@dataclass(frozen=True)
class MethodBuilder:
    """How a method is built: ``build(config, systems, options)`` (``systems()`` builds them on first
    use: ``bf`` never does), and the keyword options it accepts (anything else is a mistake worth naming)."""

    build: Callable[[ProgramConfig, Callable[[], Systems], dict[str, Any]], dspy.Module]
    options: tuple[str, ...] = ()


def _uniform(method: str) -> Callable[[ProgramConfig, Callable[[], Systems], dict[str, Any]], dspy.Module]:
    """``system1`` / ``system2``: SCALE with tau = 1 / -1, no last-step rule, no scoring."""
    def build(config: ProgramConfig, systems: Callable[[], Systems], options: dict[str, Any]) -> dspy.Module:
        uniform = replace(config.scale, threshold=1.0 if method == "system1" else -1.0, last_step_score=None)
        program = Scale(uniform, systems(), assess_difficulty=False, vote=config.vote, **options)
        program.method = method  # its traces say which uniform method ran, not "scale"
        return program
    return build


_SCALE_OPTIONS = ("plan_cache", "decompose_retries", "difficulty_max_tokens")

# The one name-to-method registry; its names are program.names.METHODS (tests/unit/test_registries.py).
METHOD_REGISTRY: dict[str, MethodBuilder] = {
    "scale": MethodBuilder(lambda c, s, o: Scale.from_config(c, s(), **o), _SCALE_OPTIONS),
    "cot": MethodBuilder(lambda c, s, o: CoT(s().system1)),
    "vote": MethodBuilder(lambda c, s, o: MajorityVote(s().system1, c.vote)),
    "inftythink": MethodBuilder(lambda c, s, o: InftyThink(s().system1, c.inftythink)),
    "bf": MethodBuilder(lambda c, s, o: BudgetForcing(c.lm, **o), ("lm", "thinking_budget", "num_waits")),
    "system1": MethodBuilder(_uniform("system1"), _SCALE_OPTIONS),
    "system2": MethodBuilder(_uniform("system2"), _SCALE_OPTIONS),
    "cascade": MethodBuilder(lambda c, s, o: Cascade.from_config(c, s(), **o), _SCALE_OPTIONS),
}
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {name: method.options for name, method in METHOD_REGISTRY.items()}


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
    method = METHOD_REGISTRY.get(config.method)
    if method is None:
        raise ConfigError(f"Unknown method {config.method!r}; choose one of {', '.join(METHODS)}.")
    unknown = sorted(set(options) - set(method.options))
    if unknown:
        allowed = ", ".join(method.options) or "none"
        raise ConfigError(f"Method {config.method!r} takes no option(s) {', '.join(map(repr, unknown))}; "
                          f"its options are: {allowed}.")
    return method.build(config, lambda: systems or build_systems(config.lm), options)
