"""Run-time support for the generated kernels (hand-written, NumPy only).

* :func:`einsum` caches the optimized contraction path per (subscripts, shapes),
  so every generated ``einsum`` runs through BLAS-backed pairwise contractions
  without paying for path search on each call (``np.einsum`` without
  ``optimize`` never uses BLAS; with ``optimize="greedy"`` it searches the path on
  every call).
* :func:`check_network` and friends raise clear ``ValueError``\\ s for bad input
  before any contraction runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["einsum", "eye", "check_network", "check_direction", "check_labels"]

_PATHS: dict[tuple, list] = {}


def einsum(subscripts: str, *operands: np.ndarray) -> np.ndarray:
    """``np.einsum`` with a greedy contraction path cached per operand shapes."""
    key = (subscripts, *(op.shape for op in operands))
    path = _PATHS.get(key)
    if path is None:
        path = np.einsum_path(subscripts, *operands, optimize="greedy")[0]
        _PATHS[key] = path
    return np.einsum(subscripts, *operands, optimize=path)


def eye(size: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """Identity matrix standing for a Kronecker delta of the index form."""
    return np.eye(size, dtype=dtype)


def _finite(name: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite entries")


def check_network(
    ws: Sequence[np.ndarray], u: np.ndarray, x: np.ndarray, check_finite: bool = True
) -> None:
    """Validate weights and inputs of the network of Eqs 10-13.

    Parameters
    ----------
    ws : sequence of ndarray
        ``ws[k-1]`` of shape ``(w_k, w_{k-1})``.
    u : ndarray, shape (classes, w_n)
    x : ndarray, shape (batch, d_in)
    check_finite : bool
        Also reject NaN and infinite entries.

    Raises
    ------
    ValueError
        On a wrong number of axes, mismatched layer widths or non-finite entries.
    """
    if len(ws) == 0:
        raise ValueError("the network needs at least one hidden layer (ws is empty)")
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (batch, d_in); got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("x holds no samples (batch size 0)")
    width = x.shape[1]
    for k, w in enumerate(ws, start=1):
        w = np.asarray(w)
        if w.ndim != 2:
            raise ValueError(f"ws[{k - 1}] (layer {k}) must be 2-D (w_k, w_k-1); got {w.shape}")
        if w.shape[1] != width:
            raise ValueError(
                f"layer widths do not match: ws[{k - 1}] (layer {k}) has shape {w.shape}, "
                f"expected (w_{k}, {width}) to take the {width} outputs of layer {k - 1}"
            )
        width = w.shape[0]
    u = np.asarray(u)
    if u.ndim != 2 or u.shape[1] != width:
        raise ValueError(f"u must have shape (classes, {width}); got {u.shape}")
    if check_finite:
        _finite("x", x)
        for k, w in enumerate(ws, start=1):
            _finite(f"ws[{k - 1}] (layer {k})", w)
        _finite("u", u)


def check_direction(
    ws: Sequence[np.ndarray], u: np.ndarray, omega: np.ndarray, phis: Sequence[np.ndarray]
) -> None:
    """Validate a direction ``(omega, phis)`` against the weights it moves."""
    if len(phis) != len(ws):
        raise ValueError(f"direction has {len(phis)} hidden blocks, the network {len(ws)}")
    if np.shape(omega) != np.shape(u):
        raise ValueError(f"omega must have the shape of u {np.shape(u)}; got {np.shape(omega)}")
    for k, (phi, w) in enumerate(zip(phis, ws, strict=True), start=1):
        if np.shape(phi) != np.shape(w):
            raise ValueError(
                f"phis[{k - 1}] must have the shape of ws[{k - 1}] {np.shape(w)}; "
                f"got {np.shape(phi)}"
            )
    _finite("omega", np.asarray(omega))
    for k, phi in enumerate(phis):
        _finite(f"phis[{k}]", np.asarray(phi))


def check_labels(y: np.ndarray, batch: int, classes: int) -> None:
    """Validate label rows ``y`` of shape ``(batch, classes)``."""
    y = np.asarray(y)
    if y.shape != (batch, classes):
        raise ValueError(f"y must have shape ({batch}, {classes}) (one-hot rows); got {y.shape}")
    _finite("y", y)
