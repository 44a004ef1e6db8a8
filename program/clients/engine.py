"""DSPy engines: how a ``dspy.LM`` of ours turns one request into one server reply.

DSPy 3.4's engine contract is ``complete(Request) -> Response``. Our engines send the request
through ``program.clients.transport`` (retries, usage-keeping cache, ledger) and return the visible answer
as a text part and the thinking as a thinking part, with the server's usage numbers.

- ``ChatEngine``: a chat call, with the mode's thinking switch (``enable_thinking`` as the server
  kind and the mode say, ``program.clients.servers.thinking_switch``, or provider reasoning effort).
  A thinking reply cut off inside its thinking is never an answer: on vLLM, SGLang or llama.cpp's
  server, with a forcing template, the answer is forced as budget forcing does (end of thinking +
  "Final Answer:" through /v1/completions); elsewhere the reply has no answer and the ledger notes
  "cut off in thinking".
- ``program.clients.budget_forcing.ForcedEngine``: s1 budget-forced thinking over text continuation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dspy
from dspy.lm15 import Message, Response, TextPart, ThinkingPart, TokenLogprob, TopLogprob, Usage

from program.clients import cutoff, servers, transport
from program.config import Endpoint, ForcingConfig, ModeConfig

__all__ = ["ChatEngine", "lm_from_engine", "request_messages", "to_response"]


def lm_from_engine(engine: object, name: str, *, temperature: float | None = None,
                   max_tokens: int | None = None) -> dspy.LM:
    """Wrap an engine (anything with ``complete(Request) -> Response``) as a ``dspy.LM`` named ``scale/<name>``.

    It lives here, below both ``program.clients.lm`` and ``program.clients.budget_forcing``, so neither imports
    the other.
    """
    return dspy.LM(f"scale/{name}", engine=engine, cache=False, num_retries=0,
                   temperature=temperature, max_tokens=max_tokens)


def request_messages(request: Any) -> list[dict[str, str]]:
    """OpenAI-style messages from a ``dspy.lm15.Request`` (system first, text parts joined)."""
    messages: list[dict[str, str]] = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
        messages.append({"role": "system", "content": system})
    for message in request.messages:
        role = "user" if message.role == "developer" else message.role
        messages.append({"role": role, "content": message.text or ""})
    return messages


def to_response(model: str, completion: transport.Completion) -> Response:
    """A ``dspy.lm15.Response`` carrying the answer, the thinking and the usage of ``completion``."""
    parts: list[Any] = [TextPart(completion.text)]
    if completion.thinking:
        parts.insert(0, ThinkingPart(completion.thinking))
    finish = completion.finish_reason if completion.finish_reason in ("stop", "length") else "stop"
    usage = Usage(input_tokens=completion.prompt_tokens, output_tokens=completion.completion_tokens,
                  reasoning_tokens=completion.thinking_tokens if completion.thinking else None)
    logprobs = None
    if completion.logprobs is not None:  # DSPy hands these to the prediction as ``.logprobs``
        logprobs = tuple(TokenLogprob(t["token"], t["logprob"], top=tuple(TopLogprob(tok, lp) for tok, lp in t["top"]))
                         for t in completion.logprobs)
    return Response(id=None, model=model, message=Message.assistant(parts), finish_reason=finish, usage=usage,
                    logprobs=logprobs)


@dataclass
class ChatEngine:
    """One mode of one endpoint over chat completions.

    Sampling values come from the request (DSPy fills them from the LM's defaults, which
    ``program.clients.lm.build_lm`` sets from the mode), so per-call overrides such as a seed work.
    """

    endpoint: Endpoint
    mode: ModeConfig
    forcing: ForcingConfig | None = None  # the template that forces an answer after cut-off thinking

    def complete(self, request: Any) -> Response:
        config = request.config
        extra: dict[str, Any] = {}
        kind = servers.server_kind(self.endpoint)
        switch = servers.thinking_switch(kind, self.mode.thinking)
        if switch is not None:
            extra["chat_template_kwargs"] = {"enable_thinking": switch}
        messages = request_messages(request)
        thinks = self.mode.thinking in ("qwen3", "always")
        completion = transport.chat(
            self.endpoint, messages,
            max_tokens=config.max_tokens or self.mode.max_tokens,
            temperature=config.temperature if config.temperature is not None else self.mode.temperature,
            top_p=config.top_p if config.top_p is not None else self.mode.top_p,
            top_k=config.top_k if config.top_k is not None else self.mode.top_k,
            seed=config.seed, stop=list(config.stop) or None, extra_body=extra or None,
            reasoning_effort=self.mode.reasoning_effort if self.mode.thinking == "effort" else None,
            logprobs=config.logprobs, thinks=thinks,
        )
        if completion.note == transport.CUT_OFF and kind in servers.SELF_HOSTED and self.forcing is not None:
            completion = cutoff.force_answer(self.endpoint, self.mode, self.forcing, messages, completion,
                                             seed=config.seed)
        return to_response(request.model, completion)

    def stream(self, request: Any) -> Any:
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass

