"""Options shared by every command that talks to an LLM or reads benchmark data."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from optimize.errors import EXIT_INCOMPLETE, EXIT_OK

if TYPE_CHECKING:
    from optimize.experiment import ExperimentConfig


def positive_int(text: str) -> int:
    """argparse type for counts such as --limit and --workers."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def add_lm_options(parser: argparse.ArgumentParser) -> None:
    """--config FILE and the endpoint overrides, so any command can point at the user's own server."""
    group = parser.add_argument_group("model")
    group.add_argument("--config", metavar="FILE",
                       help="experiment/LM config (YAML or JSON); default: embedded local model")
    group.add_argument("--preset", metavar="NAME", help="LM preset: local, qwen3, reasoning-pair, api")
    group.add_argument("--model", help="litellm model name of the default endpoint, e.g. openai/Qwen/Qwen3-32B")
    group.add_argument("--api-base", help="base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    group.add_argument("--api-key-env", metavar="VAR", help="NAME of the environment variable holding the API key")


def add_output_flags(parser: argparse.ArgumentParser, *, mlflow: bool = True) -> None:
    """--no-progress (and --no-mlflow) for commands that do long, tracked work."""
    if mlflow:
        parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
        parser.add_argument("--tracking-uri", metavar="URI",
                            help="MLflow tracking store, e.g. an MLflow server http://HOST:5000 (default: the "
                                 "config's tracking.mlflow_uri, else $MLFLOW_TRACKING_URI, else sqlite in the run dir)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR",
                        help="directory with the benchmark JSONL files "
                             "(else $SCALE_DATA_DIR, else the Hugging Face Hub)")


def resolve_experiment(args: argparse.Namespace) -> ExperimentConfig:
    """The experiment a command runs: --config FILE (or defaults), then --preset and endpoint overrides."""
    from dataclasses import replace

    from optimize.experiment import ExperimentConfig, load_experiment, with_program
    from program.presets import preset

    config = load_experiment(args.config) if getattr(args, "config", None) else ExperimentConfig()
    if getattr(args, "preset", None):
        config = with_program(config, lm=preset(args.preset))
    lm = config.program.lm.with_overrides(model=getattr(args, "model", None), api_base=getattr(args, "api_base", None),
                                          api_key_env=getattr(args, "api_key_env", None))
    config = with_program(config, lm=lm)
    if getattr(args, "data_dir", None):
        config = replace(config, data=replace(config.data, data_dir=args.data_dir))
    if getattr(args, "tracking_uri", None):
        config = replace(config, tracking=replace(config.tracking, mlflow_uri=args.tracking_uri))
    return config


def failed_status(n_failed: int, n: int, where: str | Path, failures: Mapping[str, int] | None = None) -> int:
    """Exit status of a finished evaluation: 0, or 3 with one ``warning:`` line on stderr when problems failed.

    Example:
        >>> failed_status(0, 5, "runs/x/results.jsonl")
        0
    """
    if not n_failed:
        return EXIT_OK
    kinds = f" ({', '.join(f'{c} {k}' for k, c in sorted(failures.items()))})" if failures else ""
    print(f"warning: {n_failed} of {n} problems failed{kinds}, so the accuracy is incomplete; the results are in "
          f"{where}: run the same command again to retry the failed ones.", file=sys.stderr)
    return EXIT_INCOMPLETE
