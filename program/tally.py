"""Counting answers: the arithmetic of a vote, shared by majority voting and the agreement signal.

Answers are compared after ``answer_key`` normalisation; a missing answer (None) does not count;
ties go to the answer seen first.

Example:
    >>> tally(["$1,000", "1000", "7"])
    ('$1,000', [2.0, 1.0])
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["answer_key", "tally"]


def answer_key(answer: str) -> str:
    """The form answers are compared in: no spaces or `$`, no thousands commas, no trailing period.

    Example:
        >>> answer_key("$1,000.")
        '1000'
    """
    key = re.sub(r"\s+|\$", "", answer)
    key = re.sub(r"(?<=\d),(?=\d{3}\b)", "", key)
    return key.rstrip(".")


def tally(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> tuple[str | None, list[float]]:
    """(winner, vote totals sorted high to low). Ties go to the answer seen first.

    Example:
        >>> tally(["5", "6", "6", "5"])
        ('5', [2.0, 2.0])
        >>> tally(["5", "6"], weights=[1.0, 3.0])
        ('6', [3.0, 1.0])
    """
    totals: dict[str, float] = {}
    first: dict[str, str] = {}
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        key = answer_key(answer)
        totals[key] = totals.get(key, 0.0) + (1.0 if weights is None else float(weights[i]))
        first.setdefault(key, answer)
    if not totals:
        return None, []
    best = max(totals.values())
    winner = next(key for key in totals if totals[key] == best)  # dicts keep first-seen order
    return first[winner], sorted(totals.values(), reverse=True)
