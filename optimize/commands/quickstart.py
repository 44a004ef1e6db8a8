"""``scale quickstart``: the whole loop on the embedded model in minutes: compile, search, test.

1. **compile**: tune the SCALE predictors with the config's DSPy optimizer on the dev slice
   (skipped with ``compile.optimizer: none``);
2. **search**: a short Optuna study of tau and the budgets on the dev slice, starting from the
   compiled program (plans reused across trials);
3. **test**: the best configuration on the front (highest accuracy, ties: fewer tokens) on a
   test slice (``data.benchmark``, ``data.limit``): never seen by steps 1-2.

It prints the Pareto table, the test summary and where everything went (run directory, MLflow
store, optuna-dashboard command), and writes ``<run dir>/quickstart.json``. Rerunning resumes
every step. ``make demo`` runs it with ``experiments/quickstart.yaml``.

Example:
    scale quickstart --config experiments/quickstart.yaml
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from typing import Any

from optimize.commands.common import (
    add_data_options,
    add_lm_options,
    add_output_flags,
    failed_status,
    resolve_experiment,
)
from optimize.errors import EXIT_STATUS_HELP


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart", help="compile, search and test on the embedded model (the README's first command)",
        description="Compile the SCALE program, search tau and budgets with Optuna, and evaluate the best "
                    "configuration on a test slice; everything tracked in MLflow. Resumable.",
        epilog=EXIT_STATUS_HELP)
    parser.add_argument("--log-mlflow-model", action="store_true",
                        help="also log the compiled program as an MLflow dspy model (cloudpickle: load it only "
                             "from a store you trust; see scale compile --help)")
    add_output_flags(parser)
    add_lm_options(parser)
    add_data_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from optimize.commands.search import wide_console
    from program.serving.local import ensure_server

    config = resolve_experiment(args)
    console = wide_console()
    with ensure_server(config.program.lm):
        outcome = quickstart(config, track=not args.no_mlflow, progress=not args.no_progress, console=console,
                             log_model=args.log_mlflow_model)
    _report(outcome, console)
    return _status(outcome)


def _status(outcome: dict[str, Any]) -> int:
    """0, or 3 (a warning line per step) when compile scoring, search trials or the test had failures."""
    from optimize.commands.compile import scores_status
    from optimize.commands.search import trials_status

    summary = outcome["summary"]
    statuses = [scores_status(outcome["compiled"]) if outcome["compiled"] is not None else 0,
                trials_status(outcome["trials_run"], outcome["dashboard"]),
                failed_status(summary.n_failed, summary.n, outcome["test_results"], summary.failures)]
    return max(statuses)


def quickstart(config: Any, *, track: bool = True, progress: bool = True, console: Any = None,
               systems: Any = None, log_model: bool = False) -> dict[str, Any]:
    """Compile, search and test ``config`` (an ExperimentConfig); returns what ``quickstart.json`` holds.

    ``systems`` runs every step on given LMs (tests); the caller keeps the server up. ``log_model``
    also logs the compiled program as an MLflow dspy model (cloudpickle; off by default). The
    returned dict also holds ``summary`` (the test's), ``compiled`` and ``trials_run`` (the search
    trials this call ran), which are not written to the file.
    """
    from data.loading import load_benchmark
    from optimize.evaluation.evaluate import evaluate
    from optimize.search.objective import build_trial_program, program_state, results_fingerprint
    from optimize.search.pareto import best_point, point_program_config
    from optimize.search.run import print_search, run_search
    from optimize.tracking import default_tracking_uri

    started = time.monotonic()
    timings: dict[str, float] = {}
    # One store for every step, fixed now: a step that moves MLflow's process-wide URI must not
    # send the next step's runs elsewhere.
    uri = config.tracking.mlflow_uri or default_tracking_uri(config.run_dir)
    config = replace(config, tracking=replace(config.tracking, mlflow_uri=uri))
    program_dir, compiled = None, None
    if config.compile.optimizer != "none":
        from optimize.compiling.compile import compile_experiment

        _rule(console, f"1/3 compile: {config.compile.optimizer} on {config.data.dev}")
        compiled = compile_experiment(config, systems=systems, track=track, progress=progress, log_model=log_model)
        program_dir = compiled.directory
        timings["compile"] = round(time.monotonic() - started, 1)

    _rule(console, f"2/3 search: {config.search.trials} trials on {config.data.dev}")
    mark = time.monotonic()
    trials_run: list[Any] = []
    search = run_search(config, program_dir=program_dir, systems=systems, tracking=track, progress=progress,
                        on_trial=trials_run.append)
    timings["search"] = round(time.monotonic() - mark, 1)
    print_search(search, console)

    best = best_point(search.study)
    best_config = point_program_config(best, search.study, config.program)
    _rule(console, f"3/3 test: {best.name} on {config.data.benchmark} ({config.data.limit or 'all'} problems)")
    mark = time.monotonic()
    data = config.data
    test = load_benchmark(data.benchmark, data_dir=data.data_dir, limit=data.limit, seed=data.seed)
    report = evaluate(build_trial_program(best_config, program_dir=program_dir, systems=systems), test,
                      results_path=config.run_dir / "test" / best.name / "results.jsonl",
                      fingerprint=results_fingerprint(best_config, program_state(program_dir)),
                      accept=(results_fingerprint(best_config, program_state(program_dir), legacy=True),),
                      workers=config.tracking.workers, progress=progress, description=f"test {data.benchmark}")
    timings["test"] = round(time.monotonic() - mark, 1)
    if search.parent_run_id and track:
        from optimize.tracking import Tracker

        tracker = Tracker.create(search.tracking_uri, config.tracking.mlflow_experiment)
        tracker.child(search.parent_run_id, f"test-{best.name}",
                      params={"trial": best.trial, "benchmark": data.benchmark, "limit": data.limit,
                              **best.row()},
                      metrics={"test_accuracy": report.summary.accuracy, "test_mean_tokens": report.summary.mean_tokens,
                               "test_spent_tokens": report.summary.spent_tokens},
                      artifacts=(report.results_path, report.summary_path), tags={"scale.kind": "test"})
    timings["total"] = round(time.monotonic() - started, 1)
    outcome = {"config": config.name, "run_dir": str(config.run_dir), "program_dir": str(program_dir or ""),
               "best_trial": best.trial, "best_values": best.row(),
               "dev": {"accuracy": best.accuracy, "mean_tokens": best.tokens, "n": len(search.study.trials)},
               "test": {"benchmark": data.benchmark, **report.summary.to_dict()},
               "search": search.totals, "seconds": timings, "tracking_uri": search.tracking_uri,
               "parent_run_id": search.parent_run_id, "artifact_uri": search.artifact_uri,
               "dashboard": search.dashboard_command,
               "pareto_dir": str(config.run_dir / "pareto"), "test_results": str(report.results_path)}
    path = config.run_dir / "quickstart.json"
    path.write_text(json.dumps(outcome, indent=2, default=str) + "\n", encoding="utf-8")
    outcome.update(summary=report.summary, compiled=compiled, trials_run=trials_run)
    return outcome


def _rule(console: Any, title: str) -> None:
    if console is not None:
        console.rule(title)


def _report(outcome: dict[str, Any], console: Any) -> None:
    from optimize.evaluation.summary import print_summary

    print_summary(outcome["summary"], title=f"Test: trial {outcome['best_trial']} on {outcome['test']['benchmark']}",
                  console=console)
    seconds = outcome["seconds"]
    console.print(f"Done in {seconds['total'] / 60:.1f} min ("
                  + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items() if k != "total") + ").", highlight=False)
    console.print(f"Run directory: {outcome['run_dir']} (quickstart.json, pareto/, test/)", highlight=False)
    if outcome["tracking_uri"]:
        console.print(f"MLflow: {outcome['tracking_uri']}, parent run {outcome['parent_run_id']} (artifacts in "
                      f"{outcome['artifact_uri']}): mlflow ui --backend-store-uri {outcome['tracking_uri']}",
                      highlight=False)
    console.print(f"Optuna dashboard: {outcome['dashboard']}", highlight=False)
