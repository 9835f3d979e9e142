"""CIFAR-10 from the standard ``cifar-10-batches-py`` directory (supplied by the user).

The directory (extracted from ``cifar-10-python.tar.gz``) holds the Python pickles
``data_batch_1`` ... ``data_batch_5`` (training, 10,000 images each), ``test_batch``
(10,000 images) and ``batches.meta``. Each batch is a dict with ``b"data"``, a
``(N, 3072)`` uint8 array whose rows are 32x32 colour images stored channel-major (1024
red values, then 1024 green, then 1024 blue, each plane row-major), and ``b"labels"``, a
list of N ints in ``0..9``. ``batches.meta`` holds ``b"label_names"``.

The pickles are read with a restricted unpickler that only resolves the NumPy array
constructors such files need, so a tampered file cannot run code.
"""

from __future__ import annotations

import codecs
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import Dataset
from .errors import DatasetError
from .paths import data_dir, is_dir

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_DIRNAME",
    "CIFAR10_FILES",
    "resolve_cifar10_dir",
    "read_cifar10_batch",
    "read_cifar10_meta",
    "load_cifar10",
]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_DIRNAME = "cifar-10-batches-py"
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = ("test_batch",)
_META = "batches.meta"
#: Files of the standard directory, per split (plus the shared ``batches.meta``).
CIFAR10_FILES: dict[str, tuple[str, ...]] = {"train": _TRAIN, "test": _TEST}
_ROW = 3 * 32 * 32
_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


def _numpy_globals() -> dict[tuple[str, str], Any]:
    a = np.zeros(2, dtype=np.uint8)
    reconstruct = a.__reduce__()[0]
    frombuffer = a.__reduce_ex__(5)[0]
    scalar = np.float64(0.0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes pickled by Python 3 at protocol < 3
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


_ALLOWED = _numpy_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name} (only NumPy arrays are allowed)"
            ) from None


def _unpickle(path: Path) -> dict[Any, Any]:
    try:
        with path.open("rb") as f:
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found; {_expected()}") from None
    except OSError as exc:  # permissions, a directory in its place, I/O errors
        raise DatasetError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    except Exception as exc:  # a damaged pickle can raise nearly anything
        raise DatasetError(
            f"{path}: truncated or corrupted pickle; expected a CIFAR-10 python batch "
            f"(a dict with b'data' and b'labels') ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return obj


def _get(d: dict[Any, Any], key: str, path: Path) -> Any:
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise DatasetError(f"{path}: missing key b'{key}' (keys: {sorted(map(repr, d))})")


def _expected() -> str:
    return f"expected files {', '.join(_TRAIN + _TEST)} and {_META}"


def read_cifar10_batch(path: str | Path, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one CIFAR-10 batch file.

    Parameters
    ----------
    path : str or Path
        A ``data_batch_i`` or ``test_batch`` pickle.
    classes : int
        Labels must lie in ``[0, classes)``.

    Returns
    -------
    data : np.ndarray, shape (N, 3072), uint8
        Channel-major rows, as stored.
    labels : np.ndarray, shape (N,), int64

    Raises
    ------
    DatasetError
        Missing, truncated or corrupted file, or contents not in the CIFAR-10 format.
    """
    path = Path(path)
    d = _unpickle(path)
    data = _get(d, "data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        desc = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise DatasetError(f"{path}: b'data' must be a uint8 array (N, {_ROW}), found {desc}")
    if data.shape[1] != _ROW:
        raise DatasetError(
            f"{path}: b'data' rows must hold {_ROW} values (3x32x32), found {data.shape[1]}"
        )
    raw = _get(d, "labels", path)
    try:
        labels = np.asarray(raw)
    except (ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: b'labels' is not a list of ints ({exc})") from exc
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise DatasetError(f"{path}: b'labels' must be a list of ints, found {labels.dtype}")
    if labels.shape[0] != data.shape[0]:
        raise DatasetError(
            f"{path}: {labels.shape[0]} labels but {data.shape[0]} images; the counts must agree"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise DatasetError(
            f"{path}: labels must lie in [0, {classes}), found [{labels.min()}, {labels.max()}]"
        )
    return data, labels.astype(np.int64)


def read_cifar10_meta(path: str | Path) -> tuple[str, ...]:
    """Class names from ``batches.meta`` (its ``b"label_names"``)."""
    path = Path(path)
    d = _unpickle(path)
    names = _get(d, "label_names", path)
    if not isinstance(names, list | tuple) or not all(isinstance(n, bytes | str) for n in names):
        raise DatasetError(f"{path}: b'label_names' must be a list of strings")
    out = tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names)
    if len(out) != len(CIFAR10_CLASSES):
        raise DatasetError(f"{path}: expected {len(CIFAR10_CLASSES)} label names, found {len(out)}")
    return out


def _supply_hint() -> str:
    return (
        f"CIFAR-10 is not bundled and not downloaded automatically: the files must be "
        f"supplied by the user. Download cifar-10-python.tar.gz from {_URL}, extract it, "
        f"and pass path= naming the extracted {CIFAR10_DIRNAME} directory (or its parent), "
        f"or put that directory at {data_dir() / CIFAR10_DIRNAME}; {_expected()}"
    )


def resolve_cifar10_dir(path: str | Path | None = None) -> Path:
    """The ``cifar-10-batches-py`` directory for ``path``.

    Parameters
    ----------
    path : str or Path, optional
        The directory itself or its parent; default ``data_dir() / "cifar-10-batches-py"``.

    Raises
    ------
    DatasetError
        If no such directory exists (the message explains how to supply the files).
    """
    base = Path(path).expanduser() if path is not None else data_dir() / CIFAR10_DIRNAME
    if is_dir(base / CIFAR10_DIRNAME):
        base = base / CIFAR10_DIRNAME
    if not is_dir(base):
        raise DatasetError(f"{base}: CIFAR-10 directory not found. {_supply_hint()}")
    return base


def load_cifar10(path: str | Path | None = None, split: str = "train") -> Dataset:
    """CIFAR-10 (50,000 train / 10,000 test colour images, 10 classes).

    Parameters
    ----------
    path : str or Path, optional
        The ``cifar-10-batches-py`` directory or its parent; see :func:`resolve_cifar10_dir`.
    split : {"train", "test"}
        ``"train"`` concatenates ``data_batch_1`` ... ``data_batch_5`` in order.

    Returns
    -------
    Dataset
        ``x`` of shape ``(N, 3072)`` float32 in ``[0, 1]`` (pixel / 255), channel-major
        rows as stored (``x.reshape(N, 3, 32, 32)`` gives channel, row, column);
        ``labels`` of shape ``(N,)`` int64; ``image_shape = (3, 32, 32)``; class names
        from ``batches.meta``.

    Raises
    ------
    DatasetError
        Directory or a file missing, or a file truncated, corrupted or malformed.
    """
    if split not in CIFAR10_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = resolve_cifar10_dir(path)
    names = CIFAR10_FILES[split]
    try:
        present = set(os.listdir(directory))
    except OSError as exc:
        raise DatasetError(
            f"{directory}: cannot read the directory ({exc.strerror or exc})"
        ) from exc
    missing = [n for n in (*names, _META) if n not in present]
    if missing:
        raise DatasetError(f"{directory}: missing {', '.join(missing)}. {_supply_hint()}")
    class_names = read_cifar10_meta(directory / _META)
    parts = [read_cifar10_batch(directory / n) for n in names]
    n_total = sum(p[0].shape[0] for p in parts)
    x = np.empty((n_total, _ROW), dtype=np.float32)
    start = 0
    for data, _ in parts:
        stop = start + data.shape[0]
        np.divide(data, np.float32(255.0), out=x[start:stop], dtype=np.float32)
        start = stop
    labels = np.concatenate([p[1] for p in parts])
    return Dataset(
        x=x,
        labels=labels,
        classes=10,
        image_shape=(3, 32, 32),
        name="cifar10",
        source=str(directory),
        split=split,
        class_names=class_names,
        files=tuple(str(directory / n) for n in names),
    )
