"""The ``scale`` command: thin argument parsing over library functions.

Each sub-command lives in ``optimize/commands/<name>.py`` with two functions:
``add_parser(subparsers)`` and ``run(args) -> int``. This file only wires them up and turns
user errors into one clear line (no traceback) with exit code 2. The exit statuses are listed in
``optimize.errors`` (and in ``scale --help``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading

# litellm downloads a price list at import unless told not to; offline that stalls for seconds.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from optimize.errors import (  # noqa: E402
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    EXIT_STATUS_HELP,
    EXIT_USAGE,
    CheckFailedError,
    ServerDownError,
)

COMMANDS = ("serve", "check", "data", "grade", "run", "eval", "compile", "search", "calibrate", "compare", "quickstart")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scale",
        description="Adaptive test-time compute for math reasoning: SCALE, s1 budget forcing, baselines, tuning.",
        epilog=EXIT_STATUS_HELP,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"optimize.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"optimize.commands.{name}":
                continue  # command not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # A shell starts background jobs (`scale eval ... &`, nohup) with SIGINT ignored, and Python then
    # never raises KeyboardInterrupt: `kill -INT` must still stop a run cleanly, finished work saved.
    if threading.current_thread() is threading.main_thread():  # signal handlers live on the main thread
        signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from optimize.errors import user_error_types, wrapped_user_error

    try:
        return int(args.func(args) or 0)
    except ServerDownError as exc:  # never reached: 2 (check the URL); down mid-run: 3 (work saved, resume)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except CheckFailedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    except user_error_types() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; run the same command again to resume.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # DSPy wraps an LM's errors (LMUnexpectedError from our ServerError): unwrap
        cause = wrapped_user_error(exc)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
