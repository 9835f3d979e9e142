"""The math of the CR variants, backend-generic: NumPy arrays, JAX arrays, ``jax.jit``.

:class:`numeric.cr.CR` (``variant=...``, ``every=...``) and
:func:`numeric.optax.scale_by_cr` share these functions; each runs in the namespace of
its arrays (:func:`numeric.kernels._runtime.namespace`).

``"paper"``
    Eq 37 along the base direction ``d`` (Section 3.1).
``"adaptive"``
    Eq 37 with ``sigma`` adapted by the ARC rule (Cartis, Gould and Toint; Kohler and
    Lucchi's sub-sampled CR): one forward pass at the trial point ``theta + alpha d`` on
    the same batch gives the actual decrease (V4, from the logits), the model predicts
    V3; ``rho = actual / predicted``.  The step is taken when ``rho >= eta1`` (else
    flagged ``"rejected"``, weights unchanged), and ``sigma`` shrinks by ``gamma`` when
    ``rho > eta2`` and grows by ``gamma`` on a rejection (V5, :class:`ARC`).
``"scale-invariant"``
    Eq 37 with the cubic term measured in the base optimizer's own diagonal metric
    (V1, V2): ``||d||_M^2 = sum_i M_i d_i^2`` with ``M`` the inverse of the base's
    diagonal preconditioner (:meth:`numeric.optimizers.Optimizer.metric`: the identity
    for SGD, where this is the paper's CR; ``sqrt(acc)`` for Adagrad;
    ``(sqrt(v) + eps) / scale_t`` for Adam).  ``M`` does not depend on the direction,
    so ``alpha d`` does not change when ``d`` is rescaled (as for Eq 37); what changes
    is the length the cubic term charges: Adam's sign-like direction has a large
    Euclidean norm (the issue: about 162) but a modest one in its own metric.  The
    scalars V2 reads are invariant under a diagonal change of coordinates when ``M``
    transforms as a metric.  An optax chain hides its base's state:
    :func:`numeric.optax.scale_by_cr` keeps the gradient's running RMS
    (:func:`rms_update`, :func:`rms_metric`; Adam's metric) or takes the identity.
``"per-layer"``
    One ``alpha_k`` per layer from the layer's block of the Hessian (C45-C46,
    :func:`numeric.curvature.block_curvature`).
``"per-variable"``
    One ``alpha_i`` per weight from the exact Hessian diagonal (Table 2 corrected, C21,
    C42-C44, :func:`numeric.curvature.hessian_diagonal`) along the base direction's
    component ``d_i e_i`` (V6; only the sign of ``d_i`` matters).

Multi-length steps (per-layer, per-variable) carry one flag: ``"nonfinite"`` if any
length is, else ``"nondescent"`` if any block or weight falls back, else ``"zero"`` if
all are zero, else ``""``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from numeric import curvature as cv
from numeric.kernels import cr_variants as kv
from numeric.kernels._runtime import namespace
from numeric.kernels.cubic_regularization import cr_step_length
from numeric.stepping import FLAGS

__all__ = [
    "ARC",
    "RMS_BETA2",
    "RMS_EPS",
    "VARIANTS",
    "adaptive_outcome",
    "combine_flags",
    "least_squares_scale",
    "metric_sq_norm",
    "per_variable_lengths",
    "rms_metric",
    "rms_update",
    "step_lengths",
]

#: The variants of CR (module docstring).
VARIANTS = ("paper", "adaptive", "scale-invariant", "per-layer", "per-variable")
#: Second-moment decay and epsilon of the scale-invariant metric (Adam's defaults).
RMS_BETA2 = 0.999
RMS_EPS = 1e-8


@dataclass(frozen=True)
class ARC:
    """Parameters of the adaptive rule (V5): thresholds ``eta1 <= eta2``, factor ``gamma``
    and the bounds of ``sigma``.

    ``sigma_min``, ``sigma_max`` default to ``sigma0 / 100`` and ``sigma0 * 1e6`` of the
    initial ``sigma0`` (:meth:`for_sigma`).  The floor matters on mini-batches: the ratio
    measures the decrease of the batch that chose the step, so a step that fits its batch
    well is "very successful" and, without a floor, ``sigma`` halves until the step is
    the Newton step along ``d`` of each batch (measured on the 12x128 MLP: ``sigma``
    reached any floor within 300 steps, and from the normal start the loss then rose).
    """

    eta1: float = 0.1
    eta2: float = 0.9
    gamma: float = 2.0
    sigma_min: float | None = None
    sigma_max: float | None = None

    def __post_init__(self) -> None:
        if not (0.0 < self.eta1 <= self.eta2 < 1.0):
            raise ValueError(f"need 0 < eta1 <= eta2 < 1, got {self.eta1}, {self.eta2}")
        if not self.gamma > 1.0:
            raise ValueError(f"gamma must be > 1, got {self.gamma}")
        lo = 0.0 if self.sigma_min is None else self.sigma_min
        hi = math.inf if self.sigma_max is None else self.sigma_max
        if not (lo >= 0.0 and lo < hi) or (self.sigma_min is not None and lo <= 0.0):
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, "
                             f"{self.sigma_max}")  # fmt: skip

    def for_sigma(self, sigma0: float) -> ARC:
        """The rule with its bounds resolved for the initial ``sigma0``."""
        lo = sigma0 / 100.0 if self.sigma_min is None else self.sigma_min
        hi = sigma0 * 1e6 if self.sigma_max is None else self.sigma_max
        return replace(self, sigma_min=float(lo), sigma_max=float(hi))


def step_lengths(gtg, ghg, sigma, norm3, fallback, nondescent: str = "base"):
    """Eq 37 (C8) with the flags of :mod:`numeric.cr`, element-wise, in the arrays'
    namespace; ``sigma`` may be an array (adaptive CR).

    Returns ``(alpha, flags)``: finite, ``>= 0``; indices into :data:`FLAGS`.
    """
    xp = namespace(gtg, ghg, norm3, sigma)
    if xp is np:
        gtg = np.asarray(gtg, dtype=np.float64)
        ghg = np.asarray(ghg, dtype=np.float64)
        norm3 = np.asarray(norm3, dtype=np.float64)
    c = sigma * norm3
    finite = xp.isfinite(gtg) & xp.isfinite(ghg) & xp.isfinite(norm3)
    zero = finite & ((norm3 <= 0.0) | (c == 0.0))
    nondesc = finite & ~zero & (gtg >= 0.0)
    a = cr_step_length(ghg, gtg, sigma, norm3)
    return _settle(xp, a, finite, zero, nondesc, fallback, nondescent)


def _settle(xp, a, finite, zero, nondesc, fallback, nondescent: str):
    """``(alpha, flags)`` from Eq 37's roots ``a`` and the masks of the inputs: a regular
    entry keeps a finite positive root, a non-finite one (input or root) takes
    ``fallback``, a non-descent one ``fallback`` or 0 (``nondescent``), a zero direction
    0.  ``zero`` and ``nondesc`` hold only where ``finite`` does."""
    regular = finite & ~zero & ~nondesc
    bad = regular & ~(xp.isfinite(a) & (a > 0.0))
    ok = regular & ~bad
    alpha = xp.where(ok, a, 0.0)
    alpha = xp.where(~finite | bad, fallback, alpha)
    alpha = xp.where(nondesc, fallback if nondescent == "base" else 0.0, alpha)
    flags = xp.where(nondesc, FLAGS.index("nondescent"), 0)
    flags = xp.where(zero, FLAGS.index("zero"), flags)
    flags = xp.where(~finite | bad, FLAGS.index("nonfinite"), flags)
    return alpha, flags


def combine_flags(flags: Sequence):
    """One flag index for a step of many lengths (module docstring)."""
    xp = namespace(*flags)
    flat = xp.concatenate([xp.reshape(xp.asarray(f), (-1,)) for f in flags])
    out = xp.where(xp.all(flat == FLAGS.index("zero")), FLAGS.index("zero"), 0)
    out = xp.where(xp.any(flat == FLAGS.index("nondescent")), FLAGS.index("nondescent"), out)
    return xp.where(xp.any(flat == FLAGS.index("nonfinite")), FLAGS.index("nonfinite"), out)


def least_squares_scale(update: Sequence, direction: Sequence):
    """The scalar ``s`` with ``s d`` closest to the update: ``<update, d> / ||d||^2``."""
    sq = cv.sq_norm(direction)
    xp = namespace(sq)
    proj = cv.dot(update, direction)
    if xp is np and not isinstance(sq, np.ndarray):
        return proj / sq if sq > 0 else 0.0
    return xp.where(sq > 0, proj / xp.where(sq > 0, sq, 1.0), 0.0)


# ------------------------------------------------------------------ scale-invariant
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


# ------------------------------------------------------------------ adaptive
def adaptive_outcome(alpha, flag, gtg, c, actual, sigma, arc: ARC):
    """Accept or reject a trial step and update ``sigma`` (V3, V5).

    Parameters
    ----------
    alpha, flag : the step length of Eq 37 and its flag index.
    gtg : ``d^T grad F``; ``c``: ``sigma ||d||^3``.
    actual : ``F(theta) - F(theta + alpha d)`` on the batch (V4).
    sigma : the current cubic weight.

    Returns
    -------
    applied : the step length taken (``alpha``, or 0 when rejected).
    new_sigma : V5's update (unchanged for flagged steps, which are not tested).
    flag : the flag index, ``"rejected"`` for a rejected regular step.
    rho : ``actual / predicted`` (``-inf`` where the prediction is not positive).
    """
    xp = namespace(alpha, gtg, c, actual, sigma, flag)
    flag = xp.asarray(flag)
    predicted = kv.predicted_decrease(alpha=alpha, gtg=gtg, c=c)
    positive = predicted > 0.0
    rho = xp.where(positive, actual / xp.where(positive, predicted, 1.0), -xp.inf)
    rho = xp.where(xp.isnan(rho), -xp.inf, rho)
    regular = flag == 0
    accept = kv.arc_accept(rho=rho, eta_1=arc.eta1) | ~regular
    updated = kv.arc_sigma_update(
        rho=rho,
        sigma=sigma,
        eta_1=arc.eta1,
        eta_2=arc.eta2,
        gamma=arc.gamma,
        sigma_min=arc.sigma_min,
        sigma_max=arc.sigma_max,
    )
    new_sigma = xp.where(regular, updated, sigma)
    applied = xp.where(accept, alpha, 0.0)
    new_flag = xp.where(accept, flag, FLAGS.index("rejected"))
    return applied, new_sigma, new_flag, rho


# ------------------------------------------------------------------ per-variable
def per_variable_lengths(direction: Sequence, grads: Sequence, diag: Sequence, sigma,
                         fallback, nondescent: str = "base"):  # fmt: skip
    """One Eq 37 length per weight along ``d_i e_i`` (V6, Table 2 corrected).

    ``gtg_i = d_i dF/dtheta_i``, ``ghg_i = d_i^2 H_ii``, ``||g||^3 = |d_i|^3``.  By V6
    the step ``alpha_i d_i`` depends on ``d_i`` only through its sign: it is Table 2's
    unit step ``alpha(H_ii, sign(d_i) dF/dtheta_i, sigma)`` (C8 with ``||g|| = 1``)
    along ``sign(d_i)``, so ``alpha_i = alpha_unit / |d_i|``; computed that way, in the
    arrays' dtype.  Weights with ``d_i = 0`` get length 0 and flag ``"zero"``;
    ``sign(d_i) dF/dtheta_i >= 0`` is ``"nondescent"`` (length ``fallback`` or 0).

    Returns
    -------
    alphas : list of arrays shaped like ``direction``.
    flags : list of arrays of flag indices.
    dhd : ``sum_i d_i^2 H_ii``, the diagonal part of ``d^T H d``.
    """
    alphas, flags, dhd = [], [], 0.0
    for d, g, h in zip(direction, grads, diag, strict=True):
        xp = namespace(d)
        mag = xp.abs(d)
        slope = xp.where(d < 0, -g, g)  # sign(d_i) dF/dtheta_i
        finite = xp.isfinite(slope) & xp.isfinite(h) & xp.isfinite(mag)
        zero = finite & (mag == 0)
        nondesc = finite & ~zero & (slope >= 0)
        regular = finite & ~zero & ~nondesc
        unit = cr_step_length(h, xp.where(regular, slope, -1.0), sigma, xp.ones_like(mag))
        with np.errstate(divide="ignore", invalid="ignore"):
            a = unit / xp.where(mag == 0, 1.0, mag)
        alpha, flag = _settle(xp, a, finite, zero, nondesc, fallback, nondescent)
        alphas.append(xp.astype(alpha, d.dtype) if xp is not np else alpha.astype(d.dtype))
        flags.append(flag)
        dhd = dhd + xp.sum(d * d * h)
    return alphas, flags, dhd
