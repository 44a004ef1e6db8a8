"""Study storage URLs: which are shared servers, how they print without a password, how they open.

None means ``sqlite:///<run_dir>/optuna.db``; ``journal:PATH`` is a journal file
(``JournalStorage(JournalFileBackend(PATH))``); anything else is an SQLAlchemy URL for Optuna's
``RDBStorage`` (``sqlite:///FILE``, ``postgresql://user@host/db``). Errors of a driver or a
database become one ``ServiceError`` naming the URL with its password hidden.

Example:
    >>> safe_url("postgresql://me:hunter2@db/optuna"), is_server_url("sqlite:///runs/optuna.db")
    ('postgresql://me:***@db/optuna', False)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryFailedTrialCallback

from program.errors import ServiceError

__all__ = ["is_server_url", "is_postgres", "open_storage", "safe_url", "service_errors", "storage_url"]

_SERVER_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")


def is_server_url(url: str) -> bool:
    """True for a database server URL (shared by machines), False for sqlite files and journals.

    Example:
        >>> is_server_url("postgresql://me@db/optuna"), is_server_url("sqlite:///runs/optuna.db")
        (True, False)
    """
    return _dialect(url) in _SERVER_SCHEMES


def safe_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs).

    Example:
        >>> safe_url("postgresql://me:hunter2@db:5432/optuna")
        'postgresql://me:***@db:5432/optuna'
    """
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:  # unparsable: show the scheme only, the rest may hold a password
        return url.split(":", 1)[0] + "://***"


def is_postgres(url: str) -> bool:
    return _dialect(url) in ("postgresql", "postgres")


def _dialect(url: str) -> str:
    """The database of an SQLAlchemy URL, without its driver: "postgresql+psycopg://..." -> "postgresql"."""
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def storage_url(storage: str | None, run_dir: str | Path) -> str:
    """The storage URL actually used: the given one, or the default sqlite file in ``run_dir``."""
    return storage or f"sqlite:///{Path(run_dir).resolve() / 'optuna.db'}"


def open_storage(url: str, heartbeat: float | None = None) -> Any:
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if heartbeat is None:
        return optuna.storages.RDBStorage(url)
    # Optuna's heartbeat takes whole seconds; tests use 1 s.
    interval = max(1, round(heartbeat))
    return optuna.storages.RDBStorage(url, heartbeat_interval=interval, grace_period=3 * interval,
                                      failed_trial_callback=RetryFailedTrialCallback(max_retry=3))


@contextlib.contextmanager
def service_errors(url: str) -> Iterator[None]:
    """Turn a driver's or the database's error into a ``ServiceError`` naming the URL (password hidden)."""
    try:
        yield
    except ServiceError:
        raise
    except ImportError as exc:
        raise ServiceError(f"The study storage {safe_url(url)} needs a database driver that is not installed "
                           f"({exc.name or exc}); for PostgreSQL: pip install 'scale-tts[postgres]'.") from None
    except Exception as exc:
        import sqlalchemy.exc

        if not isinstance(exc, (sqlalchemy.exc.SQLAlchemyError, OSError, ValueError,
                                optuna.exceptions.StorageInternalError)):
            raise
        # OperationalError (server down, wrong password), ArgumentError (a URL that is none) ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = reason.replace(url, safe_url(url))
        password = _password(url)
        if password:
            reason = reason.replace(password, "***")
        raise ServiceError(f"Cannot open the study storage {safe_url(url)}: {type(exc).__name__}: "
                           f"{reason[:300]}. "
                           "Check that the database server is running and the URL is right "
                           "(--storage postgresql://USER:PASSWORD@HOST:PORT/DB, sqlite:///FILE or "
                           "journal:FILE).") from None


def _password(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None
