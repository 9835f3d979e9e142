"""Collapse diagnostics: the effective rank of the last hidden layer and of the logits.

The effective rank of a matrix ``M`` with singular values ``s_1 .. s_r`` is
``exp(H(p))`` with ``p_i = s_i / sum_j s_j`` and ``H(p) = -sum_i p_i log p_i`` (Roy and
Vetterli, 2007): ``1`` when one direction carries everything, ``r`` when all are equal.
:func:`collapse` measures it, on a fixed probe batch, for

* ``eff_rank``: the activations entering the output layer (the last hidden layer's
  output, shape ``(batch, width)``; a CNN's flattened features, an RNN's last state);
* ``eff_rank_logits``: the logits ``p`` (Eq 13) centred over the batch (each class's
  mean subtracted), so that a constant offset is not counted as a direction.

Training logs both at every evaluation row (columns of ``metrics.csv``).  The network
may hold NumPy or JAX arrays: the forward pass runs on its backend, the singular values
are computed with NumPy in float64.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from numeric.network import Network

__all__ = ["PROBE_ROWS", "Collapse", "collapse", "effective_rank"]

#: Rows of the probe batch: the first ``PROBE_ROWS`` rows of the evaluation split.
PROBE_ROWS = 512


class Collapse(NamedTuple):
    """The two effective ranks of :func:`collapse` (see the module docstring)."""

    eff_rank: float
    eff_rank_logits: float


def effective_rank(m) -> float:
    """``exp`` of the entropy of the normalised singular values of ``m`` (2-D).

    Returns 0.0 for a matrix that is exactly zero (no direction at all).
    """
    a = np.asarray(m, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"effective_rank takes a matrix, got shape {a.shape}")
    s = np.linalg.svd(a, compute_uv=False)
    total = s.sum()
    if not np.isfinite(total):
        return float("nan")
    if total == 0.0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def collapse(net: Network, x) -> Collapse:
    """Effective ranks of ``net``'s last hidden activations and centred logits on ``x``.

    Parameters
    ----------
    net : Network
        NumPy or JAX parameters.
    x : array, shape (batch, *in_shape) or (batch, prod(in_shape))
        The probe batch.
    """
    tape = net.forward(net.inputs(x), second=False)
    hidden = np.asarray(tape.inputs[-1], dtype=np.float64)
    hidden = hidden.reshape(hidden.shape[0], -1)
    logits = np.asarray(tape.p, dtype=np.float64)
    centred = logits - logits.mean(axis=0, keepdims=True)
    return Collapse(effective_rank(hidden), effective_rank(centred))
