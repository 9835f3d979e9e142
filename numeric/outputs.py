"""Checks of output paths, made before the work whose result they will hold.

A command that runs for minutes and only then finds that it cannot write its result
throws the work away; these checks let it refuse at once, with one line.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["OutputPathError", "check_output_dir", "check_output_file"]


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names it and says why."""


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.absolute().parents):
        if candidate.exists():
            return candidate
    return Path("/")  # pragma: no cover - the root always exists


def _check_creatable(path: Path, what: str) -> None:
    """``path`` does not exist: its nearest existing ancestor must be a writable directory."""
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise OutputPathError(f"{path}: cannot write the {what}, {base} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputPathError(f"{path}: cannot write the {what}, {base} is not writable")


def check_output_file(
    path: str | os.PathLike[str], what: str = "output", *, create_parents: bool = False
) -> Path:
    """Refuse a file path that cannot be written (a directory, under a file, read-only).

    With ``create_parents`` (the caller creates missing parent directories) those may be
    missing; without, the parent directory must exist.
    """
    path = Path(path)
    if not create_parents and not path.absolute().parent.is_dir():
        parent = path.absolute().parent
        why = "is a file" if parent.exists() else "does not exist"
        raise OutputPathError(f"{path}: cannot write the {what}, {parent} {why}")
    if path.is_dir():
        raise OutputPathError(f"{path}: is a directory; name a file for the {what}")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise OutputPathError(f"{path}: cannot write the {what}, the file is read-only")
        return path
    _check_creatable(path, what)
    return path


def check_output_dir(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Refuse a directory path that cannot hold output (a file, under a file, read-only)."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise OutputPathError(f"{path}: is a file; name a directory for the {what}")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputPathError(f"{path}: cannot write the {what}, the directory is read-only")
        return path
    _check_creatable(path, what)
    return path
