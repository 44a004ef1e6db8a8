"""The typed DSPy signatures of every stage: the docstring is the instruction, the fields the data.

Written for small models as much as large ones: short sentences, one job per signature, the
output format stated plainly. Parsing is the adapter's job (``program.adapter.PlainAdapter``):
a ``list[str]`` output is read from a numbered list or JSON, a ``float`` from a number anywhere
in the reply, a ``str`` output is the whole reply.
Input fields carry no ``desc``: the adapter shows an input by its label alone, so a
description there would never reach the model.

Example:
    >>> Decompose.output_fields["steps"].annotation
    list[str]
"""

from __future__ import annotations

import dspy

__all__ = [
    "Decompose",
    "SelectDecomposition",
    "Rewrite",
    "AssessDifficulty",
    "SolveStep",
    "SolveProblem",
    "InftyThinkSegment",
    "InftyThinkSummary",
]


class Decompose(dspy.Signature):
    """Break the math problem into a short ordered list of sub-problems. Solved one after another, they must lead to the answer the problem asks for.

    Rules:
    - Each sub-problem is simpler than the original problem.
    - Each sub-problem has a clear target that contributes to the answer: it says WHAT to find, not how to compute it. Name no theorem, formula or method.
    - Each sub-problem builds on the results of earlier ones or can be solved on its own.
    - Do not solve anything: write no calculations and no results.
    - When a later sub-problem needs a quantity, name it explicitly in the sub-problem that finds it (for example "Find the number of eggs left, call it E").
    - The last sub-problem asks for exactly what the problem asks."""

    problem: str = dspy.InputField()
    steps: list[str] = dspy.OutputField(desc="the sub-problems, in order")


class SelectDecomposition(dspy.Signature):
    """Several candidate decompositions of a math problem into sub-problems are given. Choose the best one. Judge logical correctness, clarity, completeness (it reaches the requested answer), relevance and simplicity."""

    problem: str = dspy.InputField()
    candidates: str = dspy.InputField()
    best: int = dspy.OutputField(desc="the number of the best candidate")


class Rewrite(dspy.Signature):
    """Restate the math problem in two parts without solving it. Conditions: every given fact, with all its numbers, and no question. Question: the one thing the problem asks to find, as a single sentence."""

    problem: str = dspy.InputField()
    conditions: str = dspy.OutputField(desc="the given facts")
    question: str = dspy.OutputField(desc="the question, as one sentence")


class AssessDifficulty(dspy.Signature):
    """Rate how hard the current sub-problem of a math problem is, as a number between 0 and 1.

    0 to 0.5: an elementary or middle school student who knows the topic could do it quickly.
    0.5 to 1: even a strong high school or college student would need extensive thought or help.
    Do not solve it. Reply with the number only."""

    problem: str = dspy.InputField()
    earlier_steps: str = dspy.InputField()
    current_step: str = dspy.InputField()
    score: float = dspy.OutputField(desc="the difficulty, between 0 and 1")


class SolveStep(dspy.Signature):
    """Solve the current step of a math problem, and only that step. The earlier steps are already solved: use their results and do not redo them. Reason step by step, briefly, then write the result of the current step in \\boxed{}."""

    problem: str = dspy.InputField()
    earlier_steps: str = dspy.InputField()
    current_step: str = dspy.InputField()
    solution: str = dspy.OutputField(desc="brief reasoning for the current step only, ending with its result in \\boxed{}")


class SolveProblem(dspy.Signature):
    """Solve the math problem. Reason step by step, then write the final answer in \\boxed{}."""

    problem: str = dspy.InputField()
    solution: str = dspy.OutputField(desc="step-by-step reasoning ending with the final answer in \\boxed{}")


class InftyThinkSegment(dspy.Signature):
    """Work on the math problem, continuing from the summary of the progress so far. Reason step by step and keep within the token limit.

    If you reach the final answer, write it in \\boxed{} and stop.
    Otherwise stop at a good point and end with a line "Summary:" followed by a bullet list of what has been achieved so far (the key steps and intermediate results, with their numbers)."""

    problem: str = dspy.InputField()
    progress: str = dspy.InputField()
    token_limit: int = dspy.InputField()
    reasoning: str = dspy.OutputField(desc="the reasoning, ending with \\boxed{answer} or with a summary")


class InftyThinkSummary(dspy.Signature):
    """Summarise the progress on a math problem as a bullet list: the key steps and intermediate results so far, with their numbers. Include what the earlier summary established. Do not continue solving."""

    problem: str = dspy.InputField()
    progress: str = dspy.InputField()
    reasoning: str = dspy.InputField()
    summary: str = dspy.OutputField(desc="a bullet list of what has been achieved")
