"""Scripted LMs: `function_lm` and `scripted_systems` answer each request with a function you write.

``FunctionEngine`` answers each request with a function you write, so a test can say "difficulty
0.8 for step 2" or "thinking of exactly N tokens". It records usage into the ledger like the real
transport does (one token per whitespace-separated word), so token accounting is testable.

Example:
    >>> import dspy
    >>> from program.testing import function_lm
    >>> lm = function_lm(lambda messages: "[[ ## answer ## ]]\\n4\\n\\n[[ ## completed ## ]]")
    >>> with dspy.context(lm=lm):
    ...     dspy.Predict("question -> answer")(question="2+2?").answer
    '4'
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from program import ledger
from program.clients.engine import request_messages, to_response
from program.clients.limits import Limiter
from program.clients.lm import Systems, lm_from_engine
from program.clients.transport import Completion

__all__ = ["FunctionEngine", "function_lm", "scripted_systems", "count_tokens", "chat_fields"]

Responder = Callable[[list[dict[str, str]]], "str | Completion"]


def count_tokens(text: str) -> int:
    """The doubles' tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def chat_fields(**fields: Any) -> str:
    """A reply in DSPy's ChatAdapter format: ``[[ ## name ## ]]`` blocks, then ``completed``."""
    blocks = [f"[[ ## {name} ## ]]\n{value}" for name, value in fields.items()]
    return "\n\n".join([*blocks, "[[ ## completed ## ]]"])


@dataclass
class FunctionEngine:
    """An engine that answers with ``responder(messages)``; keeps every request it saw.

    ``max_concurrency`` > 1 makes it a server with that many slots (``limiter``, as
    ``program.clients.limits`` gives a real endpoint), so the calls of one problem run at once;
    ``peak_in_flight`` is the most it answered at the same time.
    """

    responder: Responder
    name: str = "function"
    requests: list[list[dict[str, str]]] = field(default_factory=list)
    configs: list[Any] = field(default_factory=list)
    max_concurrency: int = 1
    peak_in_flight: int = 0

    def __post_init__(self) -> None:
        self.limiter = Limiter(self.max_concurrency) if self.max_concurrency > 1 else None
        self._lock = threading.Lock()
        self._in_flight = 0

    def __getstate__(self) -> dict[str, Any]:  # MLflow pickles a program with its LMs: locks cannot travel
        return {k: v for k, v in self.__dict__.items() if k not in ("limiter", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def complete(self, request: Any) -> Any:
        if self.limiter is None:
            return self._answer(request)
        with self.limiter.slot(), self._counted():
            return self._answer(request)

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, request: Any) -> Any:
        messages = request_messages(request)
        self.requests.append(messages)
        self.configs.append(request.config)
        reply = self.responder(messages)
        if isinstance(reply, str):
            reply = Completion(text=reply, prompt_tokens=sum(count_tokens(m["content"]) for m in messages),
                               completion_tokens=count_tokens(reply))
        ledger.record(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                      thinking_tokens=reply.thinking_tokens, model=f"scale/{self.name}", cached=reply.cached)
        return to_response(request.model, reply)

    def stream(self, request: Any) -> Any:
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass


def function_lm(responder: Responder, name: str = "function", *, max_concurrency: int = 1, **defaults: Any) -> Any:
    """A ``dspy.LM`` driven by ``responder``; its engine is at ``lm.engine``."""
    return lm_from_engine(FunctionEngine(responder, name, max_concurrency=max_concurrency), name, **defaults)


def scripted_systems(stages: Responder, system1: Responder, system2: Responder | None = None) -> Systems:
    """Three function-driven LMs (System 2 defaults to the System 1 responder)."""
    return Systems(stages=function_lm(stages, "stages"), system1=function_lm(system1, "system1"),
                   system2=function_lm(system2 or system1, "system2"))


def replies(*answers: str | Completion) -> Responder:
    """A responder that returns ``answers`` in order, then fails loudly when they run out."""
    queue: Iterable[str | Completion] = iter(answers)

    def responder(messages: list[dict[str, str]]) -> str | Completion:
        try:
            return next(queue)  # type: ignore[call-overload]
        except StopIteration:
            raise AssertionError(f"scripted replies ran out; last request: {messages[-1]['content'][:200]!r}") from None

    return responder
