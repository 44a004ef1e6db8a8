"""What ``scale compare`` runs: a base experiment and named entries, each a method with overrides.

A compare file is an experiment file (``lm``, ``data``, ``tracking``, ...) with a ``compare``
section::

    compare:
      samples: 1
      entries:
        - {name: cot-256, method: cot, lm: {system1: {max_tokens: 256}}}
        - {name: bf-512, method: bf, lm: {system2: {thinking_budget: 512}}}
        - {name: scale-attempt, method: scale, scale: {difficulty_source: attempt, threshold: 0.6}}
        - {name: search-best, config: ../runs/search/front/trial-7.yaml}   # a Pareto config from `scale search`
        - {name: compiled, program: ../runs/compile/compiled-bootstrap}      # a program from `scale compile`

An entry's ``method``/``lm``/``scale``/``vote``/``inftythink`` are merged over the base program;
``config: FILE`` (relative to the compare file) starts from that file's program instead, and
``program: DIR`` from a saved program directory's config, with its tuned state (instructions and
demos) loaded onto the program before it runs.

Example:
    >>> entries = parse_entries([{"name": "cot", "method": "cot"}], ExperimentConfig(), where="x")
    >>> entries[0].program.method
    'cot'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from optimize.experiment import ExperimentConfig, experiment_from_dict, experiment_to_dict, load_experiment
from program.config import ConfigError, ProgramConfig, check_known_keys

__all__ = ["Entry", "CompareConfig", "parse_entries", "load_compare", "is_greedy", "family"]

_OVERRIDES = ("method", "lm", "scale", "vote", "inftythink")


@dataclass(frozen=True)
class Entry:
    """One row of the comparison: a name and the program it runs."""

    name: str
    program: ProgramConfig
    origin: str = "inline"  # or the config file it came from
    saved: Path | None = None  # a program directory whose tuned state the entry runs with


@dataclass(frozen=True)
class CompareConfig:
    """The base experiment (LMs, data, tracking), the entries, and samples per entry."""

    experiment: ExperimentConfig
    entries: tuple[Entry, ...]
    samples: int = 1


def parse_entries(raw: Sequence[Any], base: ExperimentConfig, *, where: str,
                  directory: Path | None = None) -> list[Entry]:
    """Validate the ``compare.entries`` list into entries (names unique, overrides known)."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"{where}: compare.entries must be a non-empty list of {{name, method, ...}} entries.")
    entries: list[Entry] = []
    for i, item in enumerate(raw):
        at = f"{where}: compare.entries[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise ConfigError(f"{at}: each entry needs a `name` (text), e.g. {{name: cot-256, method: cot}}.")
        check_known_keys(item, {"name", "config", "program", *_OVERRIDES}, at)
        if "config" in item and "program" in item:
            raise ConfigError(f"{at}: give `config: FILE` or `program: DIR`, not both (a program directory "
                              "carries its own config).")
        name = item["name"].strip()
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ConfigError(f"{at}: name {name!r} must be letters, digits, '-', '_' or '.' (it names a folder).")
        start, origin, saved = base, "inline", None
        if "config" in item:
            path = _relative(item["config"], directory)
            start, origin = load_experiment(path), str(path)
        if "program" in item:
            from optimize.compiling.saved import read_saved_config  # verifies the directory (metadata, checksums)

            saved = _relative(item["program"], directory)
            start, origin = read_saved_config(saved), str(saved)
        data = experiment_to_dict(start)
        merged = _merge(data, {k: item[k] for k in _OVERRIDES if k in item})
        program = experiment_from_dict(merged, where=at).program
        entries.append(Entry(name, program, origin, saved))
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where}: entry name(s) {', '.join(map(repr, duplicates))} appear more than once.")
    return entries


def load_compare(path: str | Path) -> CompareConfig:
    """Read a compare file: the experiment, then its ``compare`` section."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Compare file {path} does not exist (see experiments/local/compare-gsm8k.yaml).")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("compare"), dict):
        raise ConfigError(f"{path}: needs a `compare:` section with `entries:` (see experiments/local/"
                          "compare-gsm8k.yaml).")
    section = data.pop("compare")
    check_known_keys(section, {"entries", "samples"}, f"{path}: compare")
    samples = section.get("samples", 1)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ConfigError(f"{path}: compare.samples={samples!r} must be a positive integer.")
    base = experiment_from_dict(data, where=str(path))
    return CompareConfig(base, tuple(parse_entries(section.get("entries"), base, where=str(path),
                                                   directory=path.parent)), samples)


def is_greedy(program: ProgramConfig) -> bool:
    """Whether every call the program makes is greedy, so repeated samples would be identical.

    Example:
        >>> is_greedy(ProgramConfig(method="cot")), is_greedy(ProgramConfig(method="vote"))
        (True, False)
    """
    lm, scale = program.lm, program.scale
    modes = (lm.stages, lm.system1, lm.system2)
    if any(mode.temperature > 0 for mode in modes):
        return False
    if program.method == "vote" and program.vote.samples > 1:
        return False
    if program.method in ("scale", "cascade") and (scale.num_candidates > 1 or (
            scale.system2_kind == "vote" and program.vote.samples > 1) or (
            scale.difficulty_source == "attempt" and scale.attempt_confidence == "agreement"
            and scale.attempt_samples > 1)):
        return False
    return True


def family(program: ProgramConfig) -> str:
    """The method family a plot colours by: the method, with SCALE's difficulty source.

    Example:
        >>> family(ProgramConfig(method="cot"))
        'cot'
    """
    if program.method in ("scale", "cascade") and program.scale.difficulty_source != "rating":
        return f"{program.method} ({program.scale.difficulty_source})"
    return program.method


def _relative(value: Any, directory: Path | None) -> Path:
    path = Path(str(value))
    return path if path.is_absolute() or directory is None else directory / path


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged
