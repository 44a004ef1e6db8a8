"""Validation helpers of the frozen configs: the error type and the checks that name field, value and fix.

Example:
    >>> check_known_keys({"tau": 1}, {"threshold"}, "scale")
    Traceback (most recent call last):
    program.validation.ConfigError: scale: unknown key(s) 'tau'; known keys are: threshold.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["ConfigError", "check_known_keys", "check", "check_probability", "check_positive"]


class ConfigError(ValueError):
    """A configuration value or key is wrong. The message names it and says what is expected."""


def check(condition: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``condition`` holds.

    Example:
        >>> check(1 > 2, "`x=1` must be above 2.")
        Traceback (most recent call last):
        program.validation.ConfigError: `x=1` must be above 2.
    """
    if not condition:
        raise ConfigError(message)


def check_known_keys(data: Any, known: Any, where: str, *, kind: str = "key", after: str = "") -> None:
    """Raise ConfigError naming every key of ``data`` not in ``known``, and listing the known ones.

    Example:
        >>> check_known_keys({"tau": 1}, {"threshold"}, "scale")
        Traceback (most recent call last):
        program.validation.ConfigError: scale: unknown key(s) 'tau'; known keys are: threshold.
    """
    unknown = sorted(set(data) - set(known))
    if unknown:
        listed = sorted(known) if isinstance(known, (set, frozenset)) else list(known)  # keep a given order
        raise ConfigError(f"{where}: unknown {kind}(s) {', '.join(map(repr, unknown))}{after}; "
                          f"known {kind}s are: {', '.join(listed)}.")


def check_probability(name: str, value: float | None) -> None:
    """A value in [0, 1] (or None, for "not set").

    Example:
        >>> check_probability("top_p", 1.5)
        Traceback (most recent call last):
        program.validation.ConfigError: `top_p=1.5` must be in [0, 1].
    """
    if value is not None:
        check(isinstance(value, (int, float)) and 0.0 <= value <= 1.0, f"`{name}={value!r}` must be in [0, 1].")


def check_positive(name: str, value: int | float | None, *, allow_zero: bool = False) -> None:
    """A finite number above 0 (or at least 0 with ``allow_zero``), or None for "not set".

    Example:
        >>> check_positive("retries", -1, allow_zero=True)
        Traceback (most recent call last):
        program.validation.ConfigError: `retries=-1` must be non-negative.
    """
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    check(ok, f"`{name}={value!r}` must be {'non-negative' if allow_zero else 'positive'}.")
