"""Every ``scale ...`` command the README and docs/ show parses with the CLI's own parser.

A reader copies these lines; a flag renamed in ``optimize/commands/`` but not in the docs should fail
here, not in their shell. The commands are read from shell code blocks (```bash, ```sh, ```console or
a bare fence; ``\\`` continuations joined, ``# comments`` dropped) and from inline code spans that
start with ``scale``. A command in a code block is a line to copy: it must parse whole with
``optimize.cli.build_parser()``. An inline span is often a reference in prose (``scale run``, "``scale
run --program`` refuses it"): its sub-command and every option it names must exist, and it must parse
whole if it gives values. Nothing is parsed with ``--help`` (argparse exits 0 on ``--help`` whatever
else is wrong): a ``--help`` is dropped from the line first. Placeholders written in capitals (``DIR``,
``K``, ``"PROBLEM"``) stand for a value: after an option with choices (``--method NAME``) they are
parsed as its first choice, anywhere else as ``1``, which every other option of ours that takes a value
accepts; a ``...`` (more arguments elided) is dropped. Spans that are clearly not one command
(``scale eval/compile/run --config``: several commands named at once) are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from optimize.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*(\.\.\.)?")


def _shell_lines(text: str) -> list[tuple[int, str]]:
    """(line number, command) for each line of a shell code block, continuations joined."""
    found: list[tuple[int, str]] = []
    fence: str | None = None
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip().lower()
            continue
        if fence not in SHELL_FENCES:
            continue
        start, so_far = pending if pending else (number, "")
        so_far += " " + stripped.removeprefix("$ ")
        if so_far.endswith("\\"):
            pending = (start, so_far[:-1])
            continue
        pending = None
        found.append((start, so_far.strip()))
    return found


def _inline_spans(text: str) -> list[tuple[int, str]]:
    """(line number, span) for each inline code span outside code blocks."""
    found: list[tuple[int, str]] = []
    in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        if not in_fence:
            found += [(number, span) for span in re.findall(r"`([^`]+)`", line)]
    return found


def _scale_args(command: str) -> list[str] | None:
    """The arguments after ``scale`` in ``command``, or None when it is not a ``scale`` command."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:  # an unclosed quote: prose, not a command
        return None
    if not words or words[0] != "scale":
        return None
    args = [a for a in words[1:] if a not in {"--help", "..."}]
    if not args or "/" in args[0] and not args[0].startswith("-"):
        return None  # `scale` (`scale --help`) alone, or several sub-commands at once (`scale eval/compile`)
    return args


def _commands(kind: str) -> list[tuple[str, list[str]]]:
    """(file:line, arguments) of every ``scale`` command in the docs' code blocks or inline spans."""
    commands: list[tuple[str, list[str]]] = []
    for path in DOCS:
        text = path.read_text()
        for number, command in _shell_lines(text) if kind == "block" else _inline_spans(text):
            args = _scale_args(command)
            if args is not None:
                commands.append((f"{path.relative_to(ROOT)}:{number}", args))
    return commands


BLOCKS, SPANS = _commands("block"), _commands("inline")


def _sub_commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _with_values(args: list[str]) -> list[str]:
    """``args`` with each capitalised placeholder replaced by a value its option accepts."""
    parser = build_parser()
    command = _sub_commands(parser).get(args[0])
    options = {**parser._option_string_actions, **(command._option_string_actions if command else {})}
    filled = []
    for before, arg in zip(["", *args[:-1]], args, strict=True):
        choices = getattr(options.get(before), "choices", None)
        filled.append((str(next(iter(choices))) if choices else "1") if PLACEHOLDER.fullmatch(arg) else arg)
    return filled


def _parse_error(args: list[str]) -> str | None:
    """argparse's complaint about ``scale ARGS`` (its last line), or None when they parse."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            build_parser().parse_args(_with_values(args))
    except SystemExit as exc:
        lines = errors.getvalue().strip().splitlines()
        return f"exit {exc.code}: {lines[-1] if lines else ''}"
    return None


def _unknown_names(args: list[str]) -> list[str]:
    """The sub-command, or the options of it, that ``scale ARGS`` names and the CLI does not have."""
    parser = build_parser()
    commands = _sub_commands(parser)
    if args[0] not in commands:
        return [args[0]]
    known = set(commands[args[0]]._option_string_actions) | set(parser._option_string_actions)
    return [a for a in args[1:] if a.startswith("-") and a.split("=")[0] not in known]


def test_the_docs_show_scale_commands() -> None:
    """The scan must find them: a change to the fences or the reader would otherwise pass vacuously."""
    assert len([w for w, _ in BLOCKS if w.startswith("README.md:")]) >= 8, BLOCKS
    assert len(BLOCKS) >= 15 and len(SPANS) >= 15, (BLOCKS, SPANS)


@pytest.mark.parametrize(("where", "args"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_a_command_in_a_code_block_parses(where: str, args: list[str]) -> None:
    error = _parse_error(args)
    assert error is None, f"{where}: `scale {shlex.join(args)}` does not parse ({error})"


@pytest.mark.parametrize(("where", "args"), SPANS, ids=[where for where, _ in SPANS])
def test_an_inline_command_names_what_exists(where: str, args: list[str]) -> None:
    unknown = _unknown_names(args)
    assert not unknown, f"{where}: `scale {shlex.join(args)}` names {unknown}, which `scale` does not have"
    gives_values = any(not a.startswith("-") for a in args[1:])
    error = _parse_error(args) if gives_values else None
    assert error is None, f"{where}: `scale {shlex.join(args)}` does not parse ({error})"


def test_a_wrong_flag_fails_here() -> None:
    """The checks can fail: a misspelt flag, a bad value or an unknown command is refused."""
    for args in (["eval", "--metod", "scale"], ["eval", "--limit", "ten"], ["evaluate"]):
        assert _parse_error(args) is not None, args
    assert _unknown_names(["eval", "--metod"]) == ["--metod"]
    assert _unknown_names(["evaluate"]) == ["evaluate"]
    assert _unknown_names(["run", "--program"]) == []


def test_placeholders_and_continuations_are_read() -> None:
    text = "```bash\nscale run --program DIR \\\n    \"PROBLEM\"   # a comment\n```\n`scale eval/compile --config`\n"
    assert [(n, _scale_args(c)) for n, c in _shell_lines(text)] == [(2, ["run", "--program", "DIR", "PROBLEM"])]
    assert _with_values(["run", "--program", "DIR", "PROBLEM"]) == ["run", "--program", "1", "1"]
    assert _with_values(["eval", "--method", "NAME", "--limit", "N"]) == ["eval", "--method", "scale", "--limit", "1"]
    assert [_scale_args(span) for _, span in _inline_spans(text)] == [None]
