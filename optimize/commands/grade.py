"""``scale grade --gold ANSWER --output TEXT``: how the grader reads one output (exit 0 if right)."""

from __future__ import annotations

import argparse
from pathlib import Path

from data import grade, grader_version
from data.errors import DataError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "grade", help="extract the answer from a model output and check it against a gold answer")
    parser.add_argument("--gold", required=True, help="the gold answer, e.g. 204 or '\\frac{1}{2}'")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--output", help="the model output text")
    source.add_argument("--output-file", metavar="FILE", help="read the model output from FILE")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds allowed for the math-verify check (default 5)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.output_file is not None:
        path = Path(args.output_file)
        if not path.is_file():
            raise DataError(f"--output-file {path}: no such file; expected a text file with the model output")
        text = path.read_text(encoding="utf-8", errors="replace")
    else:
        text = args.output
    result = grade(args.gold, text, timeout=args.timeout)
    print(f"extracted: {result.extracted if result.extracted is not None else '(none)'}")
    print(f"gold:      {args.gold}")
    print(f"correct:   {'yes' if result.correct else 'no'} ({result.reason})")
    print(f"grader:    {grader_version()}")
    return 0 if result.correct else 1
