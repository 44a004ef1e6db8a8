"""What runs at inference time: SCALE, its baselines, and the LMs they run on.

Names are re-exported lazily (PEP 562), so ``import program.config`` stays cheap and does not
pull in DSPy.

Example:
    >>> from program import ProgramConfig, build_program
    >>> ProgramConfig(method="cot").method
    'cot'
"""

from __future__ import annotations

from program.lazy import lazy_exports
from program.moved import install as _install_old_paths

_EXPORTS = {
    "ConfigError": "program.config",
    "LMConfig": "program.config",
    "ScaleConfig": "program.config",
    "VoteConfig": "program.config",
    "InftyThinkConfig": "program.config",
    "ProgramConfig": "program.config",
    "METHODS": "program.config",
    "Systems": "program.clients.lm",
    "build_systems": "program.clients.lm",
    "Ledger": "program.ledger",
    "recording": "program.ledger",
    "Scale": "program.scale.scale",
    "Plan": "program.scale.scale",
    "PlanCache": "program.scale.scale",
    "MemoryPlanCache": "program.scale.scale",
    "CoT": "program.baselines",
    "MajorityVote": "program.baselines",
    "InftyThink": "program.baselines",
    "BudgetForcing": "program.baselines",
    "build_program": "program.methods",
    "PlainAdapter": "program.adapter",
    "Failure": "program.calls",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
_install_old_paths()  # old import paths of moved modules warn and still work (program.moved)
