"""The :class:`Dataset` container and the :func:`one_hot` helper."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Dataset", "one_hot"]


def _readonly(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Dataset:
    """An in-memory labelled image dataset, flattened to rows.

    Parameters
    ----------
    x : np.ndarray, shape (N, D), float32
        One flattened image per row, pixel values in ``[0, 1]``. ``D`` equals
        ``prod(image_shape)``; the flattening is C order over ``image_shape``
        (for CIFAR-10, ``image_shape = (3, 32, 32)``: channel-major, all red pixels
        first, then green, then blue, each plane row-major).
    labels : np.ndarray, shape (N,), int64
        Class index of each row, in ``[0, classes)``.
    classes : int
        Number of classes ``c``.
    image_shape : tuple of int
        Shape of one image before flattening, e.g. ``(28, 28)`` or ``(3, 32, 32)``.
    name : str
        Canonical dataset name (``"mnist-embedded"``, ``"mnist"``, ``"fashion-mnist"``,
        ``"cifar10"``).
    source : str
        Human-readable description of where the data was read from.
    split : str
        ``"train"`` or ``"test"``.
    class_names : tuple of str
        Optional names of the classes (empty or of length ``classes``).
    files : tuple of str
        The files the rows were read from (empty for data built in memory); training
        runs record them in ``config.json``.

    Notes
    -----
    The arrays are stored as read-only views; copy them before modifying. Inputs of
    another dtype are converted to float32 / int64. Labels as one-hot rows (the
    ``y`` of ``docs/conventions.md``) are available through :meth:`y` or
    :func:`one_hot`.
    """

    x: np.ndarray
    labels: np.ndarray
    classes: int
    image_shape: tuple[int, ...]
    name: str
    source: str
    split: str = "train"
    class_names: tuple[str, ...] = field(default=())
    files: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        x = np.asarray(self.x, dtype=np.float32)
        labels = np.asarray(self.labels)
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        labels = labels.astype(np.int64, copy=False)
        image_shape = tuple(int(s) for s in self.image_shape)
        classes = int(self.classes)
        if x.ndim != 2:
            raise ValueError(f"x must have shape (N, D), got {x.shape}")
        if labels.shape != (x.shape[0],):
            raise ValueError(f"labels must have shape ({x.shape[0]},), got {labels.shape}")
        if int(np.prod(image_shape, dtype=np.int64)) != x.shape[1]:
            raise ValueError(f"image_shape {image_shape} does not match row length {x.shape[1]}")
        if classes < 1:
            raise ValueError(f"classes must be positive, got {classes}")
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(
                f"labels must lie in [0, {classes}), found range [{labels.min()}, {labels.max()}]"
            )
        names = tuple(str(n) for n in self.class_names)
        if names and len(names) != classes:
            raise ValueError(f"class_names has {len(names)} entries, expected {classes}")
        object.__setattr__(self, "x", _readonly(x))
        object.__setattr__(self, "labels", _readonly(labels))
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "image_shape", image_shape)
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "files", tuple(str(f) for f in self.files))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def dim(self) -> int:
        """Row length ``D = prod(image_shape)``."""
        return int(self.x.shape[1])

    def y(self, dtype: np.dtype | type = np.float32) -> np.ndarray:
        """One-hot labels, shape ``(N, classes)``; see :func:`one_hot`."""
        return one_hot(self.labels, self.classes, dtype=dtype)

    def images(self) -> np.ndarray:
        """The rows reshaped to images, shape ``(N, *image_shape)`` (a read-only view)."""
        return self.x.reshape((len(self), *self.image_shape))

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gather rows.

        Parameters
        ----------
        indices : np.ndarray, shape (B,), int

        Returns
        -------
        x : np.ndarray, shape (B, D), float32
        labels : np.ndarray, shape (B,), int64
        """
        idx = np.asarray(indices, dtype=np.intp)
        return self.x[idx], self.labels[idx]

    def subset(self, indices: np.ndarray, split: str | None = None) -> Dataset:
        """A new :class:`Dataset` holding the rows ``indices`` (copied), same metadata."""
        x, labels = self.batch(indices)
        return Dataset(
            x=x,
            labels=labels,
            classes=self.classes,
            image_shape=self.image_shape,
            name=self.name,
            source=self.source,
            split=self.split if split is None else split,
            class_names=self.class_names,
            files=self.files,
        )

    def describe(self) -> dict[str, object]:
        """What a run records about its data: name, split, size, source and files."""
        return {
            "name": self.name,
            "split": self.split,
            "n": len(self),
            "classes": self.classes,
            "image_shape": list(self.image_shape),
            "source": self.source,
            "files": list(self.files),
            "digest": self.digest(),
        }

    def digest(self) -> str:
        """SHA-256 of the images and labels as loaded (what a resumed run checks)."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.x).tobytes())
        h.update(np.ascontiguousarray(self.labels).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"image_shape={self.image_shape}, classes={self.classes}, source={self.source!r})"
        )


def one_hot(labels: np.ndarray, classes: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """One-hot encode integer labels.

    Parameters
    ----------
    labels : array_like, shape (N,), int
        Class indices in ``[0, classes)``.
    classes : int
        Number of classes ``c``.
    dtype : numpy dtype, optional
        Output dtype (default float32).

    Returns
    -------
    np.ndarray, shape (N, classes)
        Row ``b`` is zero except for a one in column ``labels[b]``.

    Raises
    ------
    ValueError
        If ``labels`` is not 1-D integer data or holds a value outside ``[0, classes)``.
    """
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {lab.shape}")
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {lab.dtype}")
    classes = int(classes)
    if classes < 1:
        raise ValueError(f"classes must be positive, got {classes}")
    lab = lab.astype(np.int64, copy=False)
    if lab.size and (lab.min() < 0 or lab.max() >= classes):
        raise ValueError(
            f"labels must lie in [0, {classes}), found range [{lab.min()}, {lab.max()}]"
        )
    out = np.zeros((lab.shape[0], classes), dtype=dtype)
    out[np.arange(lab.shape[0]), lab] = 1
    return out
