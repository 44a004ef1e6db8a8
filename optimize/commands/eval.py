"""``scale eval``: run a method on a benchmark, resumably; print and save the summary.

Results go to ``<--output or runs/<name>>/<method>-<benchmark>/results.jsonl`` with
``summary.json`` and the resolved ``config.yaml`` beside them. Rerunning the same command skips
finished problems. ``--budgets`` runs s1 budget forcing once per thinking budget instead
(``.../bf-<benchmark>-budget<B>/``) and prints Control / Scaling / Performance and a plot path.

Example:
    scale eval --method scale --benchmark gsm8k --limit 20 --workers 2
    scale eval --benchmark gsm8k --limit 20 --budgets 128,256,512
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optimize.commands.check import add_strict_option, strict_preflight
from optimize.commands.common import add_data_options, add_lm_options, add_output_flags, failed_status, positive_int
from optimize.commands.run import add_program_options, experiment_for_args, load_program_for_args
from optimize.commands.saved_program import add_saved_program_option, saved_program_fingerprint
from optimize.errors import EXIT_STATUS_HELP

if TYPE_CHECKING:
    import dspy

    from optimize.experiment import ExperimentConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a method on a benchmark (resumable; summary, budget sweeps)",
                                   description="Evaluate a method on a benchmark. Finished problems are saved as "
                                               "they complete; rerun the same command to resume.",
                                   epilog=EXIT_STATUS_HELP)
    add_program_options(parser)
    add_saved_program_option(parser)
    parser.add_argument("--benchmark", help="benchmark name, e.g. gsm8k, math500, aime2024 (default: the config's)")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="evaluate the first N problems")
    parser.add_argument("--seed", type=int, help="shuffle with this seed before taking --limit problems")
    parser.add_argument("--workers", type=positive_int, metavar="W",
                        help="problems solved at once (default: config, 1)")
    parser.add_argument("--output", metavar="DIR", help="run directory (default: runs/<experiment name>)")
    parser.add_argument("--budgets", type=_budgets, metavar="B1,B2,...",
                        help="s1 budget sweep: run the bf method once per thinking budget, e.g. 128,256,512")
    parser.add_argument("--samples", type=positive_int, metavar="K",
                        help="repeated samples: sample k > 0 draws with its own seeds into sample-<k>/ (sample 0 is "
                             "the usual run); prints the mean accuracy with a t interval. Greedy configs run once")
    parser.add_argument("--export-sft", metavar="FILE", help="also write the correct SCALE traces as chat SFT data")
    parser.add_argument("--max-server-errors", type=positive_int, default=3, metavar="N",
                        help="stop after N problems in a row fail with server errors (default 3)")
    add_strict_option(parser)
    add_output_flags(parser, mlflow=False)
    add_lm_options(parser)
    add_data_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from data.loading import load_benchmark
    from optimize.evaluation import evaluate as evaluation
    from optimize.evaluation.summary import print_summary
    from optimize.experiment import save_experiment
    from program.serving.local import ensure_server

    if args.budgets and args.method not in (None, "bf"):
        raise _usage_error(f"--budgets runs the bf method (s1 budget forcing); drop `--method {args.method}`.")
    if args.budgets and args.program:
        raise _usage_error("--budgets builds fresh bf programs; it cannot be combined with --program.")
    if args.budgets and args.export_sft:
        raise _usage_error("--export-sft needs SCALE traces; it cannot be combined with --budgets (bf runs).")
    config = experiment_for_args(args)
    data = replace(config.data, benchmark=args.benchmark or config.data.benchmark,
                   limit=args.limit or config.data.limit, seed=args.seed if args.seed is not None else config.data.seed)
    config = replace(config, data=data)
    run_dir = Path(args.output) if args.output else config.run_dir
    options = {"workers": args.workers or config.workers, "progress": not args.no_progress,
               "max_server_errors": args.max_server_errors}
    examples = load_benchmark(data.benchmark, data_dir=data.data_dir, limit=data.limit, seed=data.seed)

    with ensure_server(config.program.lm):
        strict_preflight(args, config.program.lm)
        if args.budgets:
            return _sweep(config, examples, args.budgets, run_dir, options)
        out_dir = run_dir / f"{config.program.method}-{data.benchmark}"
        fingerprint: str | None = None
        older: tuple[str, ...] = ()
        if args.program:  # a saved program: its own folder, and its tuned state in the fingerprint
            out_dir = run_dir / f"{Path(args.program).name}-{data.benchmark}"
            fingerprint = saved_program_fingerprint(args, config)
            older = (saved_program_fingerprint(args, config, legacy=True),)
        save_experiment(config, out_dir / "config.yaml")
        report = evaluation.evaluate(functools.partial(load_program_for_args, args, config), examples,
                                     results_path=out_dir / "results.jsonl", config=config.program,
                                     fingerprint=fingerprint, accept=older,
                                     description=f"{config.program.method} on {data.benchmark}", **options)
        extra = _more_samples(args, config, examples, out_dir, fingerprint, older, options) if args.samples else []
    print_summary(report.summary, title=f"{config.program.method} on {data.benchmark}")
    print(f"Results: {report.results_path} ({report.n_new} new, {report.n_resumed} resumed)")
    print(f"Summary: {report.summary_path}")
    if extra:
        from optimize.compare.stats import mean_interval

        accuracies = [report.summary.accuracy] + [r.summary.accuracy for r in extra]
        mean, low, high = mean_interval(accuracies)
        print(f"Samples: {', '.join(f'{a:.1f}%' for a in accuracies)}; mean {mean:.1f}% "
              f"(95% t interval {low:.1f} to {high:.1f})")
    if args.export_sft:
        from optimize.evaluation.sft import export_sft

        export = export_sft(report.results_path, args.export_sft)
        print(f"SFT data: {export.path} ({export.written} examples, {export.skipped} results left out)")
    failed = report.summary.n_failed + sum(r.summary.n_failed for r in extra)
    return failed_status(failed, report.summary.n * (1 + len(extra)), report.results_path, report.summary.failures)


def _more_samples(args: argparse.Namespace, config: ExperimentConfig, examples: list[dspy.Example], out_dir: Path,
                  fingerprint: str | None, older: tuple[str, ...], options: dict[str, Any]) -> list[Any]:
    """Samples 1..K-1 of ``--samples K`` (sample 0 is the usual run), each in ``sample-<k>/``."""
    from optimize.compare.entries import is_greedy
    from optimize.evaluation import evaluate as evaluation

    if is_greedy(config.program):
        print(f"--samples {args.samples}: every call of this config is greedy, so the other samples would be "
              "identical; ran one.")
        return []
    return [evaluation.evaluate(functools.partial(load_program_for_args, args, config), examples,
                                results_path=out_dir / f"sample-{k}" / "results.jsonl", config=config.program,
                                fingerprint=fingerprint, accept=older, sample=k,
                                description=f"{config.program.method} sample {k + 1}/{args.samples}", **options)
            for k in range(1, args.samples)]


def _sweep(config: ExperimentConfig, examples: list[dspy.Example], budgets: list[int], run_dir: Path,
           options: dict[str, Any]) -> int:
    from optimize.evaluation.sweep import budget_config, print_sweep, sweep_budgets
    from optimize.experiment import save_experiment

    name = f"bf-{config.data.benchmark}"
    for budget in budgets:  # the resolved config of each budget's run, saved before it starts
        save_experiment(replace(config, program=budget_config(config.program, budget)),
                        run_dir / f"{name}-budget{budget}" / "config.yaml")
    report = sweep_budgets(config.program, examples, budgets, run_dir=run_dir, name=name, **options)
    print_sweep(report)
    print(f"Sweep: {report.report_path}")
    failed = sum(p.n - p.measured for p in report.points)  # measured: the problems answered at that budget
    return failed_status(failed, sum(p.n for p in report.points), run_dir)


def _usage_error(message: str) -> Exception:
    from program.config import ConfigError

    return ConfigError(message)




def _budgets(text: str) -> list[int]:
    """``"128,256,512"`` -> ``[128, 256, 512]``."""
    try:
        budgets = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated token counts, e.g. 128,256,512") from None
    if not budgets or any(b <= 0 for b in budgets):
        raise argparse.ArgumentTypeError(f"{text!r}: budgets must be positive token counts, e.g. 128,256,512")
    return budgets
