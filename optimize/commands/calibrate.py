"""``scale calibrate``: how well each difficulty source predicts where System 1 fails, on dev problems.

Labels come from solving each dev problem's plan all-System-1 and all-System-2 (resumable:
rerunning the same command only labels what is missing). Prints a table (AUROC at problem and
step level with 95 % intervals, G(0.5) and its tokens), writes ``calibration.json``, ``gain.png``
and ``labels.jsonl``, logs one MLflow run. ``--fit learned`` also writes ``learned.json`` for
``scale.difficulty_source: learned``.

Example:
    scale calibrate --method cascade --dev gsm8k_train:100 --sources rating,rating_logprobs,attempt:length,learned \\
        --fit learned --output experiments/results/calibration
"""

from __future__ import annotations

import argparse

from optimize.commands.common import (
    add_data_options,
    add_lm_options,
    add_output_flags,
    positive_int,
    resolve_experiment,
)
from optimize.errors import EXIT_OK, EXIT_STATUS_HELP

DEFAULT_SOURCES = "rating,attempt:length,learned"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="measure how well each difficulty source predicts System 1's failures (AUROC, G(r))",
        description="Label dev problems (all-System-1 and all-System-2 solves, resumable) and report, per "
                    "difficulty source, AUROC at problem and step level and the gain-recovery curve G(r).",
        epilog=EXIT_STATUS_HELP)
    parser.add_argument("--method", choices=("scale", "cascade"),
                        help="whose plans to label: SCALE's decomposition or the cascade's one step "
                             "(default: the config's method when it is one of these, else scale)")
    parser.add_argument("--dev", metavar="POOL:N", help="dev problems from a train pool, e.g. gsm8k_train:100 "
                                                        "(default: the config's data.dev)")
    parser.add_argument("--offset", type=int, default=0, help="start of the dev slice in the seeded pool order")
    parser.add_argument("--seed", type=int, default=0, help="pool shuffle seed (default 0)")
    parser.add_argument("--sources", default=DEFAULT_SOURCES,
                        help=f"comma-separated sources to score (default {DEFAULT_SOURCES}); known: rating, "
                             "rating_logprobs, attempt:length, attempt:agreement, attempt:deepconf, "
                             "attempt:mean_logprob, learned (logprob ones need a server that returns logprobs)")
    parser.add_argument("--fit", choices=("learned",),
                        help="fit the learned source on these labels; write learned.json")
    parser.add_argument("--workers", type=positive_int, metavar="W",
                        help="problems labelled at once (default: the config's tracking.workers, else the "
                             "embedded server's slots, else 1)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples per interval (default 2000)")
    parser.add_argument("--output", metavar="DIR", help="output directory (default: runs/<name>/calibrate-<method>)")
    add_output_flags(parser)
    add_lm_options(parser)
    add_data_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from data.loading import dev_split, parse_slice
    from optimize.calibration.labels import groups_needed
    from optimize.calibration.report import format_table
    from optimize.calibration.run import calibrate
    from program.config import ConfigError
    from program.serving.local import ensure_server

    config = resolve_experiment(args)
    method = args.method or (config.program.method if config.program.method in ("scale", "cascade") else "scale")
    dev = args.dev or config.data.dev
    if not dev:
        raise ConfigError("calibrate needs dev problems: --dev POOL:N (e.g. gsm8k_train:100) or data.dev "
                          "in the config.")
    pool, n = parse_slice(dev)
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    groups_needed(sources)  # unknown names fail here, before any call
    examples = dev_split(pool, n, seed=args.seed, offset=args.offset, data_dir=config.data.data_dir)
    output = Path(args.output) if args.output else config.run_dir / f"calibrate-{method}"
    with ensure_server(config.program.lm):
        result = calibrate(config, examples, output=output, sources=sources, method=method,
                           fit=args.fit == "learned", dev_name=f"{pool}:{n}@{args.offset}", tracking=not args.no_mlflow,
                           progress=not args.no_progress, resamples=args.resamples,
                           workers=args.workers or config.workers)
    print(format_table(result.report))
    print(f"\nLabels: {output / 'labels.jsonl'}\nReport: {result.json_path}\nPlot: {result.plot_path}")
    if result.learned_path:
        print(f"Learned source: {result.learned_path} (use it with scale: {{difficulty_source: learned, "
              f"learned_path: {result.learned_path}}})")
    print(f"Wall time: {result.wall_seconds:.0f} s (labelling, summed over problems: {result.labelling_seconds:.0f} s)")
    return EXIT_OK
