"""``scale compile``: tune a program with a DSPy optimizer on a dev split; save, score and track it.

``scale run`` / ``scale eval --program DIR`` run what it saves (``optimize.commands.saved_program``).

Example:
    scale compile --config experiments/quickstart.yaml --optimizer bootstrap --dev gsm8k_train:20 --val 20
    scale run --program runs/quickstart/compiled-bootstrap "What is 2 + 3?"
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING

from optimize.commands.common import add_data_options, add_lm_options, add_output_flags, failed_status, positive_int
from optimize.commands.run import add_program_options, experiment_for_args
from optimize.errors import EXIT_STATUS_HELP
from optimize.experiment import COMPILE_STAGES, OPTIMIZERS

if TYPE_CHECKING:
    from optimize.compiling.compile import CompileResult


def add_parser(subparsers: argparse._SubParsersAction) -> None:

    parser = subparsers.add_parser(
        "compile", help="tune the program's predictors with a DSPy optimizer; save a program directory",
        description="Run a DSPy optimizer over the program's predictors on a dev split of a train pool, score "
                    "the result on the dev and held-out problems, save a program directory (program.json, "
                    "config.yaml, metadata.json) and log it to MLflow.",
        epilog=EXIT_STATUS_HELP)
    parser.add_argument("--optimizer", choices=OPTIMIZERS,
                        help="bootstrap, labeled, random-search, mipro, gepa, simba, or none (default: the config's)")
    parser.add_argument("--auto", choices=("light", "medium", "heavy"),
                        help="let MIPROv2 / GEPA size their budgets (their authors' presets) instead of the config's")
    parser.add_argument("--stage", choices=COMPILE_STAGES,
                        help="program: every predictor, on whole dev problems (default); system1: System 1's step "
                             "solver alone on the steps of --labels (one call per candidate); difficulty: the "
                             "rating on the steps of --labels, scored by how it separates System 1's wrong steps; "
                             "decompose: the decomposition on dev problems, scored by its all-System-1 solve")
    parser.add_argument("--labels", metavar="FILE",
                        help="labels.jsonl of `scale calibrate`, for --stage system1 or difficulty")
    parser.add_argument("--dev", metavar="POOL:N", help="dev problems from a train pool, e.g. gsm8k_train:20")
    parser.add_argument("--val", type=int, metavar="N",
                        help="held-out problems after the dev ones, for an honest score")
    parser.add_argument("--val-offset", type=int, metavar="N",
                        help="start the held-out problems at position N of the shuffle (default: right after dev), "
                             "to skip problems earlier runs used")
    parser.add_argument("--gold-demos", type=int, metavar="N",
                        help="draw N train problems' gold worked solutions (boxed, no calculator marks) as the demo "
                             "pool, never a dev, held-out or recorded id (default: the config's; 0 = none)")
    parser.add_argument("--shortest", type=int, metavar="K", help="keep only the K shortest gold solutions")
    parser.add_argument("--max-demo-tokens", type=int, metavar="T",
                        help="at most T demo tokens in one prompt (demos are dropped from the last to fit)")
    parser.add_argument("--cap-penalty", type=float, metavar="X",
                        help="charge X once per problem whose System 1 attempt was cut off at its cap or unboxed")
    parser.add_argument("--keep-if-better", action="store_true",
                        help="save the program only if its held-out accuracy rose (needs --val N)")
    parser.add_argument("--output", metavar="DIR", help="program directory (default: runs/<name>/compiled-<optimizer>)")
    parser.add_argument("--workers", type=positive_int, metavar="W",
                        help="problems run at once (default: the config's)")
    parser.add_argument("--trace", action="store_true", help="also record DSPy traces in MLflow (mlflow.dspy.autolog)")
    parser.add_argument("--log-mlflow-model", action="store_true",
                        help="also log the program as an MLflow dspy model (mlflow.dspy.load_model). Risk: MLflow "
                             "stores it with cloudpickle, and loading a pickle runs code, so load it only from a "
                             "store you trust; the program directory logged by default is pickle-free")
    add_output_flags(parser)
    add_program_options(parser)
    add_lm_options(parser)
    add_data_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from optimize.compiling.compile import compile_experiment
    from program.serving.local import ensure_server

    config = experiment_for_args(args)
    data = replace(config.data, dev=args.dev or config.data.dev,
                   val=args.val if args.val is not None else config.data.val,
                   val_offset=args.val_offset if args.val_offset is not None else config.data.val_offset)
    given = {name: getattr(args, name) for name in ("gold_demos", "shortest", "max_demo_tokens", "cap_penalty")
             if getattr(args, name) is not None}
    compile_config = replace(config.compile, optimizer=args.optimizer or config.compile.optimizer,
                             auto=args.auto or config.compile.auto, stage=args.stage or config.compile.stage,
                             labels=args.labels or config.compile.labels,
                             keep_if_better=args.keep_if_better or config.compile.keep_if_better, **given)
    tracking = replace(config.tracking, workers=args.workers or config.workers)
    config = replace(config, data=data, compile=compile_config, tracking=tracking)
    with ensure_server(config.program.lm):
        result = compile_experiment(config, output_dir=args.output, track=not args.no_mlflow, trace=args.trace,
                                    progress=not args.no_progress, log_model=args.log_mlflow_model)
    print_result(result)
    return scores_status(result)


def scores_status(result: CompileResult) -> int:
    """0, or 3 (with a warning line) when dev or held-out problems failed while scoring."""
    runs = ("dev", "heldout", "dev_before", "heldout_before")  # the _change entries are differences, not runs
    scored = [s for name, s in result.scores.items() if s and name in runs]
    return failed_status(sum(int(s["failed"]) for s in scored), sum(int(s["n"]) for s in scored),
                         result.directory / "eval")


def print_result(result: CompileResult) -> None:
    """The verdict first when the program got worse or was not kept, then where it is, scores, cost, warnings."""
    c, verdict = result.config.compile, result.verdict
    if verdict.get("worse"):
        print(f"WARNING: the compiled program is {verdict['note']}")
    if not result.kept:
        print(f"Nothing saved (--keep-if-better): {verdict.get('note')} See {result.directory}/rejected.json.")
    print(f"Compiled {result.config.program.method} with {c.optimizer}.")
    if result.kept:
        print(f"Program:  {result.directory}")
        print(f"          run it: scale run --program {result.directory} \"PROBLEM\"")
    if result.run_id:
        print(f"MLflow:   {result.tracking_uri}  (run {result.run_id})")
        print(f"          browse: mlflow ui --backend-store-uri {result.tracking_uri}")
    if result.model_uri:
        print(f"Model:    {result.model_uri}  (mlflow.dspy.load_model)")
    record = result.optimizer
    if record:
        print(f"Optimizer: {record['seconds']:.0f} s, {record['calls']} model calls ({record['cached_calls']} from "
              f"cache), {record['workers']} worker(s)")
        timing = ", ".join(f"{k} {v:.0f} s" for k, v in (record.get("scoring_seconds") or {}).items())
        if timing:
            print(f"Scoring:  {timing} (the problems' wall seconds, summed)")
        for name, demos in (record.get("demo_tokens") or {}).items():
            print(f"Demos:    {name}: {demos['demos']} demo(s), about {demos['tokens']} prompt tokens per call")
    for name, label in (("dev", "Dev"), ("heldout", "Held-out")):
        scores = result.scores.get(name)
        if scores:
            print(f"{label + ':':9} {_line(scores)}")
            before, change = result.scores.get(f"{name}_before"), result.scores.get(f"{name}_change")
            if before and change:
                print(f"{'':9} untuned {_line(before)}")
                print(f"{'':9} {change['difference']:+.1f} points, paired 95% interval [{change['low']:+.1f}, "
                      f"{change['high']:+.1f}], {int(change['gained'])} gained / {int(change['lost'])} lost, "
                      f"McNemar p {change['p_value']:.3f}")
    for warning in result.warnings:
        print(f"warning: {warning}")


def _line(scores: dict) -> str:
    """Accuracy, tokens (prompt sent / evaluated, completion), calls and seconds of one scored split."""
    failed = f", {int(scores['failed'])} failed" if scores["failed"] else ""
    evaluated = scores.get("mean_prompt_evaluated")
    shown = "not reported" if evaluated is None else f"{evaluated:.0f}"
    return (f"accuracy {scores['accuracy']:.1f}% on {int(scores['n'])} problems, score {scores['score']:.3f}, "
            f"{scores['mean_tokens']:.0f} tokens/problem (prompt {scores.get('mean_prompt_tokens', 0):.0f} sent, "
            f"{shown} evaluated; completion {scores.get('mean_completion_tokens', 0):.0f}), "
            f"{scores.get('calls', 0)} calls{failed}")
