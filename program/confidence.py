"""The arithmetic of difficulty signals read from logprobs and samples (no model, no I/O).

Token lists are ``program.clients.transport.Completion.logprobs``: ``{"token", "logprob", "top": [[token,
logprob], ...]}`` per generated token. Every function returns a difficulty in [0, 1] or a raw
number that a source maps into one; monotone maps only, so AUROC is the same either way.

- ``digit_distribution``: a one-token rating's probabilities over 0-9. Tokens that read as one
  digit (" 7", "7.", "7") are pooled, then renormalised over the digits.
- ``lowest_group_confidence``: DeepConf (Fu et al., 2025). Token confidence is minus the mean of
  its top-k logprobs (high when the model is sure); a window's is the mean over ``window`` tokens;
  the trace's is its lowest window. Windows are short here: a step is tens of tokens, not thousands.
- ``mean_logprob``: the mean logprob of the chosen tokens.
- ``agreement``: 1 - (largest group of equal answers / samples).

Example:
    >>> dist = digit_distribution([[" 7", -0.105], ["3", -2.303], ["To", -3.0]])
    >>> round(expected_digit(dist), 2)
    6.6
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from program.tally import tally

__all__ = ["digit_distribution", "digit_mass", "expected_digit", "entropy", "token_confidence",
           "lowest_group_confidence", "confidence_difficulty", "mean_logprob", "agreement", "CONFIDENCE_SCALE"]

# Nats of DeepConf confidence that map to a difficulty of 1/e: top-5 confidences of sure tokens run
# 10-20 nats, of torn ones 1-3, so exp(-c / 5) spreads the two over most of [0, 1].
CONFIDENCE_SCALE = 5.0


def digit_distribution(top: Sequence[Sequence[Any]]) -> dict[int, float]:
    """Probabilities of the digits 0-9 among ``[token, logprob]`` alternatives, renormalised.

    Returns {} when no alternative reads as a digit.

    Example:
        >>> digit_distribution([["2", math.log(0.3)], [" 2", math.log(0.1)], ["8.", math.log(0.4)], ["x", -1]])
        {2: 0.5, 8: 0.5}
    """
    mass: dict[int, float] = {}
    for token, logprob in top:
        digit = _digit(token)
        if digit is not None:
            mass[digit] = mass.get(digit, 0.0) + math.exp(float(logprob))
    total = sum(mass.values())
    return {d: round(p / total, 12) for d, p in sorted(mass.items())} if total > 0 else {}


def digit_mass(top: Sequence[Sequence[Any]]) -> float:
    """The probability the alternatives put on digit tokens at all (low: the model wanted words).

    Example:
        >>> round(digit_mass([["2", math.log(0.3)], ["To", math.log(0.6)]]), 3)
        0.3
    """
    return sum(math.exp(float(lp)) for token, lp in top if _digit(token) is not None)


def _digit(token: Any) -> int | None:
    text = str(token).strip().rstrip(".")
    return int(text) if len(text) == 1 and text.isdigit() else None


def expected_digit(distribution: Mapping[int, float]) -> float:
    """The mean digit of a distribution from ``digit_distribution``.

    Example:
        >>> expected_digit({2: 0.5, 8: 0.5})
        5.0
    """
    return sum(d * p for d, p in distribution.items())


def entropy(distribution: Mapping[int, float]) -> float:
    """Shannon entropy in nats (0 for a sure digit, ln 10 = 2.30 for a uniform one).

    Example:
        >>> round(entropy({2: 0.5, 8: 0.5}), 4)
        0.6931
    """
    return -sum(p * math.log(p) for p in distribution.values() if p > 0)


def token_confidence(token: Mapping[str, Any]) -> float:
    """DeepConf token confidence: minus the mean of the token's top-k logprobs.

    Example:
        >>> token_confidence({"token": "a", "logprob": -0.1, "top": [["a", -0.1], ["b", -9.9]]})
        5.0
    """
    top = token.get("top") or [[token.get("token"), token["logprob"]]]
    return -sum(float(lp) for _, lp in top) / len(top)


def lowest_group_confidence(tokens: Sequence[Mapping[str, Any]], window: int) -> float:
    """The lowest mean token confidence over sliding windows of ``window`` tokens (all, if fewer).

    Example:
        >>> sure = {"token": "a", "logprob": 0.0, "top": [["a", 0.0], ["b", -20.0]]}      # confidence 10
        >>> torn = {"token": "a", "logprob": -0.7, "top": [["a", -0.7], ["b", -0.7]]}     # confidence 0.7
        >>> round(lowest_group_confidence([sure, sure, torn, torn, sure], window=2), 2)
        0.7
    """
    if not tokens:
        raise ValueError("no tokens: a confidence needs at least one generated token with logprobs")
    confidences = [token_confidence(t) for t in tokens]
    size = min(window, len(confidences))
    running = sum(confidences[:size])
    lowest = running
    for i in range(size, len(confidences)):
        running += confidences[i] - confidences[i - size]
        lowest = min(lowest, running)
    return lowest / size


def confidence_difficulty(confidence: float) -> float:
    """A DeepConf confidence as a difficulty in [0, 1]: ``exp(-confidence / CONFIDENCE_SCALE)``.

    Example:
        >>> round(confidence_difficulty(5.0), 3)
        0.368
    """
    return math.exp(-max(0.0, confidence) / CONFIDENCE_SCALE)


def mean_logprob(tokens: Sequence[Mapping[str, Any]]) -> float:
    """The mean logprob of the chosen tokens (difficulty: ``1 - exp(mean)``).

    Example:
        >>> mean_logprob([{"token": "a", "logprob": -0.5, "top": []}, {"token": "b", "logprob": -1.5, "top": []}])
        -1.0
    """
    if not tokens:
        raise ValueError("no tokens: a mean logprob needs at least one generated token")
    return sum(float(t["logprob"]) for t in tokens) / len(tokens)


def agreement(answers: Sequence[str | None]) -> tuple[float, str | None]:
    """(difficulty, majority answer): difficulty = 1 - largest agreeing group / number of samples.

    A sample without an answer agrees with nobody. Ties go to the answer seen first.

    Example:
        >>> agreement(["18", "18", "20"])
        (0.333, '18')
        >>> agreement([None, None])
        (1.0, None)
    """
    if not answers:
        raise ValueError("agreement needs at least one sample")
    winner, counts = tally(answers)
    if winner is None:
        return 1.0, None
    return round(1.0 - counts[0] / len(answers), 3), winner
