"""s1 budget forcing (Muennighoff et al., 2025, arXiv 2501.19393), over text continuation.

The model thinks inside ``<think> ... </think>``; we decide when thinking ends:

1. **Think.** The prompt is the conversation (rendered client-side) plus an opened thinking
   section. Generate with ``max_tokens`` = the thinking budget left, stopping at the end-of-thinking
   marker (and end-of-turn strings).
2. **Minimum ("Wait").** If the model ends thinking early and fewer than ``forcing.num_waits``
   continuations were made, drop the marker, append ``"Wait"`` and continue with the budget that is
   left (budget minus every thinking token generated so far). Exactly N continuations when the model
   keeps stopping early; never more.
   Each segment after a "Wait" asks for ``min_tokens`` = ``forcing.min_tokens_after_wait`` (s1's
   README), so the model cannot close thinking again at once.
3. **Maximum.** If the budget ran out (finish reason ``length``, or the tokens used reached the cap),
   append the marker and ``"Final Answer:"``; if thinking ended by itself, append only the marker and
   a newline. Then generate the answer with ``max_tokens`` = ``forcing.answer_max_tokens`` (None:
   ``mode.max_tokens``).
4. **Empty answer.** If thinking ended by itself and the answer is empty, append ``"Final Answer:"``
   and continue exactly once more (``forcing.force_empty_answer``).

**What is graded** (as s1's harness): the answer text INCLUDING the forced ``"Final Answer:"``, so a
bare "42" written after the cue counts. ``ForcedResult.graded`` is that text; the engine returns it.

Control is 100% by construction: every thinking call asks for at most the budget left, so the
server-reported thinking tokens sum to at most ``mode.thinking_budget``; at 0 left no thinking call
is made. TEXT is re-fed each time, never token ids (re-feeding ids broke on newer vLLM).

Two transports (``forcing.transport``):

- ``completions`` (default): /v1/completions with the chat template applied here
  (``program.clients.templates``); the prompt is ``render(messages) + "<think>\\n" + thinking so far``.
- ``prefill``: chat completions whose last message is the partial assistant text, continued by the
  server (vLLM/SGLang ``continue_final_message``). The server applies the model's own template.

Every server call is recorded in the ledger by ``program.clients.transport`` under the active stage, as
thinking (thinking segments) or answer tokens; this module records nothing itself.

Not handled here:

- Provider reasoning models (o-series, Claude, Gemini) only take a cap ("reasoning effort" or a
  thinking budget) and cannot be continued with "Wait": that is ``ModeConfig(thinking="effort")``,
  served by ``program.clients.engine.ChatEngine``.
- A prompt that alone fills the context window (``program.clients.context.ContextWindowError``). A window
  that the thinking fills ends thinking like the budget, with room kept for the answer.
- A ``prefill`` server whose reasoning parser moves continued text into ``reasoning_content``:
  the text is used wherever it arrives, but the ledger may split answer tokens as thinking.
- Re-tokenisation: re-fed text may tokenise differently from what was generated. The budget
  counts generated tokens only, as the server reports them.

Example:
    >>> from program.presets import preset
    >>> config = preset("local")
    >>> result = force_budget(config.endpoint, config.system2, config.forcing,
    ...                       [{"role": "user", "content": "What is 17 * 3?"}])  # doctest: +SKIP
    >>> result.thinking_tokens <= config.system2.thinking_budget  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from program.clients import context, servers, transport
from program.clients.engine import lm_from_engine, request_messages, to_response
from program.clients.templates import ChatTemplate, get_template
from program.config import ConfigError, Endpoint, ForcingConfig, LMConfig, ModeConfig

__all__ = ["Step", "ForcedResult", "force_budget", "ForcedEngine", "forced_lm", "check_transport"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One server call of a forced run, as the server reported it."""

    phase: Literal["thinking", "answer"]
    max_tokens: int
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass(frozen=True)
class ForcedResult:
    """The outcome of ``force_budget``.

    ``thinking`` is the thinking section as re-fed (model text plus our "Wait" strings, without the
    delimiters); ``answer`` is the text the model wrote after it, unchanged; ``cue`` the forced
    "Final Answer:" it was written after ("" when none was forced). Token counts are the server's;
    ``prompt_tokens`` sums over all calls. ``hit_cap``: thinking was cut by the budget.
    ``forced_empty``: the answer after a natural end was empty, so the cue was appended and the
    model continued once more. ``answer_max_tokens``: the cap the answer was generated under.
    """

    thinking: str
    answer: str
    thinking_tokens: int
    answer_tokens: int
    prompt_tokens: int
    num_continuations: int
    hit_cap: bool
    calls: tuple[Step, ...]
    cue: str = ""
    forced_empty: bool = False
    answer_max_tokens: int = 0

    @property
    def graded(self) -> str:
        """The text s1 grades: the forced cue (if any) followed by the answer.

        Example:
            >>> ForcedResult("t", " 42", 1, 1, 1, 0, True, (), cue="Final Answer:").graded
            'Final Answer: 42'
        """
        return self.cue + self.answer


def force_budget(endpoint: Endpoint, mode: ModeConfig, forcing: ForcingConfig,
                 messages: Sequence[Mapping[str, str]], *, seed: int | None = None,
                 stop: Sequence[str] = ()) -> ForcedResult:
    """Think within ``mode.thinking_budget`` tokens (extended ``forcing.num_waits`` times), then answer.

    ``stop``: extra stop strings for the answer.

    Example:
        >>> from program.config import Endpoint, ForcingConfig, ModeConfig
        >>> force_budget(Endpoint("openai/qwen", api_base="http://127.0.0.1:8765/v1"),
        ...              ModeConfig(temperature=0.0, thinking="forced", thinking_budget=64),
        ...              ForcingConfig(num_waits=2), [{"role": "user", "content": "2+3?"}]
        ...              ).num_continuations  # doctest: +SKIP
        2
    """
    check_transport(endpoint, forcing)
    template = get_template(forcing.template)
    send = _Sender(endpoint, mode, forcing, template, template.with_instruction(messages), seed)
    opened = template.think_open + "\n"
    budget = mode.thinking_budget
    cap = forcing.answer_max_tokens or mode.max_tokens
    thinking, used, waits, hit_cap = "", 0, 0, False
    calls: list[Step] = []

    # 1-2. Think in segments, each with what is left of the budget (and of the context window,
    # keeping room for the answer: a window that fills up ends thinking like the budget).
    while True:
        left = min(budget - used, send.room(opened + thinking, budget - used + cap) - cap)
        if left <= 0:
            hit_cap = True
            break
        min_tokens = forcing.min_tokens_after_wait if waits else 0
        reply = send(opened + thinking, max_tokens=left, thinking=True, stop=[template.think_close],
                     min_tokens=min_tokens)
        # A server that ignores stop strings may write past the marker: keep what came before it.
        closed = template.think_close in reply.text
        text = reply.text.partition(template.think_close)[0]
        calls.append(_step("thinking", left, text, reply))
        used += reply.completion_tokens
        thinking += text
        if (reply.finish_reason == "length" and not closed) or used >= budget:
            hit_cap = True
            break
        if waits >= forcing.num_waits:
            break
        # The model wants to stop early: suppress the marker and make it go on.
        thinking += _newline(thinking) + forcing.wait
        waits += 1

    if used > budget:  # only a server that over-reports or ignores max_tokens gets here
        log.warning("server reported %d thinking tokens for a budget of %d", used, budget)

    # 3. Close thinking and answer. A cut-off thought gets "Final Answer:" to force the answer.
    cue = forcing.final_answer if hit_cap else ""
    closing = (_newline(thinking) + template.think_close + "\n" + cue if hit_cap
               else template.think_close + "\n")
    reply = send(opened + thinking + closing, max_tokens=cap, thinking=False, stop=list(stop))
    calls.append(_step("answer", cap, reply.text, reply))
    answer_tokens = reply.completion_tokens

    # 4. A natural end followed by nothing: ask for the answer with the cue, once (s1 would grade
    # the thinking; the cue gets an answer we can grade the same way as after a cut).
    forced_empty = not hit_cap and forcing.force_empty_answer and not reply.text.strip()
    if forced_empty:
        cue = forcing.final_answer
        reply = send(opened + thinking + closing + cue, max_tokens=cap, thinking=False, stop=list(stop))
        calls.append(_step("answer", cap, reply.text, reply))
        answer_tokens += reply.completion_tokens

    return ForcedResult(thinking=thinking, answer=reply.text, thinking_tokens=used, answer_tokens=answer_tokens,
                        prompt_tokens=sum(c.prompt_tokens for c in calls), num_continuations=waits,
                        hit_cap=hit_cap, calls=tuple(calls), cue=cue, forced_empty=forced_empty,
                        answer_max_tokens=cap)


def check_transport(endpoint: Endpoint, forcing: ForcingConfig) -> None:
    """Refuse ``transport: prefill`` on vLLM, in one line that names the transport that works.

    vLLM renders the partial reply through the model's chat template and cuts it after the final
    message (transformers' ``continue_final_message``): Qwen3's template re-emits it around
    ``</think>`` and QwQ/R1 templates drop what precedes ``</think>``, so the forced answer is refused
    with HTTP 400 ("the final message does not appear in the chat"). SGLang appends the text to the
    generation prompt instead, so prefill works there.

    Example:
        >>> check_transport(Endpoint("openai/m", api_base="http://h:8000/v1", server="vllm"),
        ...                 ForcingConfig(transport="prefill"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        program.validation.ConfigError: `transport: prefill` does not work on vLLM ...
    """
    if forcing.transport == "prefill" and servers.server_kind(endpoint) == "vllm":
        raise ConfigError("`transport: prefill` does not work on vLLM (its chat template re-renders the partial "
                          "thinking and the forced answer gets HTTP 400); set `forcing: {transport: completions}`.")


def _newline(text: str) -> str:
    """A newline before an appended string, unless the text is empty or already ends in whitespace."""
    return "" if not text or text[-1].isspace() else "\n"


def _step(phase: Literal["thinking", "answer"], max_tokens: int, text: str, reply: transport.Completion) -> Step:
    return Step(phase, max_tokens, text, reply.prompt_tokens, reply.completion_tokens, reply.finish_reason)


@dataclass(frozen=True)
class _Sender:
    """Continue the assistant's partial text through one of the two transports."""

    endpoint: Endpoint
    mode: ModeConfig
    forcing: ForcingConfig
    template: ChatTemplate
    messages: list[dict[str, str]]
    seed: int | None

    def room(self, assistant: str, max_tokens: int) -> int:
        """``max_tokens``, lowered to what the context window leaves after this prompt (``program.clients.context``)."""
        if self.forcing.transport == "completions":
            return context.fit(self.endpoint, max_tokens, prompt=self.template.render(self.messages) + assistant)[0]
        messages = [*self.messages, {"role": "assistant", "content": assistant}]
        return context.fit(self.endpoint, max_tokens, messages=messages)[0]

    def __call__(self, assistant: str, *, max_tokens: int, thinking: bool, stop: list[str],
                 min_tokens: int = 0) -> transport.Completion:
        """Generate after ``assistant`` (the reply so far); ``thinking`` books the tokens as thinking.

        ``min_tokens`` > 0 is sent as the server field of that name (none is sent otherwise).
        """
        sampling: dict[str, Any] = {"temperature": self.mode.temperature, "top_p": self.mode.top_p,
                                    "top_k": self.mode.top_k, "seed": self.seed}
        at_least: dict[str, Any] = {"min_tokens": min(min_tokens, max_tokens)} if min_tokens > 0 else {}
        if at_least:
            # vLLM checks no stop string during min_tokens, and </think> is no EOS: only a stop token
            # id is masked then. Where the marker is one token (Qwen3), send its id (looked up once).
            marker = servers.single_token_id(self.endpoint, self.template.think_close)
            if marker is not None:
                at_least["stop_token_ids"] = [marker]
        if self.forcing.transport == "completions":
            # A raw prompt has no end of turn unless we name it: add the template's.
            prompt = self.template.render(self.messages) + assistant
            if at_least:
                sampling["extra_body"] = at_least
            return transport.text(self.endpoint, prompt, max_tokens=max_tokens, stop=[*stop, *self.template.stop],
                                  thinking=thinking, **sampling)
        # Prefill: the server renders the chat, continues our unfinished assistant message and
        # knows the model's end of turn itself.
        messages = [*self.messages, {"role": "assistant", "content": assistant}]
        reply = transport.chat(self.endpoint, messages, max_tokens=max_tokens, stop=stop,
                               extra_body={"continue_final_message": True, "add_generation_prompt": False,
                                           **at_least},
                               thinking_tokens_are_completion=thinking, **sampling)
        # A reasoning parser may put continued text in the thinking field: it is ours either way.
        return replace(reply, text=reply.thinking + reply.text, thinking="")


# --- DSPy ------------------------------------------------------------------------------------

@dataclass
class ForcedEngine:
    """A DSPy engine (``complete(Request) -> Response``) that answers with budget-forced thinking.

    Sampling values and the answer's ``max_tokens`` come from the request when set (DSPy fills them
    from the LM's defaults), else from ``mode`` (``forcing.answer_max_tokens``, when set, caps the
    answer instead). The answer is returned as s1 grades it: the model's text after the forced
    "Final Answer:" cue, cue included (``ForcedResult.graded``); the thinking text goes in a
    thinking part. The Response's usage is informational only: the transport has already recorded
    every call in the ledger.

    Example:
        >>> import dspy
        >>> from program.clients.engine import lm_from_engine
        >>> from program.presets import preset
        >>> config = preset("local")
        >>> lm = lm_from_engine(ForcedEngine(config.endpoint, config.system2, config.forcing), "bf")
        >>> lm.model
        'scale/bf'
    """

    endpoint: Endpoint
    mode: ModeConfig
    forcing: ForcingConfig

    def complete(self, request: Any) -> Any:
        config = request.config
        overrides = {name: getattr(config, name) for name in ("temperature", "top_p", "top_k", "max_tokens")
                     if getattr(config, name) is not None}
        result = force_budget(self.endpoint, replace(self.mode, **overrides), self.forcing,
                              request_messages(request), seed=config.seed, stop=list(config.stop))
        completion = transport.Completion(
            text=result.graded, thinking=result.thinking, finish_reason=result.calls[-1].finish_reason,
            prompt_tokens=result.prompt_tokens, completion_tokens=result.thinking_tokens + result.answer_tokens,
            thinking_tokens=result.thinking_tokens)
        return to_response(request.model, completion)

    def stream(self, request: Any) -> Any:
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass


def forced_lm(config: LMConfig, *, thinking_budget: int | None = None, num_waits: int | None = None,
              name: str = "bf") -> Any:
    """A ``dspy.LM`` (``scale/<name>``) doing budget forcing on System 2's endpoint and sampling.

    ``thinking_budget`` and ``num_waits`` override the config (the ``bf`` baseline, budget sweeps).

    Example:
        >>> from program.presets import preset
        >>> lm = forced_lm(preset("local"), thinking_budget=128, num_waits=2)
        >>> lm.engine.mode.thinking_budget, lm.engine.forcing.num_waits
        (128, 2)
    """
    mode = config.system2
    budget = mode.thinking_budget if thinking_budget is None else thinking_budget
    mode = replace(mode, thinking="forced", thinking_budget=budget)  # validates: budget must be > 0
    forcing = config.forcing if num_waits is None else replace(config.forcing, num_waits=num_waits)
    engine = ForcedEngine(config.endpoint_for(config.system2), mode, forcing)
    return lm_from_engine(engine, name, temperature=mode.temperature, max_tokens=mode.max_tokens)
