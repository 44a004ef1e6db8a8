"""Every docstring example in program/, optimize/ and data/ runs and shows what it prints.

One test per module that holds an example (``>>>`` in its source). Examples that need a model
server or a network are marked ``# doctest: +SKIP`` where they stand; every other one runs here,
under the unit tests' guard against real LLM calls, in a fresh working directory, which they must
leave empty: an example writes only into a temporary directory of its own, so
``pytest --doctest-modules`` run twice in a checkout passes (a study written into ``runs/demo``
would resume at trial 1 the second time).
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("program", "optimize", "data")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def modules_with_examples() -> list[str]:
    """Dotted names of the package modules whose source holds a ``>>>`` example."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ">>>" in path.read_text(encoding="utf-8"):
                parts = path.relative_to(ROOT).with_suffix("").parts
                names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = modules_with_examples()


def test_the_modules_with_examples_are_found() -> None:
    assert {"program.ledger", "optimize.search.plans", "data.grading", "data.errors"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    assert tests, f"{name} has '>>>' in its source, but no docstring example doctest can find"
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in tests:
        runner.run(test, out=report.append)
    failed, _ = runner.summarize(verbose=False)
    assert failed == 0, "".join(report)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert written == [], f"{name}'s examples wrote into the working directory: {written}; use a temporary directory"
