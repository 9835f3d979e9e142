"""Independent JAX reference for the network of Eqs 10-16, differentiated by autodiff.

Written from the paper's definitions (and ``docs/conventions.md``), not from the
generated kernels: a ReLU network without biases, softmax cross-entropy, ``F`` the batch
mean of ``f``.  Every derivative is JAX's (``jax.grad``, ``jax.hessian``, ``jax.jacfwd``,
``jax.jacrev``, nested ``jax.jvp``); no formula of the paper is used.

Padding.  To compile once for all small architectures, every network is embedded in a
fixed shape ``(depth, width, classes, batch)`` (:data:`SMALL`):

* extra input columns, hidden units, weight rows and columns are zero; an extra unit has
  ``z = 0`` and, with ``A'(0) = 0``, passes nothing on; no real weight reaches it, so no
  derivative with respect to real weights changes;
* layers past the network's depth pass ``v`` through unchanged (``jnp.where``);
* extra classes are left out of the softmax's normalisation (a mask) and carry label 0;
* extra samples have ``x = 0``, ``y = 0`` (so ``f = 0``) and ``F`` divides by the real
  batch size.

Only the real sub-arrays are read back (:class:`ReferenceValues`).  Larger networks use
their own padding (their largest width), with the dense Hessians switched off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from verify.cases import Case, Inputs

__all__ = ["Padding", "SMALL", "padding_for", "ReferenceValues", "compute_reference", "cr_root"]


@dataclass(frozen=True)
class Padding:
    """Array shape a network is embedded in."""

    depth: int
    width: int
    classes: int
    batch: int

    def fits(self, case: Case) -> bool:
        return (
            case.depth <= self.depth
            and max(case.widths) <= self.width
            and case.classes <= self.classes
            and case.batch <= self.batch
        )


#: the issue's sweep: 1-6 hidden layers, widths 1-9, 2-10 classes, batch 1-16
SMALL = Padding(depth=6, width=9, classes=10, batch=16)


def padding_for(case: Case) -> Padding:
    """:data:`SMALL` when the case fits it, else the case's own shape."""
    if case.dense and SMALL.fits(case):
        return SMALL
    return Padding(case.depth, max(case.widths), case.classes, case.batch)


# ------------------------------------------------------------------ the network, Eqs 10-16


def relu(z: jax.Array) -> jax.Array:
    """Eq 11, ``max(z, 0)``, with derivative 0 at ``z = 0`` (Eq 17's convention)."""
    return jnp.where(z > 0, z, jnp.zeros_like(z))


def hidden(ws: jax.Array, x: jax.Array, depth: jax.Array) -> tuple[list, list]:
    """Eqs 10-12 for one sample: ``z^(k) = w^(k) v^(k-1)``, ``v^(k) = A(z^(k))``.

    Parameters
    ----------
    ws : array, shape (L, W, W)
        Stacked, padded ``w^(k)`` (``ws[k-1][j, i] = w_i^{(k),j}``).
    x : array, shape (W,)
    depth : int array
        Real number of hidden layers; layers past it pass ``v`` through.

    Returns
    -------
    zs : list of L arrays (W,)
    vs : list of L + 1 arrays (W,), ``vs[0] = x``
    """
    v, zs, vs = x, [], [x]
    for k in range(1, ws.shape[0] + 1):
        z = ws[k - 1] @ v
        v = jnp.where(k <= depth, relu(z), v)
        zs.append(z)
        vs.append(v)
    return zs, vs


def loss_from_logits(p: jax.Array, y: jax.Array, class_mask: jax.Array) -> jax.Array:
    """Eqs 14-15 for one sample: ``f = -y^l ln(softmax(p)^l)`` over the real classes."""
    shift = jax.lax.stop_gradient(jnp.max(jnp.where(class_mask, p, -jnp.inf)))
    expo = jnp.exp(jnp.where(class_mask, p - shift, -jnp.inf))
    log_norm = shift + jnp.log(jnp.sum(expo))
    return -jnp.sum(y * (p - log_norm))


def sample_loss(params: tuple, x: jax.Array, y: jax.Array, depth, class_mask) -> jax.Array:
    """``f`` of one sample as a function of the weights ``params = (ws, u)`` (Eqs 10-15)."""
    ws, u = params
    _, vs = hidden(ws, x, depth)
    return loss_from_logits(u @ vs[-1], y, class_mask)  # Eq 13: p = u v^(n)


def objective(params: tuple, xs, ys, depth, class_mask, batch) -> jax.Array:
    """Eq 16: ``F = E[f]``, the mean over the real samples."""
    f = jax.vmap(sample_loss, in_axes=(None, 0, 0, None, None))(params, xs, ys, depth, class_mask)
    return jnp.sum(f) / batch


def second_directional(fun, params: tuple, g: tuple) -> tuple[jax.Array, jax.Array]:
    """``(g^T grad fun, g^T H g)`` by forward-over-forward ``jax.jvp``."""

    def first(theta):
        return jax.jvp(fun, (theta,), (g,))[1]

    return jax.jvp(first, (params,), (g,))


def _perturbed(ws: jax.Array, x: jax.Array, depth, e: jax.Array, a: jax.Array) -> jax.Array:
    """``v^(0..L)`` of one sample with ``e[l-1]`` added to ``z^(l)`` and ``a[l]`` to ``v^(l)``.

    At ``e = a = 0`` this is :func:`hidden`; its Jacobians there are
    ``dv^(k)/de^(l) = dv^(k)/dz^(l)`` and ``dv^(k)/da^(l) = dv^(k)/dv^(l)``.
    """
    v = x + a[0]
    vs = [v]
    for k in range(1, ws.shape[0] + 1):
        z = ws[k - 1] @ v + e[k - 1]
        v = jnp.where(k <= depth, relu(z), v) + a[k]
        vs.append(v)
    return jnp.stack(vs)


def _structure(ws, u, x, depth) -> dict[str, Any]:
    """Per-sample Jacobians behind Eqs 21-25 (one sample).

    ``alpha[k, :, l] = dv^(k)/dv^(l)`` (Eq 21), ``eta[k, :, l - 1] = dv^(k)/dz^(l)``
    (Eq 23), ``dv_dw[k, :, l - 1] = dv^(k)/dw^(l)`` (Eq 24), ``dp_du = dp/du`` (Eq 25).
    """
    L, W = ws.shape[0], ws.shape[1]
    e0 = jnp.zeros((L, W), ws.dtype)
    a0 = jnp.zeros((L + 1, W), ws.dtype)
    eta, alpha = jax.jacfwd(_perturbed, argnums=(3, 4))(ws, x, depth, e0, a0)
    dv_dw = jax.jacrev(lambda w: jnp.stack(hidden(w, x, depth)[1]))(ws)
    v_n = hidden(ws, x, depth)[1][-1]
    dp_du = jax.jacfwd(lambda uu: uu @ v_n)(u)
    return {"alpha": alpha, "eta": eta, "dv_dw": dv_dw, "dp_du": dp_du}


def _tree_norm(tree: Any) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(tree)))


def hvp_norm(fun, params: tuple, g: tuple) -> jax.Array:
    """``||H g||`` by forward-over-reverse (``jax.jvp`` of ``jax.grad``)."""
    return _tree_norm(jax.jvp(jax.grad(fun), (params,), (g,))[1])


@partial(jax.jit, static_argnames=("dense",))
def _reference(params, xs, ys, depth, class_mask, batch, g, diag_dirs, dense: bool):
    ws, u = params
    per_sample = partial(jax.vmap, in_axes=(None, 0, 0, None, None))

    def f_of(theta, x, y, dep, cm):
        return sample_loss(theta, x, y, dep, cm)

    def big_f(theta):
        return objective(theta, xs, ys, depth, class_mask, batch)

    zs, vs = jax.vmap(hidden, in_axes=(None, 0, None))(ws, xs, depth)
    p = jnp.einsum("cw,bw->bc", u, vs[-1])
    out: dict[str, Any] = {"z": jnp.stack(zs, 1), "v": jnp.stack(vs, 1), "p": p}
    out["f"] = jax.vmap(loss_from_logits, (0, 0, None))(p, ys, class_mask)
    out["dfdp"] = jax.vmap(jax.grad(loss_from_logits), (0, 0, None))(p, ys, class_mask)
    out["d2fdp2"] = jax.vmap(jax.hessian(loss_from_logits), (0, 0, None))(p, ys, class_mask)
    out["F"] = big_f(params)
    grad = jax.grad(big_f)(params)
    out["grad"] = grad
    out["grad_sample"] = per_sample(jax.grad(f_of))(params, xs, ys, depth, class_mask)
    out["d"], out["h"] = second_directional(big_f, params, g)

    def per_sample_dir(x, y):
        return second_directional(lambda th: f_of(th, x, y, depth, class_mask), params, g)

    out["d_sample"], out["h_sample"] = jax.vmap(per_sample_dir)(xs, ys)
    sgd = jax.tree_util.tree_map(jnp.negative, grad)
    out["d_sgd"], out["h_sgd"] = second_directional(big_f, params, sgd)
    # sizes of the vectors g^T grad F and g^T H g contract (scales of those scalars)
    out["hg_norm"] = hvp_norm(big_f, params, g)
    out["hg_norm_sgd"] = hvp_norm(big_f, params, sgd)
    out["hg_norm_sample"] = jax.vmap(
        lambda x, y: hvp_norm(lambda th: f_of(th, x, y, depth, class_mask), params, g)
    )(xs, ys)
    out["diag_sampled"] = jax.vmap(lambda e: second_directional(big_f, params, e)[1])(diag_dirs)
    if dense:
        out["hess"] = jax.hessian(big_f)(params)
        out["hess_sample"] = per_sample(jax.hessian(f_of))(params, xs, ys, depth, class_mask)
        out["structure"] = jax.vmap(_structure, in_axes=(None, None, 0, None))(ws, u, xs, depth)
    return out


# ------------------------------------------------------------------ host-side values


@dataclass
class ReferenceValues:
    """Reference quantities of one case in the real (unpadded) shapes, as float64 NumPy.

    Per-sample arrays carry a leading batch axis; Hessian blocks use the kernels' keys
    (``("u", "u")``, ``("u", k)``, ``(k, r)``, layers from 1) and axes ``(i, j, s, t)``.
    """

    p: np.ndarray
    f: np.ndarray
    dfdp: np.ndarray
    d2fdp2: np.ndarray
    zs: list
    vs: list
    F: float
    grad_u: np.ndarray
    grads_w: list
    grad_u_sample: np.ndarray
    grads_w_sample: list
    d: float
    h: float
    d_sample: np.ndarray
    h_sample: np.ndarray
    d_sgd: float
    h_sgd: float
    hg_norm: float
    hg_norm_sgd: float
    hg_norm_sample: np.ndarray
    diag_index: list
    diag_sampled: np.ndarray
    hess: dict | None = None
    hess_sample: dict | None = None
    etas: dict | None = None
    alphas: dict | None = None
    dv_dw: dict | None = None
    dp_du: np.ndarray | None = None

    @property
    def masks(self) -> list:
        return [(z > 0).astype(np.float64) for z in self.zs]


def _pad_inputs(case: Case, inp: Inputs, pad: Padding, dtype) -> tuple:
    ws = np.zeros((pad.depth, pad.width, pad.width), dtype)
    for k, w in enumerate(inp.ws):
        ws[k, : w.shape[0], : w.shape[1]] = w
    u = np.zeros((pad.classes, pad.width), dtype)
    u[: case.classes, : case.widths[-1]] = inp.u
    xs = np.zeros((pad.batch, pad.width), dtype)
    xs[: case.batch, : case.widths[0]] = inp.x
    ys = np.zeros((pad.batch, pad.classes), dtype)
    ys[: case.batch, : case.classes] = inp.y
    phis = np.zeros_like(ws)
    for k, phi in enumerate(inp.phis):
        phis[k, : phi.shape[0], : phi.shape[1]] = phi
    omega = np.zeros_like(u)
    omega[: case.classes, : case.widths[-1]] = inp.omega
    return (ws, u), xs, ys, (phis, omega)


def _diag_directions(case: Case, pad: Padding, count: int, dtype) -> tuple[list, tuple]:
    """Unit directions for ``count`` diagonal entries, spread over all weight blocks."""
    rng = np.random.default_rng(case.seed + 1)
    blocks = [("w", k) for k in range(1, case.depth + 1)] + [("u", 0)]
    index, ws, us = [], [], []
    for m in range(count):
        kind, k = blocks[m % len(blocks)]
        e_w = np.zeros((pad.depth, pad.width, pad.width), dtype)
        e_u = np.zeros((pad.classes, pad.width), dtype)
        if kind == "w":
            i, j = rng.integers(case.widths[k]), rng.integers(case.widths[k - 1])
            e_w[k - 1, i, j] = 1
        else:
            i, j = rng.integers(case.classes), rng.integers(case.widths[-1])
            e_u[i, j] = 1
        index.append((kind if kind == "u" else k, int(i), int(j)))
        ws.append(e_w)
        us.append(e_u)
    return index, (np.stack(ws), np.stack(us))


def compute_reference(
    case: Case, inp: Inputs, dtype: str = "float64", diag_samples: int = 8
) -> ReferenceValues:
    """All reference quantities of ``case`` by JAX autodiff.

    Parameters
    ----------
    case, inp : the case and its arrays (any dtype; cast to ``dtype``).
    dtype : {"float64", "float32"}
        Arithmetic of the reference (``"float64"`` needs ``jax_enable_x64``).
    diag_samples : int
        Hessian diagonal entries computed by ``jax.jvp`` (the only diagonal reference
        for networks without dense Hessians).
    """
    dt = np.dtype(dtype)
    if dt == np.float64 and not jax.config.jax_enable_x64:
        raise RuntimeError("a float64 reference needs jax_enable_x64 (see verify.backend)")
    pad = padding_for(case)
    dense = case.dense and pad == SMALL
    params, xs, ys, g = _pad_inputs(case, inp, pad, dt)
    index, dirs = _diag_directions(case, pad, diag_samples, dt)
    class_mask = np.arange(pad.classes) < case.classes
    raw = _reference(
        params, xs, ys, np.int32(case.depth), class_mask, dt.type(case.batch), g, dirs, dense
    )
    raw = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype=np.float64), raw)
    return _unpad(case, raw, index, dense)


def _unpad(case: Case, raw: dict, index: list, dense: bool) -> ReferenceValues:
    B, c, n = case.batch, case.classes, case.depth
    wd = case.widths

    def wblock(a, k, lead=()):  # real part of w^(k) in a stacked array
        sl = (*lead, k - 1, slice(0, wd[k]), slice(0, wd[k - 1]))
        return a[sl]

    grad_ws, grad_u = raw["grad"]
    gs_ws, gs_u = raw["grad_sample"]
    ref = ReferenceValues(
        p=raw["p"][:B, :c],
        f=raw["f"][:B],
        dfdp=raw["dfdp"][:B, :c],
        d2fdp2=raw["d2fdp2"][:B, :c, :c],
        zs=[raw["z"][:B, k - 1, : wd[k]] for k in range(1, n + 1)],
        vs=[raw["v"][:B, k, : wd[k]] for k in range(n + 1)],
        F=float(raw["F"]),
        grad_u=grad_u[:c, : wd[-1]],
        grads_w=[wblock(grad_ws, k) for k in range(1, n + 1)],
        grad_u_sample=gs_u[:B, :c, : wd[-1]],
        grads_w_sample=[wblock(gs_ws, k, (slice(0, B),)) for k in range(1, n + 1)],
        d=float(raw["d"]),
        h=float(raw["h"]),
        d_sample=raw["d_sample"][:B],
        h_sample=raw["h_sample"][:B],
        d_sgd=float(raw["d_sgd"]),
        h_sgd=float(raw["h_sgd"]),
        hg_norm=float(raw["hg_norm"]),
        hg_norm_sgd=float(raw["hg_norm_sgd"]),
        hg_norm_sample=raw["hg_norm_sample"][:B],
        diag_index=index,
        diag_sampled=raw["diag_sampled"],
    )
    if not dense:
        return ref
    ref.hess = _hessian_blocks(case, raw["hess"], ())
    ref.hess_sample = _hessian_blocks(case, raw["hess_sample"], (slice(0, B),))
    st = raw["structure"]
    ref.alphas = {
        (k, l): st["alpha"][:B, k, : wd[k], l, : wd[l]]
        for l in range(n + 1)
        for k in range(l, n + 1)
    }
    ref.etas = {
        (k, l): st["eta"][:B, k, : wd[k], l - 1, : wd[l]]
        for l in range(1, n + 1)
        for k in range(l, n + 1)
    }
    ref.dv_dw = {
        (k, l): st["dv_dw"][:B, k, : wd[k], l - 1, : wd[l], : wd[l - 1]]
        for k in range(1, n + 1)
        for l in range(1, k + 1)
    }
    ref.dp_du = st["dp_du"][:B, :c, :c, : wd[-1]]
    return ref


def _hessian_blocks(case: Case, hess: tuple, lead: tuple) -> dict:
    """Blocks of a (padded) ``jax.hessian`` over ``(ws, u)`` keyed like the kernels'."""
    wd, c, n = case.widths, case.classes, case.depth
    (h_ww, h_wu), (h_uw, h_uu) = hess
    real_u = (slice(0, c), slice(0, wd[-1]))

    def real_w(k):
        return (k - 1, slice(0, wd[k]), slice(0, wd[k - 1]))

    blocks = {("u", "u"): h_uu[(*lead, *real_u, *real_u)]}
    for k in range(1, n + 1):
        blocks[("u", k)] = h_uw[(*lead, *real_u, *real_w(k))]
        for r in range(1, n + 1):
            blocks[(k, r)] = h_ww[(*lead, *real_w(k), *real_w(r))]
    del h_wu  # the transpose of h_uw
    return blocks


def dense_hessian(case: Case, blocks: dict) -> np.ndarray:
    """Assemble blocks into a matrix in the conventions' order (``ws[0], ..., u``)."""
    keys = [*range(1, case.depth + 1), "u"]
    size = {k: case.widths[k] * case.widths[k - 1] for k in range(1, case.depth + 1)}
    size["u"] = case.classes * case.widths[-1]
    rows = []
    for a in keys:
        row = []
        for b in keys:
            if (a, b) in blocks:
                blk = blocks[(a, b)]
            else:  # (k, "u") is the transpose of ("u", k)
                blk = np.moveaxis(blocks[(b, a)], (-2, -1), (-4, -3))
            row.append(blk.reshape(size[a], size[b]))
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


# ------------------------------------------------------------------ Eq 37's reference root


def cr_root(h: float, d: float, c: float) -> float:
    """The positive stationary point of the cubic model along ``g`` (Eq 8 with ``s = a g``).

    ``m'(a) = d + h a + c a^2 / 2`` with ``d = g^T grad F < 0``, ``h = g^T H g``,
    ``c = sigma ||g||^3 > 0``: ``m'(0) < 0`` and ``m'`` grows without bound, so its one
    positive root is bracketed and found by bisection to the last bit, without the
    closed forms of Eqs 9 and 37 (well conditioned: relative error a few ulp).
    """
    h, d, c = float(h), float(d), float(c)
    if not (d < 0 and c > 0 and math.isfinite(h)):
        raise ValueError(f"need d < 0, c > 0 and finite h; got h={h}, d={d}, c={c}")

    def slope(a: float) -> float:
        return d + h * a + 0.5 * c * a * a

    lo, hi = 0.0, 1.0
    if slope(hi) > 0:  # the root is below 1: halve down to a bracket [hi / 2, hi]
        while slope(0.5 * hi) > 0:
            hi *= 0.5
        lo = 0.5 * hi
    else:  # double up to a bracket [hi / 2, hi]
        while slope(hi) <= 0:
            lo, hi = hi, 2.0 * hi
    while True:
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            return hi if abs(slope(hi)) < abs(slope(lo)) else lo
        if slope(mid) > 0:
            hi = mid
        else:
            lo = mid
