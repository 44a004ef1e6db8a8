"""``scale compare``: run every entry of a compare file on the same problems; table, JSON, PNG, MLflow.

Resumable per problem and per sample: rerun the same command to finish an interrupted comparison.

Example:
    scale compare --config experiments/local/compare-gsm8k.yaml --limit 50
"""

from __future__ import annotations

import argparse

from optimize.commands.check import add_strict_option, strict_preflight
from optimize.commands.common import add_data_options, add_output_flags, failed_status, positive_int
from optimize.errors import EXIT_STATUS_HELP


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="every method on the same problems: accuracy vs tokens, intervals, the frontier",
        description="Run each entry of a compare file (a method with overrides, or a Pareto config from "
                    "`scale search`) on the same problems, K samples each; print the table and write "
                    "compare.json and compare.png.", epilog=EXIT_STATUS_HELP)
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="compare file: an experiment with a `compare: {samples, entries}` section")
    parser.add_argument("--benchmark", help="benchmark (default: the file's data.benchmark)")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="the first N problems")
    parser.add_argument("--samples", type=positive_int, metavar="K",
                        help="samples per entry (default: the file's; greedy entries run once)")
    parser.add_argument("--workers", type=positive_int, metavar="W", help="problems at once (default: config)")
    parser.add_argument("--output", metavar="DIR", help="output directory (default: runs/<name>/compare)")
    add_strict_option(parser)
    add_output_flags(parser)
    add_data_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from data.loading import load_benchmark
    from optimize.compare import load_compare, run_compare
    from optimize.compare.run import format_table
    from program.serving.local import ensure_server

    config = load_compare(args.config)
    experiment = config.experiment
    if args.data_dir:
        experiment = replace(experiment, data=replace(experiment.data, data_dir=args.data_dir))
    if args.tracking_uri:
        experiment = replace(experiment, tracking=replace(experiment.tracking, mlflow_uri=args.tracking_uri))
    config = replace(config, experiment=experiment)
    data = experiment.data
    benchmark = args.benchmark or data.benchmark
    examples = load_benchmark(benchmark, data_dir=data.data_dir, limit=args.limit or data.limit, seed=data.seed)
    output = Path(args.output) if args.output else experiment.run_dir / "compare"
    with ensure_server(experiment.program.lm):
        strict_preflight(args, experiment.program.lm)
        report = run_compare(config, examples, output=output, samples=args.samples,
                             workers=args.workers or experiment.workers, progress=not args.no_progress)
    print(format_table(report))
    print(f"\nTable: {report.json_path}\nPlot: {report.plot_path}\nWall time: {report.wall_seconds:.0f} s")
    if not args.no_mlflow:
        from optimize.compare.tracking import log_compare

        print(f"MLflow parent run: {log_compare(config, report, benchmark=benchmark)}")
    failed = sum(e.n_failed for e in report.entries)
    return failed_status(failed, sum(e.n * e.samples for e in report.entries), output)
