"""Options shared by every command that talks to an LLM or reads benchmark data."""

from __future__ import annotations

import argparse


def add_lm_options(parser: argparse.ArgumentParser) -> None:
    """--config FILE and the endpoint overrides, so any command can point at the user's own server."""
    group = parser.add_argument_group("model")
    group.add_argument("--config", metavar="FILE", help="experiment/LM config (YAML or JSON); default: embedded local model")
    group.add_argument("--preset", metavar="NAME", help="LM preset: local, qwen3, reasoning-pair, api")
    group.add_argument("--model", help="litellm model name of the default endpoint, e.g. openai/Qwen/Qwen3-32B")
    group.add_argument("--api-base", help="base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    group.add_argument("--api-key-env", metavar="VAR", help="NAME of the environment variable holding the API key")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR",
                        help="directory with the benchmark JSONL files (else $SCALE_DATA_DIR, else the Hugging Face Hub)")
