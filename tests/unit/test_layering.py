"""The one architecture rule, checked: imports flow one way, ``data`` <- ``program`` <- ``optimize``.

Read from the source (no module is imported): every ``import`` / ``from ... import`` in every file of
the three packages, lazy ones inside functions included, must point at the same layer or one below.
Within the layers, the imports a module runs when it loads (its top-level statements) must form no
circle, so any module can be imported on its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {"data": 0, "program": 1, "optimize": 2}


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(nodes: list[ast.stmt] | ast.AST) -> set[str]:
    """The project modules that ``nodes`` import (``from a import b`` counts as ``a.b`` if that is one)."""
    walked = ast.walk(nodes) if isinstance(nodes, ast.AST) else nodes
    names: set[str] = set()
    for node in walked:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                      for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return {name for name in names if name in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_from_a_layer_above_its_own(module: str) -> None:
    layer = LAYERS[module.split(".")[0]]
    upward = sorted(d for d in _imports(ast.parse(MODULES[module].read_text())) if LAYERS[d.split(".")[0]] > layer)
    assert not upward, f"{module} imports {upward}: move the shared piece down a layer, or pass it in"


def test_the_imports_run_at_load_time_form_no_circle() -> None:
    graph = {m: _imports(ast.parse(p.read_text()).body) - {m} for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            assert state.get(dep) != 1, f"import circle: {' -> '.join([*path, module, dep])}"
            if dep not in state:
                visit(dep, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
