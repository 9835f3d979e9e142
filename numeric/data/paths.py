"""Where the loaders cache derived files and look for user-supplied datasets."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "DATA_ENV", "cache_dir", "data_dir", "is_dir"]

#: Environment variable overriding the cache directory.
CACHE_ENV = "LOWRANK_CACHE_DIR"
#: Environment variable naming a directory that holds user-supplied datasets.
DATA_ENV = "LOWRANK_DATA_DIR"


def cache_dir() -> Path:
    """Directory for cached dataset files (not created here).

    Returns
    -------
    Path
        ``$LOWRANK_CACHE_DIR`` if set and non-empty, else ``~/.cache/lowrank-derivatives``.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lowrank-derivatives"


def data_dir() -> Path:
    """Root searched for user-supplied datasets when no path is given.

    Returns
    -------
    Path
        ``$LOWRANK_DATA_DIR`` if set and non-empty, else :func:`cache_dir`. Datasets are
        looked up in sub-directories ``mnist/``, ``fashion-mnist/`` and
        ``cifar-10-batches-py/``.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return cache_dir()


def is_dir(path: Path) -> bool:
    """``path.is_dir()``, False (instead of an exception) where it cannot be examined."""
    try:
        return path.is_dir()
    except OSError:
        return False
