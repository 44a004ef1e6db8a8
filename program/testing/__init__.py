"""Test doubles for LLM code, as first-class code (the pydantic-ai habit; ``optuna.testing`` too).

- ``scripted``: ``function_lm`` and ``scripted_systems``, LMs answered by a function you write;
- ``fakeserver``: a fake OpenAI-compatible server on 127.0.0.1 (real HTTP, no model);
- ``garbage``: bad model replies on purpose, for fuzzing every stage that reads model text.

May import anything in ``program``; no runtime module imports this package.

Example (one LM is in ``scripted``; here a run's three, System 2 reusing System 1's script):
    >>> import dspy
    >>> from program.testing import replies, scripted_systems
    >>> four = "[[ ## answer ## ]]\\n4\\n\\n[[ ## completed ## ]]"
    >>> systems = scripted_systems(stages=replies(), system1=replies(four))
    >>> with dspy.context(lm=systems.system2):
    ...     dspy.Predict("question -> answer")(question="2+2?").answer
    '4'
    >>> systems.system2.model
    'scale/system2'
"""

from __future__ import annotations

from program.lazy import lazy_exports

_EXPORTS = {name: "program.testing.scripted"
            for name in ("FunctionEngine", "function_lm", "scripted_systems", "count_tokens", "chat_fields",
                         "replies", "Responder")}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
