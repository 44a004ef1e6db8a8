"""Old import paths of the modules that moved into layers, kept for one release with a warning.

``program/`` was 33 flat files; it is now grouped by layer (``clients/``, ``serving/``, ``scale/``,
``testing/``). Users' own code and tests may still import the old paths, so each old path is an
alias of the module at its new one (the same module object, so a monkeypatch through either path
patches both), and importing it warns with the new path. ``program.execute`` was split by concept;
its alias is a module holding the names it exported. The aliases go in the next release.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     import program.transport
    >>> program.transport is __import__("program.clients.transport").clients.transport
    True
    >>> str(caught[0].message).split(";")[0]
    'program.transport moved to program.clients.transport'
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from collections.abc import Sequence

__all__ = ["MOVED", "SPLIT", "install"]

MOVED: dict[str, str] = {
    "program.transport": "program.clients.transport",
    "program.replicas": "program.clients.replicas",
    "program.failures": "program.clients.failures",
    "program.context": "program.clients.context",
    "program.engine": "program.clients.engine",
    "program.lm": "program.clients.lm",
    "program.templates": "program.clients.templates",
    "program.budget_forcing": "program.clients.budget_forcing",
    "program.local": "program.serving.local",
    "program.decompose": "program.scale.decompose",
    "program.difficulty": "program.scale.difficulty",
    "program.routing": "program.scale.routing",
    "program.cascade": "program.scale.cascade",
    "program.sources": "program.scale.sources",
    "program.sources.attempt": "program.scale.sources.attempt",
    "program.sources.base": "program.scale.sources.base",
    "program.sources.confidence": "program.confidence",
    "program.sources.features": "program.scale.sources.features",
    "program.sources.learned": "program.scale.sources.learned",
    "program.sources.learned_model": "program.scale.sources.learned_model",
    "program.sources.rating": "program.scale.sources.rating",
    "program.sources.rating_logprobs": "program.scale.sources.rating_logprobs",
    "program.fakeserver": "program.testing.fakeserver",
    "program.garbage": "program.testing.garbage",
}
# program.execute was split by concept: name -> the module that holds it now.
SPLIT: dict[str, dict[str, str]] = {
    "program.execute": {
        **dict.fromkeys(("Failure", "Attempt", "Shared", "call", "rollout", "Solution", "solve"), "program.calls"),
        **dict.fromkeys(("StepResult", "render_context", "render_steps", "NO_EARLIER_STEPS", "ContextMode"),
                        "program.scale.steps"),
        **dict.fromkeys(("captured", "usage_summary"), "program.ledger"),
    },
}


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths only; everything else is left to Python's own finders."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED and fullname not in SPLIT:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.name in SPLIT:
            homes = SPLIT[spec.name]
            warnings.warn(f"{spec.name} was split into {', '.join(sorted(set(homes.values())))}; import each name "
                          "from there (the old path goes in the next release)", DeprecationWarning, stacklevel=2)
            module = types.ModuleType(spec.name)
            for name, home in homes.items():
                setattr(module, name, getattr(importlib.import_module(home), name))
            return module
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there (the old path goes in the next release)",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module is the new path's, already imported."""


def install() -> None:
    """Put the old-path finder on ``sys.meta_path`` once (``program/__init__`` calls it)."""
    if not any(isinstance(finder, _OldPaths) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OldPaths())  # before the path finder, which would load a second copy
