"""The answer to a thinking reply that its cap cut off inside the thinking: forced, never read from it.

A chat reply in a thinking mode (``qwen3``, ``always``) that hit ``max_tokens`` before its end of
thinking holds no answer: ``program.clients.transport.chat(thinks=True)`` moves its text to the
thinking and notes it "cut off in thinking". On vLLM, SGLang or llama.cpp's server, where we render
the model's template ourselves (``forcing.template``), ``force_answer`` gets the answer as s1 budget
forcing does after a cut (``program.clients.budget_forcing``): the end-of-thinking marker and
"Final Answer:" through /v1/completions. Elsewhere the step keeps no answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from program.clients import transport
from program.clients.templates import get_template
from program.config import Endpoint, ForcingConfig, ModeConfig

__all__ = ["force_answer"]


def force_answer(endpoint: Endpoint, mode: ModeConfig, forcing: ForcingConfig, messages: Sequence[Mapping[str, str]],
                 cut: transport.Completion, *, seed: int | None = None) -> transport.Completion:
    """The answer to a chat reply ``cut`` off in its thinking, forced as budget forcing forces one.

    The prompt is the conversation in ``forcing.template``, the thinking so far, the end-of-thinking
    marker and ``forcing.final_answer``, sent through /v1/completions; the answer is graded with the
    cue, as after a budget cut. The returned completion sums both calls' tokens.

    Example:
        >>> cut = transport.Completion(text="", thinking="2 + 3 is", finish_reason="length", note="cut off in thinking")
        >>> force_answer(Endpoint("openai/m", api_base="http://127.0.0.1:9/v1"), ModeConfig(), ForcingConfig(),
        ...              [{"role": "user", "content": "2 + 3?"}], cut).text  # doctest: +SKIP
        'Final Answer: 5'
    """
    template = get_template(forcing.template)
    cap = forcing.answer_max_tokens or mode.max_tokens
    thinking = cut.thinking + ("" if not cut.thinking or cut.thinking[-1].isspace() else "\n")
    prompt = (template.render(template.with_instruction(messages)) + template.think_open + "\n" + thinking
              + template.think_close + "\n" + forcing.final_answer)
    reply = transport.text(endpoint, prompt, max_tokens=cap, temperature=mode.temperature, top_p=mode.top_p,
                           top_k=mode.top_k, seed=seed, stop=list(template.stop))
    return replace(cut, text=forcing.final_answer + reply.text, finish_reason=reply.finish_reason,
                   prompt_tokens=cut.prompt_tokens + reply.prompt_tokens,
                   completion_tokens=cut.completion_tokens + reply.completion_tokens, note="")
