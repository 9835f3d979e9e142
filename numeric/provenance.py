"""Where a generated document's numbers come from: the code's commit and the versions.

One function, read by every generator of ``docs/`` (``lowrank reproduce results``,
``cnn``, ``rnn``, ``compare``), so that a page's header names the code that made it.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numpy as np

__all__ = ["commit", "versions"]


def commit() -> str:
    """The short commit of the source tree this package runs from, with ``+changes`` when
    its tracked files (other than ``docs/``, which the generators themselves rewrite)
    differ from it; ``"unknown commit"`` outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=10", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
             ".", ":(exclude)docs"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return f"commit {head}" + (" +changes" if dirty else "")


def versions() -> str:
    """``"commit abc; Python 3.11.7, NumPy 2.4.6"`` for a generated page's header."""
    return f"{commit()}; Python {platform.python_version()}, NumPy {np.__version__}"
