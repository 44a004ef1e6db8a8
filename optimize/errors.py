"""Which exceptions are the user's to fix (printed as one line by the CLI, no traceback)."""

from __future__ import annotations


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
