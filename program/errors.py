"""Exceptions of the program, split by who is at fault (the pydantic-ai habit).

- ``ProgramError``: base; its message says what to do.
- ``ServerError``: the LLM server is unreachable or failing after retries (transport's fault).
- ``ModelOutputError``: the model replied with something no stage could use (model's fault).
- ``SavedProgramError``: a saved program directory is missing, corrupted or incompatible (file's fault).
- ``ServiceError``: a service a run needs (the study database, the MLflow tracking server) cannot be
  reached or its URL is wrong (the user's to fix; the message never shows a password).
"""

from __future__ import annotations

__all__ = ["ProgramError", "ServerError", "ModelOutputError", "SavedProgramError", "ServiceError",
           "LogprobsRefusedError"]


class ProgramError(RuntimeError):
    """Base class; the message names the problem and the fix."""


class ServerError(ProgramError):
    """The LLM server could not be reached or kept failing after bounded retries."""


class ModelOutputError(ProgramError):
    """The model's reply could not be used (after retries, where a stage retries)."""


class SavedProgramError(ProgramError):
    """A saved program is missing, corrupted, tampered with or from an incompatible version."""


class ServiceError(ProgramError):
    """The study database or the tracking server is unreachable, or its URL is wrong."""


class LogprobsRefusedError(ProgramError):
    """The server answered a request for token logprobs with "not supported" (llama.cpp without
    ``--logits_all true``): a setting, not a transient failure, so it is not retried."""
