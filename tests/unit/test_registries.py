"""One name-to-class registry per kind, and its names written once (``program.names``).

The config's ``Literal``s, the difficulty sources' and the methods' registries and the search
space's options must not drift: each set of names is spelled in ``program.names`` only, which the
AST check below enforces for every module of the project.
"""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

from optimize.search.space import PARAMETERS
from program import names
from program.config import ForcingConfig, ProgramConfig, ScaleConfig
from program.methods import METHOD_REGISTRY
from program.scale.sources import SOURCES, build_source, needs_logprobs

ROOT = Path(__file__).resolve().parents[2]
NAME_SETS = {name: value for name, value in vars(names).items() if name.isupper() and name != "ROUTED_METHODS"}


def test_each_registry_holds_exactly_its_names() -> None:
    assert tuple(SOURCES) == names.DIFFICULTY_SOURCES
    assert all(source.name == name for name, source in SOURCES.items())
    assert tuple(METHOD_REGISTRY) == names.METHODS
    assert set(names.ROUTED_METHODS) <= set(names.METHODS)


@pytest.mark.parametrize(("config", "field", "known"), [
    (ScaleConfig, "difficulty_source", names.DIFFICULTY_SOURCES),
    (ScaleConfig, "attempt_confidence", names.ATTEMPT_CONFIDENCES),
    (ScaleConfig, "system2_kind", names.SYSTEM2_KINDS),
    (ScaleConfig, "difficulty_mode", names.DIFFICULTY_MODES),
    (ScaleConfig, "context", names.CONTEXTS),
    (ScaleConfig, "step_layout", names.STEP_LAYOUTS),
    (ForcingConfig, "transport", names.FORCING_TRANSPORTS),
])
def test_config_fields_are_typed_with_the_names_and_refuse_others(config: type, field: str,
                                                                  known: tuple[str, ...]) -> None:
    assert typing.get_args(typing.get_type_hints(config)[field]) == known
    with pytest.raises(ValueError, match=f"`{field}='nope'` must be one of {', '.join(known)}"):
        config(**{field: "nope"})


def test_search_options_are_the_config_names() -> None:
    assert PARAMETERS["difficulty_source"].options == names.DIFFICULTY_SOURCES
    assert PARAMETERS["attempt_confidence"].options == names.ATTEMPT_CONFIDENCES
    assert PARAMETERS["system2_kind"].options == names.SYSTEM2_KINDS


def test_needs_logprobs_is_asked_of_the_configured_source() -> None:
    for source in typing.get_args(names.DifficultySourceName)[:3]:  # learned: tests/unit/test_difficulty_sources.py
        for option in typing.get_args(names.AttemptConfidence):
            scale = ScaleConfig(difficulty_source=source, attempt_confidence=option)
            assert needs_logprobs(ProgramConfig(scale=scale)) == build_source(scale).reads_logprobs(scale)
            assert not needs_logprobs(ProgramConfig(method="cot", scale=scale))


def _restated(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of every literal tuple/list/set or ``Literal[...]`` that spells one of the name sets."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Tuple, ast.List, ast.Set)) or not node.elts:
            continue
        spelled = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        if len(spelled) == len(node.elts):
            found += [(node.lineno, name) for name, known in NAME_SETS.items()
                      if len(known) > 1 and spelled == set(known)]
    return found


@pytest.mark.parametrize("package", ["data", "program", "optimize"])
def test_no_module_restates_a_set_of_names(package: str) -> None:
    restated = [f"{path.relative_to(ROOT)}:{line} spells {name}"
                for path in sorted((ROOT / package).rglob("*.py")) if path != ROOT / "program" / "names.py"
                for line, name in _restated(ast.parse(path.read_text()))]
    assert not restated, f"use the tuple or Literal of program.names instead: {restated}"
