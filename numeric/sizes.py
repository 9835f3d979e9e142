"""One notation for network sizes, and the argument types of the command line.

``LAYERSxWIDTH`` means LAYERS hidden layers of WIDTH units: ``12x128`` is the paper's
network, 12 hidden layers of 128.  README, ``lowrank bench``, the plots, ``--hidden`` and
``lowrank reproduce results --hidden`` all use it.  A comma-separated list gives the
widths one by one (``256,128,64``: three layers).

A size is refused before anything is allocated when its network would hold more than
:data:`MAX_PARAMETERS` weights (counted for a 28 x 28 input and 10 classes, the smallest
input of the datasets), and a seed outside ``0 .. MAX_SEED`` is refused too.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

__all__ = [
    "MAX_PARAMETERS",
    "MAX_SEED",
    "describe_hidden",
    "hidden_arg",
    "hidden_phrase",
    "mlp_weights",
    "nonnegative_int",
    "parse_hidden",
    "positive_int",
    "positive_int_list",
    "seed_int",
    "swapped_size_warning",
    "uniform_hidden",
]

_SIZE = re.compile(r"(\d+)x(\d+)")

#: Most weights a network may hold: 10^9 take 8 GB as float64, and training keeps several
#: arrays of that size (gradient, direction, optimizer state).
MAX_PARAMETERS = 10**9
#: Largest seed: NumPy's and JAX's generators take seeds of 32 bits everywhere.
MAX_SEED = 2**32 - 1
#: The input and classes the parameter count assumes (MNIST's 28 x 28 pixels, 10 classes).
_D_IN, _CLASSES = 784, 10


def _bytes(n: int) -> str:
    """``12_704_000_000_000`` -> ``"12.7 TB"`` (decimal units; beyond PB in powers of ten)."""
    value = float(n)
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{float(n):.1e} bytes"


def mlp_weights(layers: int, width: int, d_in: int = _D_IN, classes: int = _CLASSES) -> int:
    """Weights of the mlp with ``layers`` hidden layers of ``width`` (no biases), without
    building the widths: ``d_in w + (layers - 1) w^2 + w classes``."""
    return d_in * width + (layers - 1) * width * width + width * classes


def _check_weights(count: int, text: str) -> None:
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"{text!r}: a network of {count:,} weights ({_bytes(8 * count)} as float64, for a "
            f"28 x 28 input and 10 classes); at most {MAX_PARAMETERS:,} "
            f"({_bytes(8 * MAX_PARAMETERS)}) are allowed"
        )


def uniform_hidden(layers: int, width: int, text: str | None = None) -> tuple[int, ...]:
    """``(width,) * layers`` after checking both are >= 1 and the weight count (``text``:
    the size as the user wrote it, for the message).

    Raises
    ------
    ValueError
        A zero, or more than :data:`MAX_PARAMETERS` weights.
    """
    text = f"{layers}x{width}" if text is None else text
    if layers < 1 or width < 1:
        raise ValueError(f"{text!r}: layers and widths must be at least 1")
    _check_weights(mlp_weights(layers, width), text)
    return (width,) * layers


def parse_hidden(text: str) -> tuple[int, ...]:
    """Hidden widths from ``LAYERSxWIDTH`` (``"12x128"``) or a list (``"256,128,64"``).

    Raises
    ------
    ValueError
        Any other form, a zero, or more than :data:`MAX_PARAMETERS` weights.
    """
    spec = text.strip().lower().replace(" ", "")
    match = _SIZE.fullmatch(spec)
    if match:
        return uniform_hidden(int(match[1]), int(match[2]), text)
    if not re.fullmatch(r"\d+(,\d+)*,?", spec):
        raise ValueError(
            f"{text!r} is not a size: use LAYERSxWIDTH (12x128: 12 hidden layers of 128) "
            "or a list of widths (256,128,64)"
        )
    widths = tuple(int(w) for w in spec.split(",") if w)
    if not widths or min(widths) < 1:
        raise ValueError(f"{text!r}: layers and widths must be at least 1")
    sizes = (_D_IN, *widths, _CLASSES)
    _check_weights(sum(a * b for a, b in zip(sizes, sizes[1:], strict=False)), text)
    return widths


def describe_hidden(hidden: Sequence[int]) -> str:
    """``(128,) * 12`` -> ``"12x128"``; unequal widths -> ``"256,128,64"``."""
    hidden = tuple(hidden)
    if len(set(hidden)) == 1:
        return f"{len(hidden)}x{hidden[0]}"
    return ",".join(str(h) for h in hidden)


def hidden_phrase(hidden: Sequence[int], kind: str = "") -> str:
    """In words: ``(128,) * 12`` -> ``"12 hidden layers of 128"``; unequal widths ->
    ``"3 hidden layers of widths 256, 128, 64"``; ``kind`` names the units (``"ReLU"``:
    ``"12 hidden ReLU layers of 128"``)."""
    hidden = tuple(hidden)
    noun = " ".join(w for w in ("hidden", kind, "layer" + "s" * (len(hidden) != 1)) if w)
    if len(set(hidden)) == 1:
        return f"{len(hidden)} {noun} of {hidden[0]}"
    return f"{len(hidden)} {noun} of widths {', '.join(map(str, hidden))}"


def swapped_size_warning(hidden: Sequence[int]) -> str | None:
    """A warning when equal widths come in more layers than units per layer (``128x12``
    is 128 layers of 12: likely ``12x128`` swapped); None otherwise."""
    hidden = tuple(hidden)
    if len(set(hidden)) != 1 or len(hidden) <= hidden[0]:
        return None
    return (
        f"{hidden_phrase(hidden)}: more layers than units per layer; LAYERSxWIDTH puts the "
        f"layers first ({hidden[0]} layers of {len(hidden)} is {hidden[0]}x{len(hidden)})"
    )


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


def seed_int(text: str) -> int:
    """``argparse`` type of a seed: an integer in ``0 .. MAX_SEED``."""
    value = _int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"a seed is an integer from 0 to {MAX_SEED} (2**32 - 1), got {value}"
        )
    return value


def positive_int_list(text: str) -> list[int]:
    """``argparse`` type: comma-separated integers >= 1 (``"8,16"``); ``""`` is none."""
    parts = [v for v in text.replace(" ", "").split(",") if v]
    if not all(re.fullmatch(r"\d+", v) and int(v) >= 1 for v in parts):
        raise argparse.ArgumentTypeError(
            f"takes comma-separated sizes of at least 1 like 8,16, got {text!r}"
        )
    return [int(v) for v in parts]
