"""``scale check``: ask the config's servers a few short questions before a long run; one line per check.

The checks are ``program.clients.preflight``'s (server kind and version, the thinking switch per mode,
where reasoning arrives, cached-token reports, the context window, the forcing transport). Exit status
0 when none failed, 4 (``EXIT_CHECK_FAILED``) when one did. ``--strict`` on ``scale eval``, ``compare``
and ``search`` runs the same checks first and refuses to start on a failed one (``strict_preflight``).

Example:
    scale check --preset qwen3 --model openai/served-32b --api-base http://127.0.0.1:8000/v1
    scale check --config experiments/qwen3-32b/scale.yaml
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from optimize.commands.common import add_lm_options
from optimize.errors import EXIT_CHECK_FAILED, EXIT_OK, CheckFailedError

if TYPE_CHECKING:
    from program.config import LMConfig

HELP = ("exit status: 0 no check failed (ok, warn, unknown and skip lines do not fail); 2 a usage error; "
        "4 a check failed (its line starts with FAIL and names the fix).")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("check", help="check the LLM servers of a config: one line per check, with fixes",
                                   description="Make a few short requests to the config's servers and print one "
                                               "line per check: server kind and version, whether the thinking "
                                               "switch takes effect, where reasoning arrives, cached-token reports, "
                                               "the context window, and the budget-forcing transport.",
                                   epilog=HELP)
    add_lm_options(parser)
    parser.set_defaults(func=run)


def add_strict_option(parser: argparse.ArgumentParser) -> None:
    """``--strict`` for a command that starts a long run."""
    parser.add_argument("--strict", action="store_true",
                        help="run `scale check`'s checks first and refuse to start when one fails (exit status 4)")


def run(args: argparse.Namespace) -> int:
    from optimize.commands.common import resolve_experiment
    from program.clients.preflight import failed, run_checks
    from program.serving.local import ensure_server

    lm = resolve_experiment(args).program.lm
    with ensure_server(lm):
        checks = run_checks(lm)
    for check in checks:
        print(check.line())
    bad = failed(checks)
    if bad:
        print(f"{len(bad)} of {len(checks)} checks failed.", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return EXIT_OK


def strict_preflight(args: argparse.Namespace, lm: LMConfig) -> None:
    """With ``--strict``: run the checks (the server must be up) and raise ``CheckFailedError`` on a failed one.

    The failed lines go to stderr; the other checks are not printed (``scale check`` shows them all).
    """
    if not getattr(args, "strict", False):
        return
    from program.clients.preflight import failed, run_checks

    bad = failed(run_checks(lm))
    for check in bad:
        print(check.line(), file=sys.stderr)
    if bad:
        raise CheckFailedError(f"--strict: {len(bad)} server check(s) failed, so the run was not started; fix "
                               "them (each line says how) or drop --strict. `scale check` with the same flags "
                               "shows every check.")
