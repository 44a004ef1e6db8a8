"""What improves and measures a program: evaluation, DSPy compile, Optuna search, MLflow tracking.

Names are re-exported lazily (PEP 562): the ``scale`` command imports this package first and
should not pay for MLflow or Optuna before it needs them. No export may share a submodule's name
(``from optimize import evaluate`` must keep giving the module): use
``optimize.evaluate.evaluate``.

Example:
    >>> from optimize import load_program  # doctest: +SKIP
    >>> loaded = load_program("runs/quickstart/compiled-bootstrap")  # doctest: +SKIP
    >>> loaded.program(problem="What is 17 * 23?").answer  # doctest: +SKIP
    '391'
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExperimentConfig": "optimize.experiment",
    "load_experiment": "optimize.experiment",
    "save_experiment": "optimize.experiment",
    "sweep_budgets": "optimize.sweep",
    "export_sft": "optimize.sft",
    "compile_experiment": "optimize.compile",
    "load_program": "optimize.saved",
    "save_program": "optimize.saved",
    "run_search": "optimize.search",
    "Tracker": "optimize.tracking",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'optimize' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
