"""Concurrent, resumable evaluation of a program on benchmark problems.

Why not ``dspy.Evaluate``: it re-submits items still running after 120 s, which duplicates slow
System 2 calls, and it cannot resume. Here a plain thread pool runs each problem exactly once:

- every problem runs in its own token ledger (``program.ledger.recording``) and in a copy of the
  caller's context (so a caller's ``dspy.context(...)`` reaches the workers);
- each graded problem is appended at once to ``results.jsonl`` (``optimize.evaluation.results``), so an
  interrupted run loses nothing finished and a rerun skips what is done (same config
  fingerprint); failed problems are retried by a rerun;
- a problem whose calls fail is recorded with the reason and the run goes on, but
  ``max_server_errors`` server errors in a row stop it (the server is down; retrying every
  remaining problem would only burn time), and so does a run whose every problem failed with a
  server error, however few it had (``ServerDownError.reached`` is False: never reached).

Example:
    >>> import tempfile
    >>> report = evaluate(program, examples, results_path=f"{tempfile.mkdtemp()}/results.jsonl",
    ...                   config=program_config, workers=4)  # doctest: +SKIP
    >>> report.summary.accuracy  # doctest: +SKIP
    0.75
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy

from optimize.errors import ServerDownError
from optimize.evaluation.results import ProblemResult, ResultsFile, config_fingerprint, latest_by_id, legacy_fingerprint
from optimize.evaluation.summary import Summary, summarize, write_summary
from program.clients import transport
from program.config import ConfigError
from program.errors import ServerError
from program.ledger import Ledger, recording

if TYPE_CHECKING:
    from program.config import ProgramConfig

__all__ = ["EvalReport", "ServerDownError", "evaluate", "build_program", "solve_one"]

log = logging.getLogger(__name__)

ProgramFactory = Callable[[], Any]


@dataclass(frozen=True)
class EvalReport:
    """The outcome of ``evaluate``: one result per requested problem, and their summary.

    ``n_new`` problems ran now, ``n_resumed`` were already in the results file.
    """

    results_path: Path
    summary_path: Path
    results: list[ProblemResult]
    summary: Summary
    n_new: int
    n_resumed: int
    fingerprint: str


def build_program(config: ProgramConfig) -> Any:
    """The runnable program of ``config`` (``program.methods.build_program``).

    A module-level function so that commands and tests have one place to swap the program.
    """
    from program.methods import build_program as build

    return build(config)


def evaluate(program: Any, examples: Sequence[dspy.Example], *, results_path: str | Path,
             config: ProgramConfig | None = None, fingerprint: str | None = None,
             accept: Collection[str] = (), workers: int = 1,
             progress: bool = True, max_server_errors: int = 3, retry_failed: bool = True,
             context: dict[str, Any] | None = None, description: str = "eval", sample: int = 0) -> EvalReport:
    """Run ``program`` on ``examples``, appending one graded line per problem to ``results_path``.

    Args:
        program: a program (``dspy.Module`` or anything with ``forward``), shared by the workers,
            or a zero-argument factory, called once per worker thread (for programs that keep
            per-call state).
        examples: ``dspy.Example``s with ``id``, ``problem``, ``answer`` (and ``benchmark``).
        config: the program's config; its fingerprint marks the results for resuming.
        fingerprint: given directly instead of ``config``.
        accept: older fingerprints of the same program (``legacy_fingerprint``): their lines resume
            too, and are appended once more under ``fingerprint`` so the file speaks one name. With
            ``config`` (and no ``fingerprint``) its legacy fingerprint is accepted.
        workers: problems run at once.
        max_server_errors: stop after this many problems in a row failed with ``ServerError``.
        retry_failed: rerun problems whose stored result is a failure.
        context: settings for ``dspy.context`` around each problem (e.g. ``{"lm": lm}``).
        sample: the repeated sample this run is (``program.clients.transport.sample``): k > 0 shifts every
            seed and cache key, so it is a new draw; 0 is the default sample.

    Raises:
        ServerDownError: after ``max_server_errors`` server failures in a row, or when every problem
            run now failed with a server error (``reached`` False when none was answered).
    """
    if workers < 1:
        raise ValueError(f"`workers={workers!r}` must be at least 1.")
    if max_server_errors < 1:
        raise ValueError(f"`max_server_errors={max_server_errors!r}` must be at least 1.")
    _check_ids(examples)
    if fingerprint is None:
        fingerprint = config_fingerprint(config) if config is not None else "unspecified"
        accept = (*accept, legacy_fingerprint(config)) if config is not None else accept
    started = time.monotonic()
    store = ResultsFile(results_path)
    stored = store.read()
    accepted = {fingerprint, *accept}
    previous = latest_by_id(stored, accepted)
    others = {r.id for r in stored if r.fingerprint not in accepted}
    if others:
        log.warning("%s holds results of %d problem(s) from another config; they are kept but not reused "
                    "(use another output directory to keep runs apart)", results_path, len(others))
    ids = [str(ex.id) for ex in examples]  # results store ids as text; an integer id must match too
    finished = {i: previous[i] for i in ids if i in previous and not (retry_failed and previous[i].failed)}
    todo = [ex for ex, i in zip(examples, ids, strict=True) if i not in finished]
    n_resumed = len(finished)
    _map_once(store, finished, fingerprint)

    if todo:  # start the grader's worker processes now, beside the first LLM calls, not after them
        threading.Thread(target=_warm_grader, name="scale-eval-grader-warmup", daemon=True).start()
    get_program = _program_source(program)
    solve = _Solver(get_program, store, fingerprint, context or {}, sample)
    bar = _progress(len(examples), n_resumed, description, enabled=progress)
    try:
        _run_all(solve, todo, finished, workers=workers, max_server_errors=max_server_errors, bar=bar,
                 results_path=Path(results_path))
    finally:
        bar.close()

    _check_reached([finished[str(ex.id)] for ex in todo if str(ex.id) in finished], Path(results_path))
    results = [finished[i] for i in ids if i in finished]
    from data.grading import grader_version

    summary = summarize(results, run_seconds=time.monotonic() - started, grader_version=grader_version(),
                        n_resumed=n_resumed)
    summary_path = write_summary(summary, Path(results_path).with_name("summary.json"))
    return EvalReport(results_path=Path(results_path), summary_path=summary_path, results=results, summary=summary,
                      n_new=len(results) - n_resumed, n_resumed=n_resumed, fingerprint=fingerprint)


def _map_once(store: ResultsFile, finished: dict[str, ProblemResult], fingerprint: str) -> None:
    """Reused lines recorded under an older fingerprint are appended again under ``fingerprint``
    (the latest line wins), so a later reader, ``load_results`` included, sees one config."""
    older = [result for result in finished.values() if result.fingerprint != fingerprint]
    for result in older:
        result.fingerprint = fingerprint
        store.append(result)
    if older:
        log.info("%s: %d result(s) recorded under an older fingerprint resumed and re-marked %s",
                 store.path, len(older), fingerprint)


def _run_all(solve: _Solver, todo: list[dspy.Example], finished: dict[str, ProblemResult], *, workers: int,
             max_server_errors: int, bar: Any, results_path: Path) -> None:
    """Run ``todo`` on a thread pool, collecting into ``finished``; stop when the server is down.

    At most ``workers`` problems are in flight: a new one starts only when one is collected, so
    after an interrupt or a stop no further problem is begun.
    """
    queue = iter(todo)
    pending: set[Future[ProblemResult]] = set()
    in_a_row, last_error, answered = 0, "", 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scale-eval")
    try:
        while True:
            while len(pending) < workers and (example := next(queue, None)) is not None:
                # Each task runs in its own copy of the caller's context: dspy.context settings made
                # by the caller reach the workers, and one task's ledger never leaks into another's.
                pending.add(pool.submit(contextvars.copy_context().run, solve, example))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()  # re-raises KeyboardInterrupt & co. from a worker
                finished[result.id] = result
                in_a_row = in_a_row + 1 if result.error_type == "ServerError" else 0
                answered += 0 if result.failed else 1
                last_error = result.error or last_error
                bar.update(1)
                bar.set_postfix(_postfix(finished.values()), refresh=False)
            if in_a_row >= max_server_errors:
                if not answered:
                    raise _never_reached(in_a_row, last_error, results_path)
                saved = sum(1 for r in finished.values() if not r.failed)
                raise ServerDownError(
                    f"Stopped: {in_a_row} problems in a row failed with server errors (last: {last_error}). "
                    f"The {saved} finished problems are saved in {results_path}; "
                    "once the server is back, run the same command again to resume.")
    finally:
        # Problems still running finish and are saved by their worker; none is started any more.
        pool.shutdown(wait=False, cancel_futures=True)


def _check_reached(ran: list[ProblemResult], results_path: Path) -> None:
    """Raise ``ServerDownError`` when every problem run now failed with a server error (a run of
    fewer problems than ``max_server_errors`` never meets the in-a-row rule)."""
    if ran and all(r.error_type == "ServerError" for r in ran):
        raise _never_reached(len(ran), ran[-1].error or "", results_path)


def _never_reached(failed: int, last_error: str, results_path: Path) -> ServerDownError:
    """One line: how many failed, the server's own message (its URL, the curl that checks it)."""
    detail = " ".join(last_error.removeprefix("ServerError: ").split())
    count = (f"{failed} problems in a row failed with server errors" if failed > 1
             else "1 problem failed with a server error")
    return ServerDownError(f"Stopped: the LLM server was never reached ({count}; none was answered). {detail} "
                           f"The failures are recorded in {results_path}; once the server answers, run the same "
                           "command again.", reached=False)


class _Solver:
    """Runs one problem: program call in a fresh ledger, grading, one durable results line."""

    def __init__(self, get_program: ProgramFactory, store: ResultsFile, fingerprint: str,
                 context: dict[str, Any], sample: int = 0) -> None:
        from data.grading import grader_version

        self.get_program, self.store, self.fingerprint, self.context = get_program, store, fingerprint, context
        self.sample = sample
        self.grader_version = grader_version()

    def __call__(self, example: dspy.Example) -> ProblemResult:
        with transport.sample(self.sample):  # set in the worker's own thread: context variables stay per thread
            result = solve_one(self.get_program(), example, context=self.context)
        result.fingerprint, result.grader_version = self.fingerprint, self.grader_version
        self.store.append(result)
        return result


def solve_one(program: Any, example: dspy.Example, *, context: dict[str, Any] | None = None) -> ProblemResult:
    """Run and grade one problem (no file written): the unit ``evaluate`` runs in each worker.

    Any exception from the program becomes a failed result with ``error = "Type: message"`` (a
    ``ServerError`` that DSPy wrapped is recorded as itself); a ``ConfigError`` (a missing API-key
    variable, say) is raised instead, as are ``KeyboardInterrupt`` and ``SystemExit``.
    """
    ledger = Ledger()
    started = time.monotonic()
    prediction, error = None, None
    with recording(ledger), dspy.context(**(context or {})):
        try:
            prediction = program(problem=example.problem)
        except Exception as exc:  # a failed problem is recorded; the run decides whether to go on
            error = _unwrap(exc)
            if isinstance(error, ConfigError):  # the user's to fix, the same for every problem: stop now
                raise error from exc
    wall = time.monotonic() - started
    gold = str(example.answer)
    result = ProblemResult(
        id=str(example.id), benchmark=str(example.get("benchmark", "") or ""), problem=str(example.problem), gold=gold,
        calls=ledger.to_records(), stages=ledger.by_stage(), totals=ledger.totals(),
        spent=ledger.totals(spent_only=True), wall_seconds=round(wall, 3),
        llm_seconds=ledger.totals()["seconds"], finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    if error is not None:
        result.error_type = "ServerError" if isinstance(error, ServerError) else type(error).__name__
        result.error, result.reason = f"{type(error).__name__}: {error}", "error"
        return result
    result.answer = _text(getattr(prediction, "answer", prediction))
    result.solution = _text(getattr(prediction, "solution", ""))
    trace = getattr(prediction, "trace", None)
    result.trace = trace if isinstance(trace, dict) else {}
    grade = _grade(gold, result.answer, result.solution)
    result.extracted, result.correct, result.reason = grade.extracted, grade.correct, grade.reason
    return result


def _warm_grader() -> None:
    """Start math-verify's process pool (seconds on a small machine) while the first problems run.

    Otherwise the first wave of N finished problems would all wait for it at once, and the server
    would sit idle meanwhile (measured: 4 of 32 slots busy for a second).
    """
    from data.grading import grade

    try:
        grade("1/2", "\\boxed{0.5}")  # not an integer pair: reaches the worker processes
    except Exception as exc:  # a grading problem shows up, with its reason, on the first real problem
        log.debug("grader warm-up failed: %s", exc)


def _unwrap(error: Exception) -> Exception:
    """The error an LM engine raised: DSPy wraps it (``LMUnexpectedError`` caused by our ``ServerError``)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, (ServerError, ConfigError)):
            return cause
        cause = cause.__cause__
    return error


def _grade(gold: str, answer: str, solution: str) -> Any:
    r"""Grade the answer field; a bare answer ("42") counts as is; else fall back to the solution text."""
    from data.grading import extract_answer, grade, grade_answer, strip_thinking

    if extract_answer(answer) is not None:
        return grade(gold, answer)
    visible = (strip_thinking(answer) or "").strip()
    # DSPy output fields usually hold the bare answer; a long text without a cue holds none
    if visible and "\n" not in visible and len(visible) <= 200:
        return grade_answer(gold, visible)
    return grade(gold, solution)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _check_ids(examples: Sequence[dspy.Example]) -> None:
    seen: set[str] = set()
    for index, example in enumerate(examples):
        problem_id = example.get("id") if hasattr(example, "get") else getattr(example, "id", None)
        if problem_id is None or str(problem_id) == "":
            raise ValueError(f"examples[{index}] has no `id`; results are keyed by problem id, so every "
                             "example needs one (data.loading.load_benchmark provides it).")
        if str(problem_id) in seen:
            raise ValueError(f"examples[{index}]: duplicate id {problem_id!r}; ids must be unique to resume safely.")
        seen.add(str(problem_id))


def _program_source(program: Any) -> ProgramFactory:
    """A getter for the program a worker uses: the shared one, or one per thread from a factory."""
    if isinstance(program, dspy.Module) or hasattr(program, "forward"):
        return lambda: program
    if not callable(program):
        raise TypeError(f"`program={program!r}` must be a program (with `forward`) or a factory returning one.")
    program()  # build one now, in the caller's thread, so a config error fails the run at once
    local = threading.local()

    def get() -> Any:
        if not hasattr(local, "program"):
            local.program = program()
        return local.program

    return get


def _postfix(results: Any) -> dict[str, str]:
    rows = list(results)
    correct = sum(1 for r in rows if r.correct)
    failed = sum(1 for r in rows if r.failed)
    answered = len(rows) - failed  # a failed problem has no answer: it is not counted as a wrong one here
    postfix = {"acc": f"{correct / answered:.1%}" if answered else "-"}
    if failed:
        postfix["failed"] = str(failed)
    return postfix


def _progress(total: int, initial: int, description: str, *, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=description, unit="problem", disable=not enabled,
                dynamic_ncols=True)
