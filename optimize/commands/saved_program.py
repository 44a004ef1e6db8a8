"""``--program DIR`` for ``scale run`` / ``scale eval`` / ``scale search``: run a directory saved by ``scale compile``.

A saved directory replaces ``--config``; the endpoint options and ``--threshold`` apply on top of its
``config.yaml``. Kept apart from ``optimize.commands.compile`` so the commands that run programs do
not import the one that tunes them (and the other way round).

Example:
    scale run --program runs/quickstart/compiled-bootstrap "What is 2 + 3?"
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optimize.commands.common import resolve_experiment

if TYPE_CHECKING:
    from optimize.experiment import ExperimentConfig

__all__ = ["add_saved_program_option", "experiment_for_saved", "load_saved_program", "saved_program_fingerprint"]


def add_saved_program_option(parser: argparse.ArgumentParser) -> None:
    """``--program DIR``: run a directory saved by ``scale compile`` instead of building from a config."""
    parser.add_argument("--program", metavar="DIR",
                        help="a program directory saved by `scale compile`; its config.yaml replaces --config "
                             "(--preset/--model/--api-base/--threshold still apply on top)")


def experiment_for_saved(args: argparse.Namespace) -> ExperimentConfig:
    """The experiment of ``--program DIR``: the directory's verified config.yaml, then the CLI overrides.

    Raises ``ConfigError`` when ``--config`` is given too (the directory brings its own).
    """
    from optimize.compiling.saved import CONFIG_FILE, read_saved_config
    from program.config import ConfigError

    if getattr(args, "config", None):
        raise ConfigError(f"--program {args.program} brings its own config ({CONFIG_FILE}); drop --config, and "
                          "override single values with --preset/--model/--api-base/--threshold.")
    read_saved_config(args.program)  # verifies checksums before the file is read as the base config
    return resolve_experiment(argparse.Namespace(**{**vars(args), "config": str(Path(args.program) / CONFIG_FILE)}))


def load_saved_program(args: argparse.Namespace, config: ExperimentConfig) -> Any:
    """The ready program of ``--program DIR``, run under ``config`` (from ``experiment_for_saved``)."""
    from optimize.compiling.saved import load_program

    return load_program(args.program, config=config).program


def saved_program_fingerprint(args: argparse.Namespace, config: ExperimentConfig, *, legacy: bool = False) -> str:
    """The results fingerprint of ``--program DIR`` under ``config``: tuned state included (``legacy``:
    the one recorded before defaults were left out)."""
    from optimize.compiling.saved import program_fingerprint

    return program_fingerprint(args.program, config, legacy=legacy)
