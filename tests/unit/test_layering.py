"""The one architecture rule, checked: imports flow one way, ``data`` <- ``program`` <- ``optimize``.

Read from the source (no module is imported): every ``import`` / ``from ... import`` in every file of
the three packages, lazy ones inside functions included, must point at the same layer or one below,
and the modules must import each other in no circle (a lazy import inside a function counts; an
import only for type checkers, under ``if TYPE_CHECKING:``, does not).
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


def _walk(node: ast.AST) -> list[ast.AST]:
    """Every node under ``node`` except those of ``if TYPE_CHECKING:`` blocks (types only, never run)."""
    if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
        return [n for child in node.orelse for n in _walk(child)]
    return [node] + [n for child in ast.iter_child_nodes(node) for n in _walk(child)]


def _imports(tree: ast.AST) -> set[str]:
    """The project modules ``tree`` imports (``from a import b`` counts as ``a.b`` if that is one)."""
    names: set[str] = set()
    for node in _walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                      for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return {name for name in names if name in MODULES}


IMPORTS = {module: _imports(ast.parse(path.read_text())) - {module} for module, path in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_from_a_layer_above_its_own(module: str) -> None:
    layer = LAYERS[module.split(".")[0]]
    upward = sorted(d for d in IMPORTS[module] if LAYERS[d.split(".")[0]] > layer)
    assert not upward, f"{module} imports {upward}: move the shared piece down a layer, or pass it in"


def test_modules_import_each_other_in_no_circle() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        chain = [*path, module]
        for dep in sorted(IMPORTS[module]):
            assert state.get(dep) != 1, f"import circle: {' -> '.join([*chain[chain.index(dep):], dep])}"
            if dep not in state:
                visit(dep, chain)
        state[module] = 2

    for module in sorted(IMPORTS):
        if module not in state:
            visit(module, [])
