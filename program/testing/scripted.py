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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from program import ledger
from program.clients.engine import request_messages, to_response
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
    """An engine that answers with ``responder(messages)``; keeps every request it saw."""

    responder: Responder
    name: str = "function"
    requests: list[list[dict[str, str]]] = field(default_factory=list)
    configs: list[Any] = field(default_factory=list)

    def complete(self, request: Any) -> Any:
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


def function_lm(responder: Responder, name: str = "function", **defaults: Any) -> Any:
    """A ``dspy.LM`` driven by ``responder``; its engine is at ``lm.engine``."""
    return lm_from_engine(FunctionEngine(responder, name), name, **defaults)


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
