"""Error type raised by the dataset loaders."""

from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A dataset file is missing, truncated, corrupted or not in the expected format.

    The message always names the offending file (or directory) and states what was
    expected, e.g. ``"train-images-idx3-ubyte.gz: expected magic 2051 (uint8 images,
    3 dims), found 2049"``.
    """
