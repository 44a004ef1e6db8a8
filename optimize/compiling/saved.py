"""Program directories: a compiled program saved as plain files, and the one loader for them.

A directory written by ``save_program`` (and by ``scale compile``) holds:

- ``program.json``: the DSPy state (instructions, demos per predictor), written by
  ``program.save(path)`` as JSON. No LM is stored on any predictor: LMs come from the config.
- ``config.yaml``: the resolved ``ExperimentConfig`` (threshold, budgets, endpoints by name,
  the API key by variable NAME only): everything the DSPy state does not hold.
- ``metadata.json``: format version, package versions, dataset slice ids, metric, scores,
  optimizer and budgets, creation time, and the sha256 of ``program.json`` and ``config.yaml``.

Nothing is pickled and loading never unpickles (``allow_pickle`` and ``allow_unsafe_lm_state``
stay off). The checksums catch edited or corrupted files; they are not a signature (whoever can
rewrite ``program.json`` can rewrite ``metadata.json`` too), but JSON state cannot run code.

Example:
    >>> loaded = load_program("runs/quickstart/compiled-bootstrap")  # doctest: +SKIP
    >>> loaded.program(problem="What is 2 + 3?").answer  # doctest: +SKIP
    '5'
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optimize.experiment import ExperimentConfig, load_experiment, save_experiment
from program.config import ConfigError, ProgramConfig
from program.errors import SavedProgramError

if TYPE_CHECKING:
    import dspy

    from program.clients.lm import Systems

__all__ = ["FORMAT", "FORMAT_VERSION", "PROGRAM_FILE", "CONFIG_FILE", "METADATA_FILE", "REJECTED_FILE", "LoadedProgram",
           "Builder",
           "default_builder", "load_program", "save_program", "update_metadata", "read_metadata",
           "read_saved_config", "program_fingerprint", "package_versions"]

FORMAT = "scale-tts/program"
FORMAT_VERSION = 1
PROGRAM_FILE, CONFIG_FILE, METADATA_FILE = "program.json", "config.yaml", "metadata.json"
REJECTED_FILE = "rejected.json"  # left by `scale compile --keep-if-better` when it saved nothing
_PACKAGES = ("dspy", "optuna", "mlflow", "litellm", "math-verify", "scale-tts")
_RECOMPILE = "run `scale compile` again to write a fresh directory"

Builder = Callable[[ProgramConfig, "Systems | None"], "dspy.Module"]


@dataclass(frozen=True)
class LoadedProgram:
    """A program loaded from a directory: ready to call, with the config it runs under.

    ``program`` is the built module with the saved state applied; ``config`` the directory's
    ``config.yaml`` (or the override given to ``load_program``); ``metadata`` its metadata.json.
    """

    program: dspy.Module
    config: ExperimentConfig
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path = Path(".")

    @property
    def fingerprint(self) -> str:
        """Marks results of THIS program (config and tuned state): see ``program_fingerprint``."""
        return _fingerprint(self.config, self.metadata)


def program_fingerprint(directory: str | Path, config: ExperimentConfig | None = None, *,
                        legacy: bool = False) -> str:
    """A results fingerprint for a saved program: its program config AND its tuned state.

    ``config_fingerprint`` alone would let results of the untuned program pass for the tuned one.
    ``config`` replaces the saved config (as in ``load_program``). ``legacy``: the fingerprint of
    results recorded before defaults were left out (``optimize.evaluation.results.legacy_fingerprint``).
    """
    return _fingerprint(config or read_saved_config(directory), read_metadata(directory), legacy=legacy)


def _fingerprint(config: ExperimentConfig, metadata: Mapping[str, Any], *, legacy: bool = False) -> str:
    from optimize.evaluation.results import config_fingerprint, legacy_fingerprint

    hashed = (legacy_fingerprint if legacy else config_fingerprint)(config.program)
    return f"{hashed}-{metadata['sha256'][PROGRAM_FILE][:12]}"


def package_versions() -> dict[str, str]:
    """Versions of the packages a saved program depends on (``"missing"`` when not installed)."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def save_program(program: dspy.Module, config: ExperimentConfig, directory: str | Path,
                 **metadata: Any) -> Path:
    """Write ``program.json``, ``config.yaml`` and ``metadata.json`` into ``directory``.

    ``metadata`` adds keys to metadata.json (data slices, metric, scores, optimizer, ...).
    Refuses a program whose state would carry an LM: saved programs take LMs from their config.

    Example:
        >>> save_program(program, config, "runs/demo/compiled", scores={"dev": None})  # doctest: +SKIP
        PosixPath('runs/demo/compiled')
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / REJECTED_FILE).unlink(missing_ok=True)  # an earlier --keep-if-better rejection no longer holds
    program_path = directory / PROGRAM_FILE
    program.save(str(program_path))  # .json suffix: DSPy writes JSON state, never a pickle
    state = json.loads(program_path.read_text(encoding="utf-8"))
    bound = sorted(name for name, value in state.items() if isinstance(value, dict) and value.get("lm"))
    if bound:
        program_path.unlink()
        raise SavedProgramError(f"Predictor(s) {', '.join(bound)} carry their own LM, which would save connection "
                                "settings into program.json. Bind LMs per call (program.calls.call) instead.")
    save_experiment(config, directory / CONFIG_FILE)
    data = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "method": config.program.method, "predictors": [name for name, _ in program.named_predictors()],
            "versions": package_versions(), **metadata,
            "sha256": {name: _sha256(directory / name) for name in (PROGRAM_FILE, CONFIG_FILE)}}
    _write_json(directory / METADATA_FILE, data)
    return directory


def update_metadata(directory: str | Path, **changes: Any) -> dict[str, Any]:
    """Set top-level keys of a saved directory's metadata.json (e.g. scores once evaluated)."""
    data = read_metadata(directory)
    data.update(changes)
    _write_json(Path(directory) / METADATA_FILE, data)
    return data


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """The verified metadata of a program directory: files present, format known, checksums match.

    Raises:
        SavedProgramError: naming the file that is missing, unreadable, tampered with or too new.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SavedProgramError(f"{directory}: no such program directory. Pass a directory written by "
                                f"`scale compile` (it holds {PROGRAM_FILE}, {CONFIG_FILE} and {METADATA_FILE}).")
    if (directory / REJECTED_FILE).is_file() and not (directory / PROGRAM_FILE).is_file():
        note = _read_json(directory / REJECTED_FILE)
        why = note.get("note") if isinstance(note, dict) else None
        raise SavedProgramError(f"{directory}: `scale compile --keep-if-better` saved no program here ({why}); see "
                                f"{directory / REJECTED_FILE}.")
    for name in (PROGRAM_FILE, CONFIG_FILE, METADATA_FILE):
        if not (directory / name).is_file():
            raise SavedProgramError(f"{directory / name} is missing: {directory} is not a complete program "
                                    f"directory; {_RECOMPILE}.")
    data = _read_json(directory / METADATA_FILE)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SavedProgramError(f"{directory / METADATA_FILE}: not the metadata of a saved scale-tts program "
                                f"(expected \"format\": \"{FORMAT}\"); {_RECOMPILE}.")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        hint = "upgrade scale-tts to load it" if isinstance(version, int) and version > FORMAT_VERSION else _RECOMPILE
        raise SavedProgramError(f"{directory / METADATA_FILE}: format version {version!r}, but this scale-tts "
                                f"reads version {FORMAT_VERSION}; {hint}.")
    sums = data.get("sha256")
    for name in (PROGRAM_FILE, CONFIG_FILE):
        expected = sums.get(name) if isinstance(sums, dict) else None
        if expected != _sha256(directory / name):
            raise SavedProgramError(f"{directory / name} does not match its sha256 in {METADATA_FILE}: it was "
                                    f"changed or corrupted after it was saved. Restore the original or {_RECOMPILE}.")
    return data


def read_saved_config(directory: str | Path) -> ExperimentConfig:
    """The verified ``config.yaml`` of a program directory."""
    read_metadata(directory)
    path = Path(directory) / CONFIG_FILE
    try:
        return load_experiment(path)
    except ConfigError as exc:
        raise SavedProgramError(f"{path}: not a valid experiment config ({exc}); {_RECOMPILE}.") from None


def load_program(directory: str | Path, *, config: ExperimentConfig | None = None,
                 systems: Systems | None = None, builder: Builder | None = None) -> LoadedProgram:
    """Load a saved program: verify the directory, build the program from its config, apply the state.

    Args:
        directory: a directory written by ``save_program`` / ``scale compile``.
        config: run under this config instead of the saved one (CLI overrides such as another
            endpoint or threshold); its method must be the saved method.
        systems: the LMs to run on (tests pass scripted ones); default: built from the config.
        builder: ``(ProgramConfig, Systems | None) -> dspy.Module``; default
            ``program.methods.build_program``.

    Returns:
        A ``LoadedProgram`` (``.program``, ``.config``, ``.metadata``, ``.path``).

    Raises:
        SavedProgramError: the directory is missing, incomplete, corrupted, tampered with, of
            another format version, or its state does not fit the program's predictors.

    Example:
        >>> loaded = load_program("runs/demo/compiled")  # doctest: +SKIP
        >>> loaded.config.program.scale.threshold  # doctest: +SKIP
        0.2
    """
    directory = Path(directory)
    metadata = read_metadata(directory)
    saved_config = read_saved_config(directory)
    saved_config = _resolve_template(directory, saved_config)
    config = config or saved_config
    if config.program.method != saved_config.program.method:
        raise SavedProgramError(f"{directory} holds a `{saved_config.program.method}` program; it cannot run as "
                                f"`{config.program.method}`. Drop the method override.")
    state = _read_json(directory / PROGRAM_FILE)
    program = (builder or default_builder)(config.program, systems)
    _check_state(directory / PROGRAM_FILE, state, program)
    try:
        program.load(str(directory / PROGRAM_FILE), allow_pickle=False, allow_unsafe_lm_state=False)
    except Exception as exc:  # DSPy raises KeyError/ValueError/pydantic errors for a state it cannot apply
        raise SavedProgramError(f"{directory / PROGRAM_FILE}: the saved state does not fit a `{config.program.method}` "
                                f"program ({type(exc).__name__}: {exc}); {_RECOMPILE}.") from None
    return LoadedProgram(program=program, config=config, metadata=metadata, path=directory)


def _resolve_template(directory: Path, config: ExperimentConfig) -> ExperimentConfig:
    """A saved config may name a built-in chat template or a file inside its own directory.

    A template file is rendered into every budget-forced prompt, so a path elsewhere would let a
    program from someone else send a local file of yours to its server. A file inside the
    directory is named relative to it; the returned config holds its absolute path.
    """
    from dataclasses import replace

    from program.clients.templates import TEMPLATES

    lm = config.program.lm
    template = lm.forcing.template
    if template in TEMPLATES:
        return config
    resolved = (directory / template).resolve()
    if Path(template).is_absolute() or not resolved.is_relative_to(directory.resolve()):
        raise SavedProgramError(f"{directory / CONFIG_FILE}: forcing.template {template!r} points outside the "
                                f"program directory. Use a built-in template ({', '.join(TEMPLATES)}) or copy the "
                                "template file into the program directory and name it relative to it.")
    lm = replace(lm, forcing=replace(lm.forcing, template=str(resolved)))
    return replace(config, program=replace(config.program, lm=lm))


def _check_state(path: Path, state: Any, program: dspy.Module) -> None:
    """The state must name exactly the program's predictors and bind no LM to any of them."""
    if not isinstance(state, dict):
        raise SavedProgramError(f"{path}: expected a JSON object of predictor states; {_RECOMPILE}.")
    expected = sorted(name for name, _ in program.named_parameters())
    found = sorted(name for name in state if name != "metadata")
    if found != expected:
        raise SavedProgramError(f"{path}: holds predictors {found}, but this program has {expected}; it was saved "
                                f"from another method or version; {_RECOMPILE}.")
    bound = [name for name in found if isinstance(state[name], dict) and state[name].get("lm")]
    if bound:
        raise SavedProgramError(f"{path}: predictor(s) {', '.join(bound)} carry LM settings; saved programs take "
                                f"their LMs from {CONFIG_FILE}. Remove the \"lm\" entries or {_RECOMPILE}.")


def default_builder(config: ProgramConfig, systems: Systems | None) -> dspy.Module:
    """``program.methods.build_program``: the program of ``config`` on ``systems``."""
    from program.methods import build_program

    return build_program(config, systems=systems)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: absurd nesting
        raise SavedProgramError(f"{path}: not valid JSON ({exc}); {_RECOMPILE}.") from None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
