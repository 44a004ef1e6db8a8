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

from program.lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
