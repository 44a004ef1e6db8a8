"""``scale data list`` and ``scale data show NAME``: what benchmarks exist and what is in them."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from data import BENCHMARKS, find_local_file, load_benchmark
from data.errors import DataError
from optimize.commands.common import add_data_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="list the benchmarks or show a few problems")
    actions = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="table of benchmarks: role, rows, answer type, local file, Hub id")
    add_data_options(listing)
    show = actions.add_parser("show", help="print the first problems of a benchmark with id and answer")
    show.add_argument("name", help=f"benchmark name: {', '.join(BENCHMARKS)}")
    show.add_argument("--limit", type=int, default=5, help="how many problems (default 5)")
    show.add_argument("--seed", type=int, default=None, help="sample with this seed instead of taking the first N")
    add_data_options(show)
    parser.set_defaults(func=run)


def _console() -> Console:
    console = Console()
    # Piped or captured output would be cut at 80 columns; the table is meant to be read whole.
    return console if console.is_terminal else Console(width=200)


def _count_rows(path: Path) -> str:
    with path.open("rb") as handle:
        return str(sum(1 for line in handle if line.strip()))


def _list(args: argparse.Namespace) -> int:
    if args.data_dir and not Path(args.data_dir).is_dir():
        raise DataError(f"--data-dir {args.data_dir}: not a directory; expected the folder holding the benchmark files")
    table = Table(title="benchmarks")
    for column in ("name", "role", "rows", "answer", "local file", "Hub id"):
        table.add_column(column, no_wrap=column != "local file")
    for name, bench in BENCHMARKS.items():
        try:
            path = find_local_file(name, args.data_dir)
        except DataError:
            path = None  # --data-dir without this file: the table shows it as missing
        hub = bench.hub_id + (f" ({bench.hub_config})" if bench.hub_config else "") + f" [{bench.hub_split}]"
        table.add_row(name, bench.role, _count_rows(path) if path else "-", bench.answer_type,
                      escape(str(path) if path else f"- ({bench.file})"), escape(hub))
    _console().print(table)
    return 0


def _show(args: argparse.Namespace) -> int:
    examples = load_benchmark(args.name, data_dir=args.data_dir, limit=args.limit, seed=args.seed)
    console = _console()
    for example in examples:
        console.print(f"[bold]{escape(example.id)}[/bold]  answer: {escape(example.answer)}", highlight=False)
        console.print(example.problem, markup=False, highlight=False)
        console.print()
    return 0


def run(args: argparse.Namespace) -> int:
    return _list(args) if args.data_command == "list" else _show(args)
