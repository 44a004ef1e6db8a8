"""Test doubles for LLM code, as first-class code (the pydantic-ai habit; ``optuna.testing`` too).

- ``scripted``: ``function_lm`` and ``scripted_systems``, LMs answered by a function you write;
- ``fakeserver``: a fake OpenAI-compatible server on 127.0.0.1 (real HTTP, no model);
- ``garbage``: bad model replies on purpose, for fuzzing every stage that reads model text.

May import anything in ``program``; no runtime module imports this package.

Example:
    >>> import dspy
    >>> from program.testing import function_lm
    >>> lm = function_lm(lambda messages: "[[ ## answer ## ]]\\n4\\n\\n[[ ## completed ## ]]")
    >>> with dspy.context(lm=lm):
    ...     dspy.Predict("question -> answer")(question="2+2?").answer
    '4'
"""

from __future__ import annotations

from program.lazy import lazy_exports

_EXPORTS = {name: "program.testing.scripted"
            for name in ("FunctionEngine", "function_lm", "scripted_systems", "count_tokens", "chat_fields",
                         "replies", "Responder")}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
