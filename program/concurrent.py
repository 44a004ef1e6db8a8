"""Run the independent calls of one problem at once, with results, ledger and DSPy trace in index order.

``run_all(thunks, limit)`` runs each thunk (a call with no arguments) on up to ``limit`` threads
and returns their results in the order given. What a thunk sees and leaves behind is what it
would have seen and left running alone, in order:

- **Context.** Each thunk runs in a copy of the caller's ``contextvars`` context
  (``contextvars.copy_context().run``): DSPy's ``dspy.context`` overrides (the bound LM, the
  adapter: DSPy 3.4 keeps them in the context variable ``thread_local_overrides``), our ledger
  and stage (``program.ledger``), the repeated-sample index (``program.clients.transport``).
- **Ledger.** Each thunk records into its own ledger; after all are done they are appended to
  the caller's ledger in index order, so the ledger is the one a sequential run makes.
- **DSPy trace.** Likewise each thunk gets its own trace list (when the caller has one, as an
  optimizer's bootstrapping does), appended to the caller's in index order.
- **Errors.** The first thunk (by index) that raised raises here, after every thunk has ended.

With ``limit`` 1 (or a single thunk) the thunks run in the caller's thread, one after another:
exactly what the code did before concurrency. The limit per server is enforced where requests
are sent (``program.clients.limits``); ``limit`` only avoids threads that would wait there.

DSPy's own ``dspy.Parallel`` / ``ParallelExecutor`` is not used: it turns a failed item into
None after logging it, and resubmits items that run past its straggler timeout, which would send
(and book) the same request twice.

Example:
    >>> run_all([lambda: 1, lambda: 2, lambda: 3], limit=2)
    [1, 2, 3]
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import dspy

from program import ledger

__all__ = ["run_all"]

T = TypeVar("T")


def run_all(thunks: Sequence[Callable[[], T]], limit: int) -> list[T]:
    """Each thunk's result, in order; up to ``limit`` run at once. See the module docstring."""
    if limit < 1:
        raise ValueError(f"`limit={limit}` must be at least 1.")
    if limit == 1 or len(thunks) <= 1:
        return [thunk() for thunk in thunks]
    outer_ledger, outer_trace = ledger.current_ledger(), dspy.settings.trace
    ledgers = [ledger.Ledger() for _ in thunks]
    traces: list[list[object]] = [[] for _ in thunks]

    def isolated(i: int) -> T:
        with ledger.recording(ledgers[i]):
            if outer_trace is None:
                return thunks[i]()
            with dspy.context(trace=traces[i]):
                return thunks[i]()

    with ThreadPoolExecutor(max_workers=min(limit, len(thunks)), thread_name_prefix="scale-call") as pool:
        futures = [pool.submit(contextvars.copy_context().run, isolated, i) for i in range(len(thunks))]
        outcomes: list[tuple[T | None, BaseException | None]] = []
        for future in futures:
            error = future.exception()
            outcomes.append((None if error is not None else future.result(), error))
    for i in range(len(thunks)):
        if outer_ledger is not None:
            outer_ledger.extend(ledgers[i])
        if outer_trace is not None:
            outer_trace.extend(traces[i])
    for _, error in outcomes:
        if error is not None:
            raise error
    return [result for result, _ in outcomes]  # type: ignore[misc]
