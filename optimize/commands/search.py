"""``scale search``: an Optuna study of methods, tau and budgets (accuracy up, tokens down).

Two questions: without ``--budget``, the Pareto front of accuracy against mean tokens per
problem; with ``--budget TOKENS``, the most accurate configuration within that many tokens per
problem (``--pruner`` stops losing trials early).

Rerunning with the same ``--study`` resumes: only the trials missing up to ``--trials`` run.
Start the same command in several terminals or machines on one ``--storage`` to run trials in
parallel. At the end: the Pareto table, ``<run dir>/pareto/front.png``, one experiment file per
Pareto trial (``<run dir>/pareto/trial-<n>.yaml``), and the optuna-dashboard command.

Example:
    scale search --config experiments/quickstart.yaml --trials 8
    scale search --config experiments/quickstart.yaml --trials 8 --budget 330 --pruner halving
    scale search --config experiments/quickstart.yaml --trials 16 --storage journal:runs/shared.journal
    scale search --config X.yaml --storage postgresql://scale:PW@db-host/optuna --tracking-uri http://mlflow-host:5000
    scale search --config X.yaml --storage postgresql://scale:PW@db-host/optuna --worker   # on each other machine
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from optimize.commands.check import add_strict_option, strict_preflight
from optimize.commands.common import (
    add_data_options,
    add_lm_options,
    add_output_flags,
    positive_int,
    resolve_experiment,
)
from optimize.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_STATUS_HELP


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search", help="Optuna search over tau and budgets: Pareto front of accuracy vs tokens",
        description="Search the threshold and the budgets with Optuna (two objectives: accuracy on the dev "
                    "slice, mean tokens per problem). Resumable; several processes may share one study. "
                    "A trial in which a problem failed with a server error stops the search and is queued again.",
        epilog=EXIT_STATUS_HELP)
    parser.add_argument("--trials", type=positive_int, metavar="N",
                        help="total trials in the study, counting earlier runs (default: the config's search.trials)")
    parser.add_argument("--budget", type=positive_float_tokens, metavar="TOKENS",
                        help="the budget form: maximise accuracy subject to mean tokens/problem <= TOKENS "
                             "(default: the config's search.budget; none: the two-objective front)")
    parser.add_argument("--pruner", choices=("halving", "hyperband", "wilcoxon", "none"),
                        help="budget form only: stop losing trials after each search.chunk problems "
                             "(default: the config's search.pruner)")
    parser.add_argument("--study", metavar="NAME", help="study name; the same name resumes (default: the config's)")
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna storage: sqlite:///FILE, postgresql://..., or journal:FILE "
                             "(default: sqlite:///<run dir>/optuna.db)")
    parser.add_argument("--worker", action="store_true",
                        help="join an existing study as one more worker (on this or another machine): never "
                             "create it nor enqueue the seed trials; fails if --study is not in --storage")
    parser.add_argument("--heartbeat", type=positive_float, metavar="S",
                        help="on a database server: a running trial's heartbeat interval in seconds; a trial "
                             "silent for 3 intervals (its worker died) is retried by another worker (default 60)")
    parser.add_argument("--program", metavar="DIR",
                        help="start from a saved (compiled) program: its demos and instructions are kept")
    parser.add_argument("--workers", type=positive_int, metavar="W",
                        help="problems evaluated at once within a trial "
                             "(default: tracking.workers, else the embedded server's slots, else 1)")
    add_strict_option(parser)
    add_output_flags(parser)
    add_lm_options(parser)
    add_data_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from optimize.search.run import print_search, run_search
    from program.serving.local import ensure_server

    if args.program and not args.config:  # the saved program's own config is the base
        from optimize.commands.saved_program import experiment_for_saved

        config = experiment_for_saved(args)
    else:
        config = resolve_experiment(args)
    ran: list[Any] = []
    with ensure_server(config.program.lm):
        strict_preflight(args, config.program.lm)
        result = run_search(config, trials=args.trials, study_name=args.study, storage=args.storage,
                            program_dir=args.program, workers=args.workers, tracking=not args.no_mlflow,
                            progress=not args.no_progress, on_trial=ran.append, join=args.worker,
                            heartbeat_seconds=args.heartbeat, budget=args.budget, pruner=args.pruner)
    print_search(result, wide_console())
    return trials_status(ran, result.dashboard_command)


def trials_status(trials: Sequence[Any], dashboard: str) -> int:
    """0, or 3 with one ``warning:`` line when trials run now failed or had problems that failed.

    Server failures never get here (they stop the search); these are the configuration's own:
    a FAIL trial (recorded with its reason) or a model error counted as a wrong answer.
    """
    from optuna.trial import TrialState

    failed = [t for t in trials if t.state == TrialState.FAIL]
    partial = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("n_failed")]
    if not failed and not partial:
        return EXIT_OK
    parts = []
    if failed:
        first = failed[0]
        parts.append(f"{len(failed)} trials failed (trial {first.number}: "
                     f"{str(first.user_attrs.get('fail_reason', '?'))[:300]})")
    if partial:
        parts.append(f"{len(partial)} trials had problems that failed with model errors, counted as wrong "
                     f"(trials {', '.join(str(t.number) for t in partial[:10])})")
    print(f"warning: {'; '.join(parts)}. Each trial's reason and results are in the study: {dashboard}",
          file=sys.stderr)
    return EXIT_INCOMPLETE


def positive_float(text: str) -> float:
    """argparse type for --heartbeat: seconds, at least 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1 (second)")
    return value


def positive_float_tokens(text: str) -> float:
    """argparse type for --budget: mean tokens per problem, above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of tokens per problem") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0 (mean tokens per problem)")
    return value


def wide_console() -> Any:
    """A rich console; when output is piped or captured, 160 columns so tables are not squeezed."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)

