"""The diagonal metric of scale-invariant CR (V1, V2) and the running RMS that stands in
for it where a base optimizer's state is hidden (an optax chain)."""

from __future__ import annotations

from collections.abc import Sequence

from numeric.kernels import cr_variants as kv
from numeric.kernels._runtime import namespace

__all__ = ["RMS_BETA2", "RMS_EPS", "metric_sq_norm", "rms_metric", "rms_update"]

#: Second-moment decay and epsilon of the scale-invariant metric (Adam's defaults).
RMS_BETA2 = 0.999
RMS_EPS = 1e-8


def rms_update(v: Sequence, grads: Sequence, beta2: float = RMS_BETA2) -> list:
    """The running mean of the squared gradient: ``v <- beta2 v + (1 - beta2) g^2``."""
    return [beta2 * vi + (1.0 - beta2) * (g * g) for vi, g in zip(v, grads, strict=True)]


def rms_metric(v: Sequence, count, beta2: float = RMS_BETA2, eps: float = RMS_EPS) -> list:
    """``M = sqrt(v / (1 - beta2^count)) + eps`` per entry (``count >= 1`` updates)."""
    xp = namespace(*v)
    correction = 1.0 - beta2**count
    return [xp.sqrt(vi / correction) + eps for vi in v]


def metric_sq_norm(direction: Sequence, metric: Sequence):
    """``||d||_M^2 = sum_i M_i d_i^2`` (V1), each array as a 2-D block for the kernel."""
    total = 0.0
    for d, m in zip(direction, metric, strict=True):
        xp = namespace(d)
        shape = (d.shape[0], -1) if d.ndim else (1, 1)
        total = total + kv.v1_metric_sq_norm_w(
            phi_k=xp.reshape(d, shape), metw_k=xp.reshape(xp.asarray(m, dtype=d.dtype), shape)
        )
    return total
