"""The one exception type of the ``data`` package: the user's input was wrong."""

from __future__ import annotations


class DataError(ValueError):
    """A benchmark file, name or slice the user gave cannot be used.

    The message names the file, line and field (where there is one) and the expected form, so
    the CLI can print it as one line without a traceback.

    >>> str(DataError("data/x.jsonl:3: field 'answer' is missing; expected a non-empty string"))
    "data/x.jsonl:3: field 'answer' is missing; expected a non-empty string"
    """
