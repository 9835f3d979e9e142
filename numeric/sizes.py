"""One notation for network sizes, and the argument types of the command line.

``LAYERSxWIDTH`` means LAYERS hidden layers of WIDTH units: ``12x128`` is the paper's
network, 12 hidden layers of 128.  README, ``lowrank bench``, the plots, ``--hidden`` and
``lowrank reproduce results --hidden`` all use it.  A comma-separated list gives the
widths one by one (``256,128,64``: three layers).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

__all__ = [
    "describe_hidden",
    "hidden_arg",
    "nonnegative_int",
    "parse_hidden",
    "positive_int",
]

_SIZE = re.compile(r"(\d+)x(\d+)")


def parse_hidden(text: str) -> tuple[int, ...]:
    """Hidden widths from ``LAYERSxWIDTH`` (``"12x128"``) or a list (``"256,128,64"``).

    Raises
    ------
    ValueError
        Any other form, or a zero.
    """
    spec = text.strip().lower().replace(" ", "")
    match = _SIZE.fullmatch(spec)
    if match:
        layers, width = int(match[1]), int(match[2])
        widths: tuple[int, ...] = (width,) * layers
    elif re.fullmatch(r"\d+(,\d+)*,?", spec):
        widths = tuple(int(w) for w in spec.split(",") if w)
    else:
        raise ValueError(
            f"{text!r} is not a size: use LAYERSxWIDTH (12x128: 12 hidden layers of 128) "
            "or a list of widths (256,128,64)"
        )
    if not widths or min(widths) < 1:
        raise ValueError(f"{text!r}: layers and widths must be at least 1")
    return widths


def describe_hidden(hidden: Sequence[int]) -> str:
    """``(128,) * 12`` -> ``"12x128"``; unequal widths -> ``"256,128,64"``."""
    hidden = tuple(hidden)
    if len(set(hidden)) == 1:
        return f"{len(hidden)}x{hidden[0]}"
    return ",".join(str(h) for h in hidden)


def hidden_arg(text: str) -> tuple[int, ...]:
    """``argparse`` type of ``--hidden`` (a bad value is a usage error, exit 2)."""
    try:
        return parse_hidden(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """``argparse`` type: an integer >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value
