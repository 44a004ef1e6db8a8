r"""What step i of a plan sees of steps 1..i-1: their descriptions, and their visible answers or values.

``render_context`` gives each earlier step with its visible answer (``full``) or with only its
extracted value (``final_value``, for small-context models); ``render_steps`` gives descriptions
only (up-front scoring, when nothing is solved yet). Thinking never reaches these: ``solve`` keeps
only the visible reply. ``solve_in_order`` is the step loop itself: SCALE's, and the one the
decomposition's compile stage and the calibration labels reuse.

Example:
    >>> done = [StepResult("Find the eggs left.", "16 - 3 - 4 = 9, so \\boxed{9}.", "9")]
    >>> print(render_context(done, "final_value"))
    Step 1: Find the eggs left.
    Result: 9
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from program.names import ContextKind

__all__ = ["ContextMode", "NO_EARLIER_STEPS", "StepResult", "render_context", "render_steps", "solve_in_order"]

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


def solve_in_order(steps: Sequence[str], context: ContextMode,
                   solve_step: Callable[[int, str, str], StepResult]) -> list[StepResult]:
    """Solve ``steps`` one after another: ``solve_step(index, step, earlier)`` gets the results of the
    steps before it rendered as ``render_context(done, context)``; returns every step's result.

    Example:
        >>> done = solve_in_order(["Add 2 and 3.", "Double it."], "final_value",
        ...                       lambda i, step, earlier: StepResult(step, earlier, str(i)))
        >>> print(done[1].text)
        Step 1: Add 2 and 3.
        Result: 0
    """
    done: list[StepResult] = []
    for index, step in enumerate(steps):
        done.append(solve_step(index, step, render_context(done, context)))
    return done
