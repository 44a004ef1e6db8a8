"""What improves and measures a program: evaluation, DSPy compile, Optuna search, MLflow tracking.

A subpackage per job: ``evaluation`` (run, record, summarise), ``compiling`` (DSPy optimizers, saved
program directories), ``search`` (the Optuna study), ``calibration`` and ``compare`` (their commands'
library functions), ``commands`` (one file per ``scale`` sub-command); beside them ``cli``,
``experiment`` (experiment files), ``errors`` and ``tracking`` (MLflow).

Names are re-exported lazily (PEP 562): the ``scale`` command imports this package first and
should not pay for MLflow or Optuna before it needs them. No export may share a submodule's name
(``from optimize import search`` must keep giving the subpackage): use
``optimize.search.run.run_search``.

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
    "sweep_budgets": "optimize.evaluation.sweep",
    "export_sft": "optimize.evaluation.sft",
    "compile_experiment": "optimize.compiling.compile",
    "load_program": "optimize.compiling.saved",
    "save_program": "optimize.compiling.saved",
    "run_search": "optimize.search.run",
    "Tracker": "optimize.tracking",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
