"""SCALE (arXiv 2512.00466): decompose, rate each step, route it to System 1 or 2, solve in order.

- ``scale``: the ``Scale`` module (plan, then solve) and its plan caches;
- ``decompose``: the sub-problems (rewrite, candidates, selection); ``difficulty``: the prompted
  rating; ``sources/``: every difficulty source; ``routing``: the threshold rule;
- ``steps``: what a step sees of the earlier ones; ``cascade``: the whole problem as one step.

May import: ``program.clients``, ``program.calls``, ``program.concurrent``, ``program.voting``,
``program.signatures``, the config and the ledger. Not the baselines, ``program.methods`` or the test doubles.

Example:
    >>> from program.scale import Scale
    >>> Scale.__name__
    'Scale'
"""

from __future__ import annotations

from program.lazy import lazy_exports

_EXPORTS = {
    "Scale": "program.scale.scale",
    "Plan": "program.scale.scale",
    "PlanCache": "program.scale.scale",
    "MemoryPlanCache": "program.scale.scale",
    "shown_problem": "program.scale.scale",
    "Cascade": "program.scale.cascade",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
