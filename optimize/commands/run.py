"""``scale run "PROBLEM"``: solve one problem and show how: plan, difficulty, mode, tokens, answer.

Example:
    scale run "Natalia sold 48 clips in April and half as many in May. How many in total?" --threshold 0.2
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from optimize.commands.common import add_lm_options, resolve_experiment
from optimize.commands.saved_program import add_saved_program_option, experiment_for_saved, load_saved_program
from program.config import METHODS

if TYPE_CHECKING:
    from optimize.experiment import ExperimentConfig
    from program.ledger import Ledger


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="solve one problem and print the trace (steps, modes, tokens)",
                                   description="Solve one problem and print the plan, each step's difficulty, "
                                               "mode and tokens, the final answer and the totals.")
    parser.add_argument("problem", help="the problem text (quote it)")
    add_program_options(parser)
    add_saved_program_option(parser)
    add_lm_options(parser)
    parser.set_defaults(func=run)


def add_program_options(parser: argparse.ArgumentParser) -> None:
    """--method and --threshold (shared with ``scale eval``)."""
    parser.add_argument("--method", choices=METHODS, help="method to run (default: the config's, else scale)")
    parser.add_argument("--threshold", type=float, metavar="TAU",
                        help="SCALE threshold: a step with difficulty > TAU goes to System 2")


def experiment_for_args(args: argparse.Namespace) -> ExperimentConfig:
    """The experiment of a command: config file and endpoint overrides, then --method/--threshold."""
    from optimize.experiment import with_program

    config = experiment_for_saved(args) if getattr(args, "program", None) else resolve_experiment(args)
    if getattr(args, "method", None):
        config = with_program(config, method=args.method)
    if getattr(args, "threshold", None) is not None:
        config = with_program(config, scale=replace(config.program.scale, threshold=args.threshold))
    return config


def load_program_for_args(args: argparse.Namespace, config: ExperimentConfig) -> Any:
    """The program a command runs: a saved program directory (--program DIR), else built from the config."""
    from optimize.evaluation import evaluate

    if getattr(args, "program", None):
        return load_saved_program(args, config)
    return evaluate.build_program(config.program)


def run(args: argparse.Namespace) -> int:
    from program.ledger import Ledger, recording
    from program.serving.local import ensure_server

    config = experiment_for_args(args)
    ledger = Ledger()
    with ensure_server(config.program.lm):
        program = load_program_for_args(args, config)
        with recording(ledger):
            prediction = program(problem=args.problem)
    print_run(args.problem, prediction, ledger, method=config.program.method)
    return 0


def print_run(problem: str, prediction: Any, ledger: Ledger, *, method: str = "", console: Any = None) -> None:
    """Print one solved problem: the plan's steps, every LM call, totals and the final answer."""
    from rich import box
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text  # model and user text may hold [brackets]: never parse it as markup

    from optimize.evaluation.traces import (
        failure_text,
        step_description,
        step_difficulty,
        step_usage,
        step_value,
        steps_of,
    )

    console = console or Console()
    console.print(Panel(Text(problem), title=f"Problem ({method})" if method else "Problem", expand=False))
    trace = getattr(prediction, "trace", None) or {}
    steps = steps_of(trace)
    if steps:
        table = Table(title="Plan", caption="tokens: prompt / completion / thinking, per step")
        for column in ("#", "step", "difficulty", "mode", "tokens", "result"):
            table.add_column(column, overflow="fold", no_wrap=column in ("difficulty", "mode", "tokens"))
        for number, step in enumerate(steps, 1):
            usage = step_usage(step)
            tokens = "/".join(str(usage.get(k, 0)) for k in ("prompt_tokens", "completion_tokens", "thinking_tokens"))
            difficulty = step_difficulty(step)
            table.add_row(str(number), Text(step_description(step) or "-"),
                          "-" if difficulty is None else f"{difficulty:.2f}",
                          str(step.get("mode", "-")), tokens if usage else "-", Text(step_value(step) or "-"))
        console.print(table)
    elif getattr(prediction, "solution", ""):
        console.print(Panel(Text(str(prediction.solution)), title="Solution", expand=False))
    for failure in trace.get("failures", []) if isinstance(trace, dict) else []:
        console.print(Text.assemble(("note: ", "yellow"), failure_text(failure)))

    models = sorted({call.model for call in ledger.calls})
    one_model = len(models) == 1  # then name it once, not on every row
    calls = Table(title="LM calls", box=box.SIMPLE_HEAD,  # light borders: the columns fit 80 characters
                  caption=f"model: {models[0]}" if one_model else None)
    columns = ("#", "stage", *(() if one_model else ("model",)), "prompt", "completion", "thinking", "seconds")
    for column in columns:
        calls.add_column(column, justify="left" if column in ("stage", "model") else "right",
                         overflow="fold", no_wrap=column != "model")  # only a long model name may wrap
    for number, call in enumerate(ledger.calls, 1):
        calls.add_row(str(number), call.stage, *(() if one_model else (call.model,)), str(call.prompt_tokens),
                      str(call.completion_tokens), str(call.thinking_tokens),
                      "cached" if call.cached else f"{call.seconds:.2f}")
    console.print(calls)
    stages = Table(title="Tokens by stage")
    for column in ("stage", "calls", "prompt", "completion", "thinking", "answer"):
        stages.add_column(column, justify="left" if column == "stage" else "right")
    for name, sums in ledger.by_stage().items():
        stages.add_row(name, *(str(int(sums[k])) for k in ("calls", "prompt_tokens", "completion_tokens",
                                                            "thinking_tokens", "answer_tokens")))
    console.print(stages)
    totals = ledger.totals()
    console.print(f"Totals: {int(totals['calls'])} calls, {int(totals['total_tokens'])} tokens "
                  f"({int(totals['prompt_tokens'])} prompt, {int(totals['completion_tokens'])} completion, "
                  f"{int(totals['thinking_tokens'])} thinking), {totals['seconds']:.1f} s in LLM calls")
    console.print(Text.assemble(("Answer: ", "bold"), str(getattr(prediction, "answer", "") or "(none)")))
