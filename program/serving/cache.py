"""The user cache root that the embedded model, its server logs and the llama-server build share.

Its own module so that ``local`` (the model and the launcher) and ``build`` (the binary) both use it
without importing each other.

Example:
    >>> default_cache_dir()  # doctest: +SKIP
    PosixPath('/home/me/.cache/scale-tts')
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """``$SCALE_CACHE_DIR``, else ``$XDG_CACHE_HOME/scale-tts``, else ``~/.cache/scale-tts`` (created)."""
    root = os.environ.get("SCALE_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scale-tts"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
