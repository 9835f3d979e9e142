"""Run directories as a small storage engine: one writer, atomic files, clear refusals.

A run directory holds ``config.json``, ``metrics.csv``, ``summary.json`` and
``checkpoints/ckpt-XXXXXX.npz`` (:mod:`numeric.training` says what is in them), plus
the lock file ``.lock``.  This module knows how to

* tell what a directory holds (:func:`directory_state`): nothing, a run, or something
  else, which a new run refuses to touch unless asked to overwrite it;
* create it with a one-line error when that is impossible (:func:`create_directory`);
* give one process at a time the right to write (:func:`run_lock`, an exclusive
  ``filelock`` on ``.lock``; a second process gets :class:`RunLocked` at once);
* replace files atomically (:func:`atomic_write`: a temporary file in the same directory,
  flushed, synced and renamed over the old one), with the permissions the user's umask
  gives a new file (not the 0600 of ``tempfile.mkstemp``);
* read ``config.json`` and ``summary.json`` with errors that name the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKPOINT_PATTERN",
    "LOCK_NAME",
    "RUN_FILES",
    "RunDirError",
    "RunLocked",
    "atomic_write",
    "clear_run_files",
    "create_directory",
    "directory_state",
    "read_json",
    "refuse_links",
    "remove_temporaries",
    "run_lock",
    "write_json",
]

#: The lock file of a run directory (ignored when deciding whether a directory is empty).
LOCK_NAME = ".lock"
#: Files a run writes at its top level.
RUN_FILES = ("config.json", "metrics.csv", "summary.json")
#: Names of the checkpoints a run writes (others in ``checkpoints/`` are left alone).
CHECKPOINT_PATTERN = re.compile(r"ckpt-\d{6,}\.npz")


class RunDirError(ValueError):
    """A run directory cannot be used as asked; the message names the path and says why."""


class RunLocked(RunDirError):
    """Another process holds the run directory's lock."""


# ------------------------------------------------------------------------------ files


def refuse_links(run: Path) -> None:
    """``RunDirError`` when a file a run writes is a symbolic link (a run branched with
    ``cp -rs``): appending to it would change the run it points to."""
    run = Path(run)
    names = [run / n for n in RUN_FILES] + [run / "checkpoints"]
    ckpts = run / "checkpoints"
    if ckpts.is_dir() and not ckpts.is_symlink():
        names += [p for p in ckpts.iterdir() if CHECKPOINT_PATTERN.fullmatch(p.name)]
    linked = [p for p in names if p.is_symlink()]
    if linked:
        shown = ", ".join(str(p.relative_to(run)) for p in linked[:4])
        raise RunDirError(
            f"{run}: {shown} {'is a symbolic link' if len(linked) == 1 else 'are symbolic links'}"
            "; a run directory must own its files (copy the run with `cp -r`, not `cp -rs`)"
        )


def remove_temporaries(run: Path) -> list[Path]:
    """Remove the temporary files of :func:`atomic_write` left by a writer that was killed
    (call it holding the run's lock: no live writer has one open).  Returns them."""
    run = Path(run)
    found = []
    for folder in (run, run / "checkpoints"):
        if folder.is_dir():
            found += sorted(folder.glob(".*.tmp"))
    for path in found:
        with contextlib.suppress(OSError):
            path.unlink()
    return found


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (readers see the old or the new file).

    The temporary file is created with mode ``0o666`` filtered by the umask, like any
    new file, so run files are as readable as the user's other files.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort; not every system allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: Path, obj: Any) -> None:
    """:func:`atomic_write` of ``obj`` as indented JSON (no NaN: use None)."""
    atomic_write(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def read_json(path: Path) -> Any:
    """The JSON in ``path``.

    Raises
    ------
    RunDirError
        The file is missing, unreadable or not valid JSON (the message names it).
    """
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise RunDirError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: cannot read the file ({exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunDirError(
            f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "restore the file or start a new run"
        ) from exc


# -------------------------------------------------------------------------- directory


def directory_state(run: Path) -> str:
    """What ``run`` holds.

    Returns
    -------
    str
        ``"absent"`` (no such path), ``"empty"`` (a directory with nothing but possibly
        the lock file), ``"run"`` (a directory with ``config.json``) or ``"other"``
        (a directory with other files: not ours to overwrite silently).

    Raises
    ------
    RunDirError
        ``run`` is a file, lies under a file, or cannot be read.
    """
    run = Path(run)
    try:
        names = set(os.listdir(run))
    except FileNotFoundError:
        _check_parents(run)
        return "absent"
    except NotADirectoryError:
        if run.is_file():
            raise RunDirError(f"{run}: is a file, not a run directory") from None
        _check_parents(run)
        raise RunDirError(f"{run}: not a directory") from None
    except OSError as exc:
        raise RunDirError(f"{run}: cannot read the directory ({exc.strerror or exc})") from exc
    names.discard(LOCK_NAME)
    if not names:
        return "empty"
    return "run" if "config.json" in names else "other"


def _check_parents(run: Path) -> None:
    """Refuse a path under a file (``mkdir`` would fail later, after work was done)."""
    for parent in run.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(f"{run}: cannot create it, {parent} is a file")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise RunDirError(f"{run}: cannot create it, {parent} is not writable")
            return


def create_directory(run: Path) -> None:
    """``mkdir -p run``, and check that files can be created in it.

    Raises
    ------
    RunDirError
        It lies under a file, or the directory cannot be created or written to.
    """
    run = Path(run)
    try:
        run.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunDirError(f"{run}: cannot create it, a file is in the way") from None
    except OSError as exc:
        raise RunDirError(f"{run}: cannot create the directory ({exc.strerror or exc})") from exc
    probe = run / f".write-test.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"{run}: cannot write in the directory ({exc.strerror or exc})") from exc


def clear_run_files(run: Path) -> None:
    """Remove what a run writes (its top-level files and its own checkpoints); nothing
    else in the directory is touched."""
    for name in RUN_FILES:
        with contextlib.suppress(FileNotFoundError):
            (run / name).unlink()
    ckdir = run / "checkpoints"
    if ckdir.is_dir():
        for path in ckdir.iterdir():
            if CHECKPOINT_PATTERN.fullmatch(path.name):
                path.unlink()


@contextlib.contextmanager
def run_lock(run: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``run`` (which must exist) for the ``with`` block.

    Raises
    ------
    RunLocked
        Another process holds it; nothing waits.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(Path(run) / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunLocked(
            f"{run} is in use by another process (it holds {Path(run) / LOCK_NAME}); "
            "wait for that process to finish or stop it, then try again"
        ) from None
    except OSError as exc:
        raise RunDirError(f"{run}: cannot create the lock file ({exc.strerror or exc})") from exc
    try:
        yield
    finally:
        lock.release()
