"""Which exceptions are the user's to fix (printed as one line by the CLI, no traceback), and the
exit statuses of the ``scale`` command.

Exit statuses (the CLI's, and "Exit statuses" in docs/RELIABILITY.md):

- ``EXIT_OK`` (0): the command finished; every problem it evaluated was answered (right or wrong).
- 1: an unexpected error (a bug: the traceback is printed).
- ``EXIT_USAGE`` (2): the user must fix something first: a bad flag, config or data file, or an LLM
  server that was never reached (one line names the URL and how to check it).
- ``EXIT_INCOMPLETE`` (3): some problems failed with server or model errors, or the server went
  down mid-run; the results are written, and running the same command again retries what failed.
- ``EXIT_CHECK_FAILED`` (4): ``scale check`` found a check that failed (each ``FAIL`` line says its fix),
  or ``--strict`` refused to start a run for that reason.
- ``EXIT_INTERRUPTED`` (130): Ctrl-C; finished work is saved.
"""

from __future__ import annotations

from program.errors import ServerError

__all__ = ["EXIT_OK", "EXIT_USAGE", "EXIT_INCOMPLETE", "EXIT_CHECK_FAILED", "EXIT_INTERRUPTED", "EXIT_STATUS_HELP",
           "CheckFailedError", "ServerDownError", "user_error_types", "wrapped_user_error"]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_CHECK_FAILED = 4
EXIT_INTERRUPTED = 130

EXIT_STATUS_HELP = ("exit status: 0 every problem was answered (right or wrong); 2 a usage error, or the LLM server "
                    "was never reached (one line names the URL); 3 some problems failed with server or model errors "
                    "(results are written: run the same command again to retry them); 4 --strict: a server check "
                    "failed (`scale check` prints each with its fix); 130 interrupted.")


class ServerDownError(ServerError):
    """The LLM server is down: a run stopped, or ended with every problem failed by server errors.

    ``reached`` says whether anything was answered before (exit status 3: finished work is saved,
    rerun to resume) or the server was never reached (exit status 2: check the URL first).

    Example:
        >>> ServerDownError("no problem was answered", reached=False).reached
        False
    """

    def __init__(self, message: str, *, reached: bool = True) -> None:
        super().__init__(message)
        self.reached = reached

    @property
    def exit_status(self) -> int:
        """``EXIT_INCOMPLETE`` when some work was done before the server went down, else ``EXIT_USAGE``."""
        return EXIT_INCOMPLETE if self.reached else EXIT_USAGE


class CheckFailedError(Exception):
    """``--strict``: a server check failed, so the long run was not started (exit status 4).

    Example:
        >>> str(CheckFailedError("cached tokens: not reported"))
        'cached tokens: not reported'
    """


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types whose message already says what was wrong and how to fix it."""
    from program.config import ConfigError
    from program.errors import ProgramError

    types: list[type[BaseException]] = [ConfigError, ProgramError, FileNotFoundError]
    try:
        from data.errors import DataError

        types.append(DataError)
    except ImportError:
        pass
    return tuple(types)


def wrapped_user_error(error: BaseException) -> BaseException | None:
    """The user's error that caused ``error`` (DSPy re-raises an LM's exception as its own), or None.

    Example:
        >>> try:
        ...     try:
        ...         raise ServerError("The LLM server http://127.0.0.1:9 failed after 4 attempts")
        ...     except ServerError as inner:
        ...         raise RuntimeError("[scale/system1] wrapped") from inner
        ... except RuntimeError as outer:
        ...     print(wrapped_user_error(outer))
        The LLM server http://127.0.0.1:9 failed after 4 attempts
    """
    types = user_error_types()
    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, types):
            return cause
        cause = cause.__cause__
    return None
