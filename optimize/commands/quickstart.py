"""``scale quickstart``: the search's question in small, on the embedded model: compile, search, test.

1. **compile**: tune the SCALE predictors with the config's DSPy optimizer on the dev slice
   (skipped with ``compile.optimizer: none``); SCALE trials of the search start from it;
2. **search**: a short Optuna study across methods and budgets on the dev slice
   (``optimize.search``: each method's knobs, SCALE's exact tau curve, plans reused);
3. **test**: the winner (the held-out confirmation's best when the search has one, else the
   budget choice, else the front's most accurate point) on a test slice (``data.benchmark``,
   ``data.limit``, never seen by steps 1-2) beside the best uniform method of the search (CoT or
   budget forcing at no more dev tokens; if the winner is uniform itself, the best other uniform
   point) on the same problems: both accuracies and the paired difference with its 95 % interval.

It prints the Pareto table, both test summaries, the difference and where everything went (run
directory, MLflow store, optuna-dashboard command), and writes ``<run dir>/quickstart.json``.
Rerunning resumes every step. ``make demo`` runs it with ``experiments/quickstart.yaml``.

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
        description="Compile the SCALE program, search methods, tau and budgets with Optuna, and evaluate the "
                    "winner beside the best uniform method on a test slice; everything tracked in MLflow. Resumable.",
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
    returned dict also holds ``summary`` (the winner's test summary), ``compiled`` and
    ``trials_run`` (the search trials this call ran), which are not written to the file.
    """
    from data.loading import load_benchmark
    from optimize.compare.stats import paired_difference
    from optimize.search.points import describe
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

    winner, baseline = pick_winner(search)
    data = config.data
    _rule(console, f"3/3 test: {winner.name} beside {baseline.name if baseline else 'no uniform method'} on "
                   f"{data.benchmark} ({data.limit or 'all'} problems)")
    mark = time.monotonic()
    test = load_benchmark(data.benchmark, data_dir=data.data_dir, limit=data.limit, seed=data.seed)
    tracker = None
    if search.parent_run_id and track:
        from optimize.tracking import Tracker

        tracker = Tracker.create(search.tracking_uri, config.tracking.mlflow_experiment)
    reports = {"winner": _test(winner, search, config, test, program_dir, systems, progress, tracker)}
    if baseline is not None:
        reports["baseline"] = _test(baseline, search, config, test, program_dir, systems, progress, tracker)
    timings["test"] = round(time.monotonic() - mark, 1)
    difference = None
    if baseline is not None:
        ids = [str(e.id) for e in test]
        right = {k: {str(r.id): bool(r.correct) for r in rep.results} for k, rep in reports.items()}
        difference = paired_difference([right["baseline"][i] for i in ids], [right["winner"][i] for i in ids])
    timings["total"] = round(time.monotonic() - started, 1)
    report = reports["winner"]
    outcome = {"config": config.name, "run_dir": str(config.run_dir), "program_dir": str(program_dir or ""),
               "best_trial": winner.trial, "best_point": winner.name, "best_values": winner.row(),
               "winner": describe(winner), "winner_file": str(search.winner or ""),
               "baseline": describe(baseline) if baseline else None, "baseline_point": baseline.name if baseline
               else None, "dev": {"accuracy": winner.accuracy, "mean_tokens": winner.tokens,
                                  "trials": len(search.study.trials)},
               "test": {"benchmark": data.benchmark, **report.summary.to_dict()},
               "baseline_test": reports["baseline"].summary.to_dict() if baseline else None,
               "difference": difference.to_dict() if difference else None, "answer": search.answer,
               "search": search.totals, "seconds": timings, "tracking_uri": search.tracking_uri,
               "parent_run_id": search.parent_run_id, "artifact_uri": search.artifact_uri,
               "dashboard": search.dashboard_command,
               "pareto_dir": str(config.run_dir / "pareto"), "test_results": str(report.results_path)}
    path = config.run_dir / "quickstart.json"
    path.write_text(json.dumps(outcome, indent=2, default=str) + "\n", encoding="utf-8")
    outcome.update(summary=report.summary, baseline_summary=reports["baseline"].summary if baseline else None,
                   compiled=compiled, trials_run=trials_run)
    return outcome


def pick_winner(search: Any) -> tuple[Any, Any]:
    """The search's winner and the uniform point it is tested beside (None when the search has none).

    Winner: the held-out confirmation's best, else the budget choice, else the front's most accurate
    point. Beside it: the best uniform point at no more dev tokens; if there is none (the winner is
    itself the cheapest uniform one), the most accurate other uniform point.
    """
    from optimize.search.confirm import uniform_baseline
    from optimize.search.families import UNIFORM
    from optimize.search.pareto import best_point
    from optimize.search.points import study_points

    points = study_points(search.study)
    winner = None
    if search.confirmed:
        winner = next(p for p in points if p.name == search.confirmed[0].point)
    elif search.choice is not None:
        winner = search.choice
    if winner is None:
        winner = best_point(search.study)
    baseline = uniform_baseline(points, winner)
    if baseline is None:
        others = [p for p in points if p.method in UNIFORM and p.name != winner.name]
        baseline = min(others, key=lambda p: (-p.accuracy, p.tokens, p.trial)) if others else None
    return winner, baseline


def _test(point: Any, search: Any, config: Any, test: Any, program_dir: Any, systems: Any, progress: bool,
          tracker: Any) -> Any:
    """``point`` on the test problems (resumable: ``<run dir>/test/<point>/results.jsonl``)."""
    from optimize.evaluation.evaluate import evaluate
    from optimize.search.objective import build_trial_program, program_state, results_fingerprint
    from optimize.search.pareto import point_program_config

    program = point_program_config(point, search.study, config.program)
    report = evaluate(build_trial_program(program, program_dir=program_dir, systems=systems), test,
                      results_path=config.run_dir / "test" / point.name / "results.jsonl",
                      fingerprint=results_fingerprint(program, program_state(program_dir)),
                      accept=(results_fingerprint(program, program_state(program_dir), legacy=True),),
                      workers=config.workers, progress=progress, description=f"test {point.name}")
    if tracker is not None:
        tracker.child(search.parent_run_id, f"test-{point.name}",
                      params={"point": point.name, "benchmark": config.data.benchmark, "limit": config.data.limit,
                              **point.row()},
                      metrics={"test_accuracy": report.summary.accuracy, "test_mean_tokens": report.summary.mean_tokens,
                               "test_spent_tokens": report.summary.spent_tokens},
                      artifacts=(report.results_path, report.summary_path), tags={"scale.kind": "test"})
    return report


def _rule(console: Any, title: str) -> None:
    if console is not None:
        console.rule(title)


def _report(outcome: dict[str, Any], console: Any) -> None:
    from optimize.evaluation.summary import print_summary

    bench = outcome["test"]["benchmark"]
    print_summary(outcome["summary"], title=f"Test: winner {outcome['best_point']} ({outcome['winner']}) on {bench}",
                  console=console)
    if outcome["baseline_summary"] is not None:
        print_summary(outcome["baseline_summary"], console=console,
                      title=f"Test: uniform {outcome['baseline_point']} ({outcome['baseline']}) on {bench}")
        d = outcome["difference"]
        console.print(f"On the same {d['n']} test problems: winner {d['after']:.0f} % vs uniform {d['before']:.0f} %: "
                      f"difference {d['difference']:+.0f} points [95 % interval {d['low']:+.0f}, {d['high']:+.0f}] "
                      f"({d['gained']} gained, {d['lost']} lost).", highlight=False)
    else:
        console.print("The search measured no uniform method (cot, bf) to test beside the winner.", highlight=False)
    seconds = outcome["seconds"]
    console.print(f"Done in {seconds['total'] / 60:.1f} min ("
                  + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items() if k != "total") + ").", highlight=False)
    console.print(f"Run directory: {outcome['run_dir']} (quickstart.json, pareto/, test/)", highlight=False)
    if outcome["tracking_uri"]:
        console.print(f"MLflow: {outcome['tracking_uri']}, parent run {outcome['parent_run_id']} (artifacts in "
                      f"{outcome['artifact_uri']}): mlflow ui --backend-store-uri {outcome['tracking_uri']}",
                      highlight=False)
    console.print(f"Optuna dashboard: {outcome['dashboard']}", highlight=False)
