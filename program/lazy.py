"""Lazy re-exports for package ``__init__`` files (PEP 562).

``import program.config`` or the ``scale`` command should not pay for DSPy, MLflow or Optuna
before a name that needs them is used.

Example:
    >>> getattr_, dir_ = lazy_exports("program", {"LMConfig": "program.config"})
    >>> getattr_("LMConfig").__name__
    'LMConfig'
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` that import ``exports[name]`` on first use."""

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def dir_() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return getattr_, dir_
