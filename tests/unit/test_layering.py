"""The one architecture rule, checked: imports flow one way, ``data`` <- ``program`` <- ``optimize``.

Read from the source (no module is imported): every ``import`` / ``from ... import`` in every file of
the three packages, lazy ones inside functions included, must point at the same layer or one below,
and the modules must import each other in no circle (a lazy import inside a function counts; an
import only for type checkers, under ``if TYPE_CHECKING:``, does not).

Inside ``program/`` the same holds for its own layers (``PROGRAM_LAYERS``, lowest first): clients never
import SCALE, no runtime module imports the test doubles (``program.testing``), and no module of ours
uses an old import path of program/moved.py. Every package of ``program/`` and ``optimize/`` has a
docstring saying what it holds.
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


# ---- Inside program/: its layers, lowest first ------------------------------------------------------
# A module belongs to the layer of the longest prefix that names it; it may import its own layer and
# the ones below, never one above. Lazy imports (inside functions) count, and so do the string targets
# of a package's lazy re-exports (``_EXPORTS``, program.lazy): they run on first attribute access.
# The last layer, ``program`` itself, names the package's __init__ only (not every module under it),
# so a new module that fits no layer is refused rather than placed on top.
PROGRAM_LAYERS: list[tuple[str, ...]] = [
    ("program.errors", "program.validation", "program.lazy", "program.moved", "program.names"),
    ("program.config", "program.config_data", "program.config_methods", "program.presets"),
    ("program.ledger", "program.tally", "program.confidence", "program.concurrent"),
    ("program.clients", "program.serving"),
    ("program.adapter", "program.signatures", "program.calls"),
    ("program.voting",),
    ("program.scale",),
    ("program.baselines",),
    ("program.methods",),
    ("program.testing",),
    ("program",),  # the package's front door: it re-exports names from every layer below it
]
FRONT_DOOR = "program"


def _program_layer(module: str) -> int:
    """The index in PROGRAM_LAYERS of the longest prefix naming ``module`` (-1 if none does)."""
    best, best_length = -1, -1
    for index, prefixes in enumerate(PROGRAM_LAYERS):
        for prefix in prefixes:
            names_it = module == prefix or (prefix != FRONT_DOOR and module.startswith(prefix + "."))
            if names_it and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def _lazy_export_targets(tree: ast.AST) -> set[str]:
    """The modules named as targets in a ``_EXPORTS = {...}`` mapping (program.lazy's re-exports)."""
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets):
            targets |= {c.value for c in ast.walk(node.value)
                        if isinstance(c, ast.Constant) and isinstance(c.value, str) and c.value in MODULES}
    return targets


PROGRAM_MODULES = sorted(m for m in MODULES if m.split(".")[0] == "program")
PROGRAM_IMPORTS = {m: (IMPORTS[m] | _lazy_export_targets(ast.parse(MODULES[m].read_text()))) - {m}
                   for m in PROGRAM_MODULES}


def test_every_program_module_has_a_layer() -> None:
    unplaced = [m for m in PROGRAM_MODULES if _program_layer(m) == -1]
    assert not unplaced, f"{unplaced} belong to no layer: add each to PROGRAM_LAYERS in {Path(__file__).name}"


@pytest.mark.parametrize("module", PROGRAM_MODULES)
def test_no_program_module_imports_a_higher_layer_of_program(module: str) -> None:
    layer = _program_layer(module)
    assert layer >= 0, f"{module} belongs to no layer: add it to PROGRAM_LAYERS in {Path(__file__).name}"
    upward = sorted(d for d in PROGRAM_IMPORTS[module] if d.split(".")[0] == "program" and _program_layer(d) > layer)
    assert not upward, (f"{module} (layer {PROGRAM_LAYERS[layer]}) imports {upward} from a higher layer: move the "
                        "shared piece down, or pass it in (layers: PROGRAM_LAYERS in tests/unit/test_layering.py)")


def test_clients_never_import_scale() -> None:
    """Said on its own because it is the rule a newcomer breaks first: the HTTP path knows no SCALE."""
    found = {m: sorted(d for d in PROGRAM_IMPORTS[m] if d == "program.scale" or d.startswith("program.scale."))
             for m in PROGRAM_MODULES if m == "program.clients" or m.startswith("program.clients.")}
    assert not any(found.values()), {m: d for m, d in found.items() if d}


def test_no_runtime_module_imports_the_test_doubles() -> None:
    """``program.testing`` is for tests only: nothing in data/, program/ or optimize/ outside it imports it."""
    runtime = [m for m in MODULES if not (m == "program.testing" or m.startswith("program.testing."))]
    found = {m: sorted(d for d in IMPORTS[m] | PROGRAM_IMPORTS.get(m, set())
                       if d == "program.testing" or d.startswith("program.testing."))
             for m in runtime}
    assert not any(found.values()), {m: d for m, d in found.items() if d}


def _old_paths() -> set[str]:
    """The keys of ``MOVED`` and ``SPLIT`` in program/moved.py, read from its source."""
    tree = ast.parse((ROOT / "program" / "moved.py").read_text())
    paths: set[str] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id in {"MOVED", "SPLIT"}):
            assert isinstance(node.value, ast.Dict)
            paths |= {k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return paths


OLD_PATHS = _old_paths()


def _names_an_old_path(name: str) -> bool:
    return any(name == old or name.startswith(old + ".") for old in OLD_PATHS)


def test_the_old_paths_read_from_the_source_are_the_aliases_program_moved_installs() -> None:
    """The scan below is only as good as this list: it must be every alias, not an empty set."""
    from program import moved

    assert OLD_PATHS == set(moved.MOVED) | set(moved.SPLIT)
    assert len(OLD_PATHS) > 20


@pytest.mark.parametrize("path", sorted(p for package in (*LAYERS, "tests")
                                        for p in (ROOT / package).rglob("*.py") if p.name != "moved.py"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_uses_an_old_import_path(path: Path) -> None:
    """Old paths (program/moved.py) are for users' code for one release; ours uses the new ones.

    Import statements count, and so do dotted strings that start with one (``monkeypatch.setattr``
    targets, ``-m program.llama_server``): those fail only at run time, or once the aliases go.
    """
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [word for word in node.value.split() if word.startswith("program.")]
        else:
            continue
        found += [f"line {node.lineno}: {name}" for name in names if _names_an_old_path(name)]
    assert not found, f"{path.relative_to(ROOT)} uses old paths (see program/moved.py for the new ones): {found}"


# ---- Every package says what it holds ---------------------------------------------------------------
PACKAGES = sorted(p.parent for package in ("program", "optimize") for p in (ROOT / package).rglob("__init__.py"))


def _docstring(package: Path) -> str:
    return ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_package_has_a_docstring(package: Path) -> None:
    assert _docstring(package).strip(), f"{package.relative_to(ROOT)}/__init__.py: say what the package holds"


# The team's rule (issue 25): a subpackage of program/ also says what it may import. These two do not yet;
# their docstrings are program/ code, which this test does not change (reported to the owner of program/).
_NO_MAY_IMPORT: dict[str, str] = {}  # packages known not to say it yet (strict xfail); none left
PROGRAM_SUBPACKAGES = [p for p in PACKAGES if p.relative_to(ROOT).parts[0] == "program" and p != ROOT / "program"]


@pytest.mark.parametrize("package", [
    pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=_NO_MAY_IMPORT[str(p.relative_to(ROOT))]))
    if str(p.relative_to(ROOT)) in _NO_MAY_IMPORT else p
    for p in PROGRAM_SUBPACKAGES
], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_program_subpackage_says_what_it_may_import(package: Path) -> None:
    where = package.relative_to(ROOT)
    assert "may import" in _docstring(package).lower(), f"{where}/__init__.py: say what it may import"
