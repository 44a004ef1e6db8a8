r"""What step i of a plan sees of steps 1..i-1: their descriptions, and their visible answers or values.

``render_context`` gives each earlier step with its visible answer (``full``) or with only its
extracted value (``final_value``, for small-context models); ``render_steps`` gives descriptions
only (up-front scoring, when nothing is solved yet). Thinking never reaches these: ``solve`` keeps
only the visible reply.

Example:
    >>> done = [StepResult("Find the eggs left.", "16 - 3 - 4 = 9, so \\boxed{9}.", "9")]
    >>> print(render_context(done, "final_value"))
    Step 1: Find the eggs left.
    Result: 9
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from program.names import ContextKind

__all__ = ["ContextMode", "NO_EARLIER_STEPS", "StepResult", "render_context", "render_steps"]

ContextMode = ContextKind  # the config's ``ScaleConfig.context``
NO_EARLIER_STEPS = "(none: this is the first step)"


@dataclass(frozen=True)
class StepResult:
    """A solved step as later steps see it."""

    step: str
    text: str
    value: str | None


def render_context(done: Sequence[StepResult], mode: ContextMode = "full") -> str:
    """Earlier steps as step i sees them: descriptions with visible answers, or values only."""
    if not done:
        return NO_EARLIER_STEPS
    blocks = []
    for i, result in enumerate(done, 1):
        if mode == "full":
            blocks.append(f"Step {i}: {result.step}\nSolution: {result.text or '(no solution)'}")
        else:
            blocks.append(f"Step {i}: {result.step}\nResult: {result.value if result.value is not None else 'unknown'}")
    return "\n\n".join(blocks)


def render_steps(steps: Sequence[str]) -> str:
    """Earlier step descriptions only (up-front difficulty scoring: nothing is solved yet)."""
    return "\n".join(f"Step {i}: {step}" for i, step in enumerate(steps, 1)) or NO_EARLIER_STEPS
