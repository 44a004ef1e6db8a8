"""Public re-exports resolve, and none hides a submodule of the same name."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest


@pytest.mark.parametrize("package", ["program", "optimize", "data"])
def test_exports_resolve_and_do_not_shadow_submodules(package: str) -> None:
    module = importlib.import_module(package)
    submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
    for name in module.__all__:
        assert getattr(module, name) is not None
        assert name not in submodules, f"{package}.{name} would hide the submodule {package}.{name}"


def test_from_optimize_import_search_is_the_subpackage() -> None:
    from optimize import search
    from optimize.evaluation import evaluate

    assert isinstance(search, types.ModuleType) and search.__name__ == "optimize.search"
    assert isinstance(evaluate, types.ModuleType) and callable(evaluate.evaluate)


def _modules(package: str) -> list[str]:
    root = importlib.import_module(package)
    return [package] + [info.name for info in pkgutil.walk_packages(root.__path__, f"{package}.")
                        if not info.name.endswith("moved")]  # the old-path aliases import on access


@pytest.mark.parametrize("package", ["program", "optimize", "data"])
def test_no_module_exports_an_underscore_name(package: str) -> None:
    private = {name: [n for n in getattr(importlib.import_module(name), "__all__", ()) if n.startswith("_")]
               for name in _modules(package)}
    assert {name: names for name, names in private.items() if names} == {}
