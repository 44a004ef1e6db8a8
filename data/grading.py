r"""Answer grading: find the final answer in a model output and judge it against the gold answer.

Handled:
- Thinking sections. ``<think>...</think>`` blocks are dropped. A ``<think>`` that is never closed
  means the model ran out of budget before answering: no answer. A lone ``</think>`` (the chat
  template opened the section inside the prompt) keeps only the text after it.
- The LAST ``\boxed{...}`` or ``\fbox{...}`` (nested braces allowed), else the last
  "Final Answer:" / "Answer:" (its line, or the next non-empty line when it ends the line).
  s1 budget forcing hands its answer over WITH the forced "Final Answer:" in front
  (``program.clients.budget_forcing.ForcedResult.graded``), as s1's harness grades it, so a bare "42"
  written after the cue is found by this rule and compared like any answer (math-verify included).
- Integers compare exactly, after removing ``$``, thousands commas, unit words, ``%`` and a
  trailing ``.0``. Everything else goes to math-verify (symbolic and numeric equivalence).

math-verify's own timeouts use signals and fail off the main thread, and without them some inputs
(towers of powers) never finish. So every math-verify call runs in a small process pool, bounded
by ``future.result(timeout=...)``; on timeout the pool is killed and replaced. Safe to call from
many threads at once. Workers start by forkserver (fork is unsafe in a threaded parent), so a
script that grades must keep its top-level code under ``if __name__ == "__main__":``.

Not handled: answers spelled in words ("five"), multiple-choice letters vs their values.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import logging
import multiprocessing
import multiprocessing.util
import os
import re
import threading
import time
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

GRADING_VERSION = 1  # bump when extraction or comparison rules change: results record it

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.S | re.I)
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_CUE = re.compile(r"(?i)\b(?:final\s+answer|answer)\b\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?")
_ANSWER_IS = re.compile(r"(?i)^(?:the\s+)?(?:final\s+)?answer\s+is\s*:?\s*")
_NOT_UNITS = {"pi", "sqrt", "frac", "infty", "inf", "i", "e"}


@dataclass(frozen=True)
class Grade:
    """The verdict on one output: what was extracted, whether it is right, and why."""

    extracted: str | None
    correct: bool
    reason: str


def strip_thinking(text: str) -> str | None:
    """The visible answer part of ``text``; None when a thinking section was never closed.

    >>> strip_thinking("<think>try 3</think>It is 4.")
    'It is 4.'
    >>> strip_thinking("<think>still thinking") is None
    True
    """
    text = _THINK_BLOCK.sub("", text)
    if "<think>" in text.lower():
        return None
    close = text.lower().rfind("</think>")
    return text[close + len("</think>"):] if close >= 0 else text


def last_boxed(text: str) -> str | None:
    r"""Content of the last complete ``\boxed{...}`` / ``\fbox{...}`` in ``text``, or None.

    >>> last_boxed(r"first \boxed{1}, then \boxed{\frac{1}{2}}")
    '\\frac{1}{2}'
    """
    for match in reversed(list(_BOX.finditer(text))):  # an unbalanced (truncated) box: try the one before
        depth = 1
        for i in range(match.end(), len(text)):
            if text[i] in "{}" and text[i - 1] != "\\":  # \{ and \} are literal braces (sets)
                depth += 1 if text[i] == "{" else -1
                if depth == 0:
                    return text[match.end():i].strip()
    return None


def _clean_answer_line(line: str) -> str:
    line = line.strip().strip("*").strip()
    line = _ANSWER_IS.sub("", line)
    line = line.rstrip(".").strip()
    for left, right in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if line.startswith(left) and line.endswith(right) and len(line) > len(left) + len(right):
            line = line[len(left):len(line) - len(right)].strip()
    return line.rstrip(".").strip()


def extract_answer(text: str) -> str | None:
    r"""The final answer in a model output, or None when there is none.

    >>> extract_answer(r"<think>maybe \boxed{3}</think>So \boxed{4}.")
    '4'
    >>> extract_answer("Work...\nFinal Answer: 12")
    '12'
    >>> extract_answer("<think>out of budget") is None
    True
    """
    visible = strip_thinking(text)
    if visible is None:
        return None
    boxed = last_boxed(visible)
    if boxed:
        return boxed
    cues = list(_ANSWER_CUE.finditer(visible))
    if not cues:
        return None
    lines = visible[cues[-1].end():].split("\n")
    candidates = [lines[0]] + [line for line in lines[1:] if line.strip()][:1]
    for line in candidates:
        answer = _clean_answer_line(line)
        if answer:
            return answer
    return None


def _as_integer(answer: str) -> int | None:
    """The integer an answer denotes once $, commas, units, % and '.0' are removed, else None."""
    t = answer.strip().replace("\u2212", "-")
    t = re.sub(r"\\(?:text|mbox|textbf|mathrm)\s*\{([^{}]*)\}", r" \1 ", t)
    for token in ("\\$", "$", "\\%", "%", "\\!", "\\,", "\\;", "~"):
        t = t.replace(token, " " if token in ("\\,", "\\;", "~") else "")
    t = t.replace("{,}", ",")
    t = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", t).strip()
    units = re.search(r"(?<=[\d\s])\s*([A-Za-z]{2,}\.?(?:\s+[A-Za-z]{2,}\.?)*)\s*(?:\^\s*\{?\d\}?)?$", t)
    if units and not set(units.group(1).lower().replace(".", "").split()) & _NOT_UNITS:
        t = t[:units.start()].strip()
    t = re.sub(r"^([+-])\s+", r"\1", t.strip())
    if re.fullmatch(r"[+-]?\d{1,3}(?:(?:,|\s+)\d{3})+(?:\.0+)?", t):
        t = re.sub(r"[,\s]", "", t)  # thousands separators only: "1,2" stays a pair, "1 2" two numbers
    t = re.sub(r"(?<=\d)\.0+$", "", t)
    if not re.fullmatch(r"[+-]?\d+", t):
        return None
    try:
        return int(t)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits): not an integer we compare
        return None


def _squash(answer: str) -> str:
    text = re.sub(r"\s+", " ", answer.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac"))
    return re.sub(r" (?=[^A-Za-z0-9])|(?<=[^A-Za-z0-9]) ", "", text)  # keep "1 2" apart, drop the rest


# --- math-verify, in a process pool ---------------------------------------------------------

def _worker_init(caller_alive: Connection) -> None:
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeouts disabled" is on purpose
    threading.Thread(target=_exit_with_caller, args=(caller_alive,), name="grader-orphan-watch", daemon=True).start()
    import math_verify  # noqa: F401  (import now, not inside a caller's timeout)


def _exit_with_caller(caller_alive: Connection) -> None:
    """End this worker once the process that grades is gone (SIGKILLed: no shutdown reached us).

    An orphaned worker would wait forever on its task queue while holding the caller's stdout and
    stderr open, so a script reading them (``subprocess.run(..., capture_output=True)``) would hang.
    Only the caller holds the pipe's sending end: the read ends with EOF when the caller dies. (Its
    parent, the forkserver, outlives the caller for as long as any worker lives, so watching the
    parent pid would wait forever.)
    """
    with contextlib.suppress(EOFError, OSError):
        caller_alive.recv()  # nothing is ever sent
    os._exit(0)


def _worker_ping() -> None:
    time.sleep(0.05)  # hold this worker briefly so the other pings reach the other workers


def _worker_verify(gold: str, answer: str) -> tuple[bool, str]:
    from math_verify import parse, verify

    # math-verify finds LaTeX only inside $...$ or \boxed{}; a raw gold string can fail to parse.
    gold_parsed = parse("\\boxed{" + gold + "}", parsing_timeout=None)
    answer_parsed = parse("\\boxed{" + answer + "}", parsing_timeout=None)
    if not gold_parsed or not answer_parsed:
        return False, "unparsable"
    if verify(gold_parsed, answer_parsed, timeout_seconds=None):
        return True, "math-verify equivalent"
    return False, "math-verify not equivalent"


_WORKERS = max(1, min(4, os.cpu_count() or 1))
_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_caller_alive: tuple[Connection, Connection] | None = None  # (read end for workers, end kept here)


def _new_pool() -> ProcessPoolExecutor:
    methods = multiprocessing.get_all_start_methods()
    # fork is unsafe in a threaded parent (DSPy workers); forkserver forks from a clean server.
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["math_verify"])  # forked workers start with it imported
    global _caller_alive
    if _caller_alive is None:  # one pipe for this process's lifetime; its sending end is never passed on
        _caller_alive = ctx.Pipe(duplex=False)
        # A multiprocessing child (a search worker, say) never runs atexit: it runs finalizers, then
        # joins its child processes, which would wait for these workers forever. Stop them first.
        multiprocessing.util.Finalize(None, shutdown_grader, exitpriority=100)
    pool = ProcessPoolExecutor(max_workers=_WORKERS, mp_context=ctx, initializer=_worker_init,
                               initargs=(_caller_alive[0],))
    try:
        for future in [pool.submit(_worker_ping) for _ in range(_WORKERS)]:
            future.result(timeout=120)  # start-up must not count against any caller's timeout
    except BrokenProcessPool as exc:
        pool.shutdown(wait=False, cancel_futures=True)
        raise RuntimeError("grading worker processes failed to start; a script that grades must keep its "
                           'top-level code under `if __name__ == "__main__":`') from exc
    return pool


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = _new_pool()
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    """Kill ``pool``'s workers (one may be stuck) and make the next call start a fresh pool."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    processes = getattr(pool, "_processes", None) or {}  # None once the pool has shut down
    for process in list(processes.values()):
        with contextlib.suppress(OSError, ValueError):  # already gone or closed
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def shutdown_grader() -> None:
    """Stop the grading worker processes (they restart on the next call)."""
    pool = _pool
    if pool is not None:
        _discard(pool)


atexit.register(shutdown_grader)


def _verify_in_pool(gold: str, answer: str, timeout: float) -> tuple[bool, str]:
    for _attempt in range(3):  # another thread's timeout may kill the pool under us: retry
        pool = _get_pool()
        try:
            return pool.submit(_worker_verify, gold, answer).result(timeout=timeout)
        except FutureTimeout:
            _discard(pool)
            return False, "timeout"
        except (BrokenProcessPool, CancelledError, RuntimeError):
            _discard(pool)  # killed or shut down by another thread's timeout: use a fresh pool
    return False, "grader pool failed"


# --- public grading API -----------------------------------------------------------------------

def grade_answer(gold: str, answer: str, *, timeout: float = 5.0) -> Grade:
    r"""Judge an already extracted ``answer`` against ``gold``.

    >>> grade_answer("1000", "$1,000").correct
    True
    >>> grade_answer(r"\frac{1}{2}", "0.5").reason
    'math-verify equivalent'
    """
    gold, answer = str(gold).strip(), str(answer).strip()
    if not answer:
        return Grade(None, False, "no answer")
    gold_int, answer_int = _as_integer(gold), _as_integer(answer)
    if gold_int is not None and answer_int is not None:
        same = gold_int == answer_int
        return Grade(answer, same, "integer match" if same else "integer mismatch")
    if _squash(gold) == _squash(answer):
        return Grade(answer, True, "string match")
    correct, reason = _verify_in_pool(gold, answer, timeout)
    return Grade(answer, correct, reason)


def grade(gold: str, output_text: str, *, timeout: float = 5.0) -> Grade:
    r"""Extract the final answer from a full model output and judge it.

    >>> grade("18", r"She makes $18 a day. \boxed{\$18}")
    Grade(extracted='\\$18', correct=True, reason='integer match')
    """
    extracted = extract_answer(output_text)
    if extracted is None:
        return Grade(None, False, "no answer")
    return grade_answer(gold, extracted, timeout=timeout)


def metric(example: Any, prediction: Any, trace: Any = None) -> bool:
    """DSPy metric: ``prediction.answer`` (a bare answer or a full output) vs ``example.answer``.

    >>> from types import SimpleNamespace as NS
    >>> metric(NS(answer="72"), NS(answer="72"))
    True
    """
    text = getattr(prediction, "answer", prediction)
    text = "" if text is None else str(text)
    answer = extract_answer(text)
    visible = strip_thinking(text)
    if answer is None and visible is not None:
        short = visible.strip()
        # a DSPy output field usually holds the bare answer; long text without a cue is no answer
        if short and "\n" not in short and len(short) <= 200:
            answer = short
    if answer is None:
        return False
    return grade_answer(str(example.answer), answer).correct


def grader_version() -> str:
    """Versions that decide a grade; record with every result.

    >>> grader_version().startswith("math-verify ")
    True
    """
    return f"math-verify {importlib.metadata.version('math-verify')}; scale grading {GRADING_VERSION}"
