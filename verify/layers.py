"""JAX references for the kernels of Appendix B.2 and B.3: general activations
(the dense network with any activation: :mod:`numeric.weight_lists`, :mod:`numeric.curvature`,
:mod:`numeric.literal.feedforward`), the convolutional layer
(:mod:`numeric.literal.convolution`), the recurrent layer
(:mod:`numeric.literal.recurrent`) and a conv layer stacked on dense layers
(:class:`numeric.network.Network` of ``Conv2D``, ``Flatten``, ``Dense`` and ``Output``).

Every comparison is a :class:`verify.measure.Measurement` (relative error = max abs
error / Frobenius norm of the reference block, per sample where the quantity is per
sample) against a JAX autodiff reference in float64, with the tolerances of
:data:`verify.cases.TOLERANCES`:

* general activations: ``jax.grad``/``jax.hessian`` of the network of Eqs 10-16 with
  ``jnp.tanh``, ``jax.nn.sigmoid``, ``jax.nn.softplus``, ``jax.nn.relu``; ``d eta/dw``
  as ``jax.jacfwd`` of the Jacobian ``dv^(n)/dz^(k)``;
* conv layer: ``jax.lax.conv_general_dilated`` (VALID) as the forward pass,
  ``jax.jacfwd``/``jax.hessian`` for the derivatives, ``conv_general_dilated_patches``
  for the patches; strides 1-3, kernels 1-4, non-square inputs, kernels that just fit;
* recurrent layer: autodiff of the unrolled recursion with one weight matrix, t = 1-6;
* the stack: ``jax.jvp`` of ``jax.grad`` (a Hessian-vector product) for ``g^T H g``.

Printed forms that disagree with the corrected ones are measured on the same inputs
(:class:`verify.errata.ErratumMeasurement`); a printed form that cannot be evaluated
(free index, dimension mismatch, a read outside the kernel) gets ``None`` and a note.

:func:`layer_measurements` returns the raw measurements (for the report's own
aggregation); :func:`layer_results` returns the report's record dicts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np

from verify.backend import jax_activation
from verify.errata import ErratumMeasurement, summarise
from verify.measure import Measurement, aggregate
from verify.meter import _Meter, _np

__all__ = [
    "MLPCase",
    "ConvCase",
    "RecCase",
    "StackCase",
    "mlp_cases",
    "conv_cases",
    "rec_cases",
    "stack_cases",
    "layer_measurements",
    "layer_results",
    "LAYER_EQUATIONS",
]

ACTIVATIONS = ("tanh", "sigmoid", "softplus", "relu")
KINK = 1e-3  # |z| of every ReLU pre-activation kept above this

#: the printed equations this module measures (B.2, B.3)
LAYER_EQUATIONS = tuple(str(n) for n in [*range(44, 58), *range(60, 66), *range(66, 81)]) + (
    "C9",
    "C10",
    "C11",
    "C12",
    "C13",
    "C14",
)


def _jax():
    from verify.backend import require_jax

    jax = require_jax()
    import jax.numpy as jnp

    return jax, jnp


def _act(name: str):
    return jax_activation(name)


# ====================================================================== general MLP (B.3)
@dataclass(frozen=True)
class MLPCase:
    """A feedforward network with one activation for every hidden layer."""

    widths: tuple[int, ...]
    classes: int
    batch: int
    activation: str
    seed: int = 0

    @property
    def name(self) -> str:
        w = "-".join(map(str, self.widths))
        return f"mlp-{self.activation}-{w}-c{self.classes}-b{self.batch}-s{self.seed}"


def mlp_cases(quick: bool = True, seed: int = 0) -> list[MLPCase]:
    """Unequal widths (dimension errata show) and equal widths (value errata show)."""
    archs = [((4, 5, 3, 6), 3, 3), ((3, 3, 3, 3), 3, 2)]
    if not quick:
        archs += [((5, 2), 2, 2), ((2, 4, 4, 3, 5), 4, 3), ((3, 4, 4, 4, 4), 3, 2)]
    return [
        MLPCase(w, c, b, act, seed + i)
        for i, ((w, c, b), act) in enumerate(itertools.product(archs, ACTIVATIONS))
    ]


def _mlp_inputs(case: MLPCase):
    from numeric.layers import get_activation

    rng = np.random.default_rng(case.seed + 7919)
    wd, act = case.widths, get_activation(case.activation)
    for _ in range(200):
        ws = [rng.uniform(-1, 1, (wd[k + 1], wd[k])) for k in range(len(wd) - 1)]
        x = rng.uniform(-1, 1, (case.batch, wd[0]))
        v, ok = x, True
        for w in ws:
            z = v @ w.T
            if case.activation == "relu" and (
                np.min(np.abs(z)) < KINK or np.any(np.all(z <= 0, axis=1))
            ):
                ok = False
                break
            v = act(z)[0]
        if ok:
            break
    u = rng.uniform(-1, 1, (case.classes, wd[-1]))
    y = np.eye(case.classes)[rng.integers(0, case.classes, case.batch)]
    omega = rng.normal(size=u.shape)
    phis = [rng.normal(size=w.shape) for w in ws]
    return ws, u, x, y, omega, phis


def _flat(ws, u) -> np.ndarray:
    return np.concatenate([w.ravel() for w in ws] + [u.ravel()])


@cache
def _mlp_references(shapes: tuple[tuple[int, int], ...]) -> Callable:
    """The compiled references of :func:`check_mlp` for weights of ``shapes`` (``w^(1..n)``
    then ``u``), shared by the activations: ``A = sum_i mix[i] A_i`` over
    :data:`ACTIVATIONS` with ``mix`` one-hot (an argument, so one compilation serves all
    four; the other terms and their derivatives are exact zeros).

    Returns ``references(t, W, xs, ys, mix, zs)``: ``t`` the flat weights, ``W`` the list
    of ``w^(k)``, ``xs`` (batch, d), ``ys`` (batch, classes) one-hot, ``zs`` (m,) points
    for ``A, A', A''``."""
    jax, jnp = _jax()
    n = len(shapes) - 1
    acts = [_act(a) for a in ACTIVATIONS]

    def unflat(t):
        out, o = [], 0
        for shp in shapes:
            size = int(np.prod(shp))
            out.append(t[o : o + size].reshape(shp))
            o += size
        return out[:-1], out[-1]

    def references(t, W, xs, ys, mix, zs):
        """Everything the checks compare with, in one compiled function."""

        def A(z):
            return sum(mix[i] * a(z) for i, a in enumerate(acts))

        def loss_xy(t, xs, ys):
            W, U = unflat(t)
            v = xs
            for w in W:
                v = A(v @ w.T)
            return jnp.mean(-jnp.sum(ys * jax.nn.log_softmax(v @ U.T), axis=-1))

        def top(z, W, k):
            v = A(z)
            for w in W[k:]:
                v = A(w @ v)
            return v

        def eta_of(W, xb, k):
            v = xb
            for w in W[: k - 1]:
                v = A(w @ v)
            return jax.jacfwd(top)(W[k - 1] @ v, W, k)

        def vn_of(W, xb):
            v = xb
            for w in W:
                v = A(w @ v)
            return v

        per_sample = jax.vmap(
            lambda xb, yb: (jax.grad(loss_xy)(t, xb[None], yb[None]),
                            jax.hessian(loss_xy)(t, xb[None], yb[None]))
        )(xs, ys)  # fmt: skip
        return {
            "grad": jax.grad(loss_xy)(t, xs, ys),
            "hess": jax.hessian(loss_xy)(t, xs, ys),
            "deta": [
                jax.vmap(jax.jacfwd(eta_of), in_axes=(None, 0, None))(W, xs, k)
                for k in range(1, n + 1)
            ],  # fmt: skip
            "d2v": jax.vmap(jax.hessian(vn_of), in_axes=(None, 0))(W, xs),
            "grad_b": per_sample[0],
            "hess_b": per_sample[1],
            "act": (A(zs), jax.vmap(jax.grad(A))(zs), jax.vmap(jax.grad(jax.grad(A)))(zs)),
        }

    return jax.jit(references)


def check_mlp(case: MLPCase) -> tuple[list[Measurement], list[ErratumMeasurement]]:
    """General-activation kernels on one case."""
    jax, jnp = _jax()
    from numeric import curvature as C
    from numeric import weight_lists as G
    from numeric.layers import get_activation
    from numeric.literal import feedforward as L
    from numeric.losses import softmax_cross_entropy

    M = _Meter(case.name)
    ws, u, x, y, omega, phis = _mlp_inputs(case)
    n = len(ws)
    shapes = tuple(w.shape for w in ws) + (u.shape,)
    mix = np.array([float(a == case.activation) for a in ACTIVATIONS])
    zs = np.linspace(-3.0, 3.0, 61) + 1e-3
    REF = _mlp_references(shapes)(jnp.asarray(_flat(ws, u)), [jnp.asarray(w) for w in ws],
                                  jnp.asarray(x), jnp.asarray(y), jnp.asarray(mix),
                                  jnp.asarray(zs))  # fmt: skip
    grad, hess = _np(REF["grad"]), _np(REF["hess"])
    deta_ref = {
        (k, q): _np(REF["deta"][k - 1][q - 1]) for k in range(1, n + 1) for q in range(1, n + 1)
    }

    def d2v(k, q):
        return _np(REF["d2v"][k - 1][q - 1])

    # the activation functions themselves
    got = get_activation(case.activation)(zs)
    M.m("67", f"A, A', A'' of {case.activation} (numeric.kernels.activations)", "activations",
        lambda: np.stack(got), np.stack([_np(a) for a in REF["act"]]))  # fmt: skip

    act = case.activation
    fwd = G.forward(ws, u, x, activation=act)
    f, dfdp, d2fdp2 = softmax_cross_entropy(fwd.p, y)
    bwd = G.backward(fwd, ws, u, dfdp, activation=act)
    ch = L.chains(fwd, ws)
    M.m("28", "gradient (Eqs 27-28; C3, C10 adjoint sweep)", "backward, c10_*, c3_grad_w",
        lambda: _flat(bwd.grads_w, bwd.grad_u), grad)  # fmt: skip

    for k, q in itertools.product(range(1, n + 1), repeat=2):
        M.m("75", "d eta^(n,k)/dw^(q), all (k, q)", "deta_literal, eq75_*",
            lambda k=k, q=q: L.deta_literal(fwd, ch, ws, k, q), deta_ref[(k, q)],
            per_sample=True)  # fmt: skip
        M.m("77", "d2 v^(n)/dw^(k) dw^(q), all (k, q)", "d2v_literal, eq77_*",
            lambda k=k, q=q: L.d2v_literal(fwd, ch, ws, k, q), d2v(k, q),
            per_sample=True)  # fmt: skip
        if q < k < n:  # the printed row has a term there
            equal = case.widths[k] == case.widths[q] and case.widths[k - 1] == case.widths[q - 1]
            kind = "index" if equal else "dimension"
            label = "equal widths" if equal else "unequal widths"
            M.e("75", kind, f"d eta^(n,k)/dw^(q), q < k < n, {label}",
                lambda k=k, q=q: L.deta_literal(fwd, ch, ws, k, q, printed=True),
                lambda k=k, q=q: L.deta_literal(fwd, ch, ws, k, q), deta_ref[(k, q)], True)  # fmt: skip
            M.e("74", kind, f"d eta^(n,k)/dw^(q), q < k < n, {label} (through Eq 75)",
                lambda k=k, q=q: L.deta_literal(fwd, ch, ws, k, q, printed=True),
                lambda k=k, q=q: L.deta_literal(fwd, ch, ws, k, q), deta_ref[(k, q)], True,
                note="Eq 74's row equals Eq 75's (alpha^(r-1,k) gamma^(k) = eta^(r-1,k))")  # fmt: skip
            M.e("77", kind, f"d2 v^(n)/dw^(k) dw^(q), q < k < n, {label}",
                lambda k=k, q=q: L.d2v_literal(fwd, ch, ws, k, q, printed=True),
                lambda k=k, q=q: L.d2v_literal(fwd, ch, ws, k, q), d2v(k, q), True)  # fmt: skip

    blocks = L.hessian_blocks_general(fwd, ch, ws, u, dfdp, d2fdp2)
    M.m("80", "Hessian, all blocks (Eqs 78-80 with Eq 77 corrected)", "hessian_blocks, eq78-80_*",
        lambda: L.hessian_dense(blocks, ws, u), hess)  # fmt: skip
    if case.batch > 1:
        dense = {
            reduce: L.hessian_dense(
                L.hessian_blocks_general(fwd, ch, ws, u, dfdp, d2fdp2, reduce=reduce), ws, u
            )
            for reduce in ("mean", "printed")
        }
        nw = sum(w.size for w in ws)
        parts = {
            "78": ("(u, u) block", np.s_[nw:, nw:]),
            "79": ("(u, w) blocks", np.s_[nw:, :nw]),
            "80": ("(w, w) blocks", np.s_[:nw, :nw]),
        }
        for number, (label, sl) in parts.items():
            M.e(number, "batch-average", f"Hessian {label}, reduce='printed' vs 'mean'",
                lambda sl=sl: dense["printed"][sl], lambda sl=sl: dense["mean"][sl], hess[sl])  # fmt: skip
    if n >= 3 and len(set(case.widths[1:])) == 1:  # the printed row of Eq 77 fits
        printed_80 = L.hessian_dense(
            L.hessian_blocks_general(fwd, ch, ws, u, dfdp, d2fdp2, printed=True), ws, u
        )
        M.e("77", "index", "Hessian through Eq 80 with Eq 77's printed q < k row, equal widths",
            lambda: printed_80, lambda: L.hessian_dense(blocks, ws, u), hess)  # fmt: skip

    gvec = _flat(phis, omega)
    gtg, ghg = G.directional(fwd, bwd, ws, u, dfdp, d2fdp2, omega, phis, activation=act)
    M.m("C11", "g^T H g, random direction (C4-C7 + vbar A'' zdot^2)", "directional",
        lambda: ghg, gvec @ hess @ gvec)  # fmt: skip
    M.m("C11", "g^T grad F, random direction (C6)", "directional", lambda: gtg, gvec @ grad)
    a, b_ = G.sgd_curvature(fwd, bwd, ws, u, dfdp, d2fdp2, activation=act)
    M.m("C11", "g^T H g, SGD direction (L1-L4 + C11)", "sgd_curvature",
        lambda: np.array([a, b_]), np.array([-grad @ grad, grad @ hess @ grad]))  # fmt: skip

    gb, hb, sb = C.per_sample_sgd_curvature(
        G.layers_for(ws, u, act), [*ws, u], fwd, bwd, dfdp, d2fdp2
    )
    ref_b = []
    for b in range(case.batch):
        g1, h1 = _np(REF["grad_b"][b]), _np(REF["hess_b"][b])
        ref_b.append([-g1 @ g1, g1 @ h1 @ g1, g1 @ g1])
    M.m("C11", "per-sample SGD directions: (g^T grad f, g^T H g, ||g||^2)",
        "per_sample_sgd_curvature", lambda: np.stack([gb, hb, sb], axis=1), np.array(ref_b),
        per_sample=True)  # fmt: skip
    return M.ms, M.errata


# ====================================================================== convolutional layer
@dataclass(frozen=True)
class ConvCase:
    """One conv layer: batch, channels in/out, input H x W, kernel K_h x K_w, strides."""

    batch: int
    C: int
    O: int
    H: int
    W: int
    kh: int
    kw: int
    sigma: int
    tau: int
    activation: str
    seed: int = 0

    @property
    def name(self) -> str:
        return (
            f"conv-{self.activation}-b{self.batch}-c{self.C}o{self.O}-{self.H}x{self.W}"
            f"-k{self.kh}x{self.kw}-s{self.sigma}t{self.tau}-s{self.seed}"
        )


def conv_cases(quick: bool = True, seed: int = 0) -> list[ConvCase]:
    """Strides 1-3, kernels 1-4 (square and not), non-square inputs, kernels that just
    fit (one output, or one output row or column); single-channel cases for the paper's
    forms, multi-channel ones for the derived forms."""
    cfgs = [
        # (C, O, H, W, kh, kw, sigma, tau)
        (1, 1, 5, 6, 3, 2, 2, 3),
        (1, 1, 4, 4, 4, 4, 1, 1),  # kernel just fits: one output
        (1, 1, 6, 7, 3, 3, 1, 1),
        (2, 3, 6, 5, 2, 3, 3, 1),
        (1, 1, 7, 5, 1, 1, 2, 2),  # 1 x 1 kernel
        (1, 1, 5, 4, 4, 2, 1, 2),  # kernel just fits vertically
    ]
    if not quick:
        for kh, kw, s, t in itertools.product((1, 2, 3, 4), (1, 3, 4), (1, 2, 3), (1, 3)):
            h, w = kh + s * 2, kw + t + 1
            cfgs.append((1, 1, h, w, kh, kw, s, t))
        cfgs += [(3, 2, 5, 7, 2, 2, 2, 3), (2, 2, 4, 6, 4, 6, 1, 1)]
    acts = ["tanh", "sigmoid", "softplus", "relu"]
    return [ConvCase(2, *cfg, acts[i % len(acts)], seed + i) for i, cfg in enumerate(cfgs)]


def check_conv(case: ConvCase) -> tuple[list[Measurement], list[ErratumMeasurement]]:
    """The conv kernels on one case."""
    jax, jnp = _jax()
    from numeric.literal import convolution as K

    M = _Meter(case.name)
    rng = np.random.default_rng(case.seed + 104729)
    x = rng.uniform(-1, 1, (case.batch, case.C, case.H, case.W))
    w = rng.uniform(-1, 1, (case.O, case.C, case.kh, case.kw))
    A = _act(case.activation)
    strides = (case.sigma, case.tau)

    def layer(w_, x_):
        return A(jax.lax.conv_general_dilated(x_[None], w_, strides, "VALID")[0])

    fwd = K.forward(w, x, case.sigma, case.tau, case.activation)
    wj = jnp.asarray(w)

    def patches(x_):
        p = jax.lax.conv_general_dilated_patches(x_[None], (case.kh, case.kw), strides, "VALID")[0]
        s_, t_ = p.shape[1:]
        return jnp.moveaxis(p.reshape(case.C, case.kh, case.kw, s_, t_), (3, 4), (1, 2))

    funcs = {
        "v": layer,
        "jx": jax.jacfwd(layer, 1),
        "jw": jax.jacfwd(layer, 0),
        "hxx": jax.hessian(layer, 1),
        "hww": jax.hessian(layer, 0),
        "hwx": jax.jacfwd(jax.jacfwd(layer, 1), 0),
        "z": lambda w_, x_: patches(x_),
        "dz": lambda w_, x_: jax.jacfwd(patches)(x_),
    }
    xj = jnp.asarray(x)
    batched = jax.jit(lambda w_, x_: {k: jax.vmap(fn, in_axes=(None, 0))(w_, x_)
                                      for k, fn in funcs.items()})  # fmt: skip
    R = {k: _np(val) for k, val in batched(wj, xj).items()}
    # d/dw of dv/dx: (batch, O,S,T, C,H,W, O,C,kh,kw) -> (batch, O,S,T, O,C,kh,kw, C,H,W)
    R["hwx"] = np.moveaxis(R["hwx"], [7, 8, 9, 10], [4, 5, 6, 7])
    M.m("46.mc", "layer output v (conv_general_dilated, VALID)", "forward, eq46mc",
        lambda: fwd.v, R["v"], per_sample=True)  # fmt: skip
    M.m("45", "patches z (conv_general_dilated_patches)", "patches, eq45_patch_entrywise",
        lambda: fwd.z, R["z"], per_sample=True)  # fmt: skip
    if case.C == 1 and case.O == 1:  # the paper's single-channel form of Eq 46
        M.m("46", "pre-activation, single channel", "eq46_preactivation",
            lambda: K.cv.eq46_preactivation(cw=w[0, 0], cz=fwd.z[:, 0]),
            np.einsum("bstlk,lk->bst", R["z"][:, 0], w[0, 0]), per_sample=True)  # fmt: skip
    M.m("47.mc", "dv/dx", "jacobian_x, eq47mc", lambda: K.jacobian_x(fwd, w), R["jx"], True)
    M.m("49.mc", "dv/dw", "jacobian_w, eq49mc", lambda: K.jacobian_w(fwd), R["jw"], True)
    M.m("50.mc", "d2v/dx dx", "hessian_xx, eq50mc", lambda: K.hessian_xx(fwd, w), R["hxx"], True)
    M.m("51.mc", "d2v/dw dx", "hessian_wx, eq51mc", lambda: K.hessian_wx(fwd, w), R["hwx"], True)
    M.m("52.mc", "d2v/dw dw", "hessian_ww, eq52mc", lambda: K.hessian_ww(fwd), R["hww"], True)
    dzdx = R["dz"][0][0][:, :, :, :, 0]  # channel 0 -> channel 0: (S, T, kh, kw, H, W)
    M.m("48", "dz/dx (selection tensor)", "selection, eq48_dz_dx_entrywise",
        lambda: fwd.dzdx, dzdx)  # fmt: skip
    M.e("44", "free-index", "layer output through (x~)_k^l w_k^l", None, lambda: fwd.v,
        R["v"], True, "not implementable as printed: (x~_t^s)_k has no l")  # fmt: skip
    M.e("45", "free-index", "patches (x~_t^s)_k^l", None, lambda: fwd.z, R["z"], True,
        "not implementable as printed: l is free on the right-hand side only")  # fmt: skip
    M.e("48", "free-index", "dz/dx", None, lambda: fwd.dzdx, dzdx, False,
        "not implementable as printed: the condition's p is not an index of dz_tq^sm/dx")  # fmt: skip
    if case.C == 1 and case.O == 1:
        single = {
            "47": R["jx"][:, 0, :, :, 0],
            "49": R["jw"][:, 0, :, :, 0, 0],
            "50": R["hxx"][:, 0, :, :, 0, :, :, 0],
            "51": R["hwx"][:, 0, :, :, 0, 0, :, :, 0],
            "52": R["hww"][:, 0, :, :, 0, 0, :, :, 0, 0],
        }
        single.update({"53": single["49"], "54": single["47"], "55": single["52"],
                       "56": single["51"], "57": single["50"]})  # fmt: skip
        got = K.single_channel(fwd, w)
        printed = K.single_channel(fwd, w, "printed")
        for number, ref in single.items():
            kind = "patch form" if number <= "52" else "conditional form"
            M.m(number, f"single channel, {kind}", f"single_channel: eq{number}_*",
                lambda number=number: got[number], ref, per_sample=True)  # fmt: skip
        M.e("47", "free-index", "dv/dx (single channel)", None, lambda: got["47"],
            single["47"], True, "not implementable as printed: w_p^m with dz_tq^sm")  # fmt: skip
        fits = case.kh == case.H and case.kw == case.W
        for number in ("54", "56", "57"):
            kind = "case-logic" if (number == "56" and fits) else "missing-bound"
            label = "kernel just fits the input" if fits else "kernel smaller than the input"
            M.e(number, kind, f"single channel, {label}", lambda number=number: printed[number],
                lambda number=number: got[number], single[number], True)  # fmt: skip
    return M.ms, M.errata


# ====================================================================== recurrent layer
@dataclass(frozen=True)
class RecCase:
    """The recursion of Eqs 58-59 with width ``d`` unrolled ``steps`` times."""

    d: int
    batch: int
    steps: int
    activation: str
    seed: int = 0

    @property
    def name(self) -> str:
        return f"rec-{self.activation}-d{self.d}-b{self.batch}-t{self.steps}-s{self.seed}"


def rec_cases(quick: bool = True, seed: int = 0) -> list[RecCase]:
    """t = 1-6 for the ReLU (Eqs 61-65 as printed) and a smooth activation (63.g-65.g)."""
    acts = ("relu", "tanh") if quick else ("relu", "tanh", "sigmoid", "softplus")
    return [
        RecCase(3, 2, t, act, seed + 10 * t + i) for i, act in enumerate(acts) for t in range(1, 7)
    ]


def _rec_inputs(case: RecCase):
    rng = np.random.default_rng(case.seed + 1299709)
    for _ in range(500):
        w = rng.uniform(-1, 1, (case.d, case.d))
        x = rng.uniform(-1, 1, (case.batch, case.d))
        if case.activation != "relu":
            return w, x
        v, ok = x, True
        for _ in range(case.steps):
            z = v @ w.T
            if np.min(np.abs(z)) < KINK or np.any(np.all(z <= 0, axis=1)):
                ok = False
                break
            v = np.maximum(z, 0)
        if ok:
            return w, x
    raise RuntimeError(f"{case.name}: no draw keeps the ReLU units away from their kinks")


def check_rec(case: RecCase) -> tuple[list[Measurement], list[ErratumMeasurement]]:
    """The recurrent kernels on one case."""
    jax, jnp = _jax()
    from numeric.literal import recurrent as K

    M = _Meter(case.name)
    w, x = _rec_inputs(case)
    A = _act(case.activation)
    t = case.steps

    def f(w_, x_):
        v = x_
        for _ in range(t):
            v = A(w_ @ v)
        return v

    wj, xj = jnp.asarray(w), jnp.asarray(x)
    funcs = {
        "jw": jax.jacfwd(f, 0),
        "jx": jax.jacfwd(f, 1),
        "hww": jax.hessian(f, 0),
        "hxx": jax.hessian(f, 1),
        "hwx": jax.jacfwd(jax.jacfwd(f, 1), 0),
    }
    batched = jax.jit(lambda w_, x_: {k: jax.vmap(fn, in_axes=(None, 0))(w_, x_)
                                      for k, fn in funcs.items()})  # fmt: skip
    R = {k: _np(val) for k, val in batched(wj, xj).items()}
    R["hwx"] = np.moveaxis(R["hwx"], 2, 4)  # (batch, m, i, q, r) -> (batch, m, q, r, i)
    fwd = K.forward(w, x, t, case.activation)
    relu = case.activation == "relu"
    g = "" if relu else ".g"
    M.m("61", "dv_(t)/dw (tied weights)", "jacobian_w, eq61_term",
        lambda: K.jacobian_w(fwd, t), R["jw"], True)  # fmt: skip
    M.m("62", "dv_(t)/dx", "jacobian_x, eq62_dv_dx", lambda: K.jacobian_x(fwd, w, t), R["jx"], True)
    M.m("63" + g, "d2v_(t)/dw dw", "hessian_ww", lambda: K.hessian_ww(fwd, w, t), R["hww"], True)
    M.m("64" + g, "d2v_(t)/dx dx", "hessian_xx", lambda: K.hessian_xx(fwd, w, t), R["hxx"], True)
    M.m("65" + g, "d2v_(t)/dw dx", "hessian_wx", lambda: K.hessian_wx(fwd, w, t), R["hwx"], True)
    if t >= 2:
        M.e("61", "index", "dv_(t)/dw (tied weights), t >= 2",
            lambda: sum(K.rc.eq61_term(eta_t_k=fwd.etas[(t, k)], v_km1=fwd.vs[t - 1])
                        for k in range(1, t + 1)),
            lambda: K.jacobian_w(fwd, t), R["jw"], True,
            "printed: v_(t-1) in every term of the sum over k")  # fmt: skip
    M.e("60", "free-index", "dv_(t)/dw as the sum over the steps' copies (Eq 61)", None,
        lambda: K.jacobian_w(fwd, t), R["jw"], True,
        "not implementable as printed (middle expression); its right-hand side is Eq 61")  # fmt: skip
    if relu:
        if t >= 2:
            M.e("63", "index", "d2v_(t)/dw dw, ReLU, t >= 2",
                lambda: K.hessian_ww(fwd, w, t, printed=True), lambda: K.hessian_ww(fwd, w, t),
                R["hww"], True)  # fmt: skip
        M.e("65", "free-index", "d2v_(t)/dw dx, ReLU", None, lambda: K.hessian_wx(fwd, w, t),
            R["hwx"], True, "not implementable as printed: eta_s^{(t,1),j} delta_i^s carries j")  # fmt: skip
    return M.ms, M.errata


# ====================================================================== conv + MLP stack
@dataclass(frozen=True)
class StackCase:
    """A conv layer (C -> O channels, K_h x K_w, strides) on an H x W input, ReLU layers of
    widths ``hidden`` and ``classes`` outputs."""

    batch: int
    C: int
    O: int
    H: int
    W: int
    kh: int
    kw: int
    sigma: int
    tau: int
    hidden: tuple[int, ...]
    classes: int
    activation: str
    seed: int = 0

    @property
    def name(self) -> str:
        h = "-".join(map(str, self.hidden))
        return (
            f"stack-{self.activation}-c{self.C}o{self.O}-{self.H}x{self.W}-k{self.kh}x{self.kw}"
            f"-s{self.sigma}t{self.tau}-h{h}-c{self.classes}-s{self.seed}"
        )


def stack_cases(quick: bool = True, seed: int = 0) -> list[StackCase]:
    cases = [
        StackCase(3, 2, 2, 6, 5, 3, 2, 1, 2, (5, 4), 3, "relu", seed),
        StackCase(3, 1, 3, 5, 5, 2, 2, 2, 1, (4,), 3, "tanh", seed + 1),
    ]
    if not quick:
        cases += [
            StackCase(2, 3, 2, 7, 6, 3, 3, 2, 3, (6, 5, 4), 4, "softplus", seed + 2),
            StackCase(4, 1, 1, 4, 4, 4, 4, 1, 1, (3,), 2, "sigmoid", seed + 3),
        ]
    return cases


def check_stack(case: StackCase) -> tuple[list[Measurement], list[ErratumMeasurement]]:
    """``g^T H g`` and ``g^T grad F`` of the stack against a JAX Hessian-vector product."""
    jax, jnp = _jax()
    from numeric.curvature import directional
    from numeric.layers import Conv2D, Dense, Flatten, Output
    from numeric.losses import softmax_cross_entropy
    from numeric.network import backward, forward

    M = _Meter(case.name)
    rng = np.random.default_rng(case.seed + 15485863)
    S = (case.H - case.kh) // case.sigma + 1
    T = (case.W - case.kw) // case.tau + 1
    x = rng.uniform(-1, 1, (case.batch, case.C, case.H, case.W))
    cw = rng.uniform(-1, 1, (case.O, case.C, case.kh, case.kw))
    widths = (case.O * S * T, *case.hidden)
    ws = [rng.uniform(-1, 1, (widths[k + 1], widths[k])) for k in range(len(case.hidden))]
    u = rng.uniform(-1, 1, (case.classes, widths[-1]))
    y = np.eye(case.classes)[rng.integers(0, case.classes, case.batch)]
    dirs = (rng.normal(size=cw.shape), *[rng.normal(size=w.shape) for w in ws],
            rng.normal(size=u.shape))  # fmt: skip
    A = _act(case.activation)

    def loss(cw_, *rest):
        *W, U = rest
        z = jax.lax.conv_general_dilated(jnp.asarray(x), cw_, (case.sigma, case.tau), "VALID")
        v = A(z).reshape(case.batch, -1)
        for w_ in W:
            v = jax.nn.relu(v @ w_.T)
        return jnp.mean(-jnp.sum(y * jax.nn.log_softmax(v @ U.T), axis=1))

    params = (jnp.asarray(cw), *[jnp.asarray(w) for w in ws], jnp.asarray(u))
    argnums = tuple(range(len(params)))

    def autodiff(ps, ds):  # compiled once (eager, each operation compiles on its own)
        return (jax.grad(loss, argnums)(*ps),
                jax.jvp(lambda *p: jax.grad(loss, argnums)(*p), ps, ds)[1])  # fmt: skip

    grads, hvp = jax.jit(autodiff)(params, tuple(jnp.asarray(d) for d in dirs))
    gtg_ref = sum(float(jnp.sum(a * b)) for a, b in zip(grads, dirs, strict=True))
    ghg_ref = sum(float(jnp.sum(a * b)) for a, b in zip(hvp, dirs, strict=True))
    conv = Conv2D((case.C, case.H, case.W), case.O, (case.kh, case.kw), (case.sigma, case.tau),
                  case.activation)  # fmt: skip
    layers = [conv, Flatten(conv.out_shape)]
    layers += [Dense(widths[k], widths[k + 1], "relu") for k in range(len(case.hidden))]
    layers.append(Output(widths[-1], case.classes))
    net_params = [cw, *ws, u]
    fwd = forward(layers, net_params, x)
    _, dfdp, d2fdp2 = softmax_cross_entropy(fwd.p, y)
    bwd = backward(layers, net_params, fwd, dfdp)
    gtg, ghg = directional(layers, net_params, fwd, bwd, dfdp, d2fdp2, list(dirs))
    M.m("C14", "g^T H g of conv + ReLU layers + softmax (C12-C14 with C4-C7)", "directional",
        lambda: ghg, ghg_ref)  # fmt: skip
    M.m("C12", "g^T grad F of the stack (C12 tangent, C6)", "directional", lambda: gtg, gtg_ref)
    M.m("C13", "dF/dw of the conv kernels (C13)", "backward, c13_conv_grad_w",
        lambda: bwd.grads[0], _np(grads[0]))  # fmt: skip
    return M.ms, M.errata


# ====================================================================== entry points
def _check_stack_spec(spec) -> tuple[list[Measurement], list[ErratumMeasurement]]:
    from verify.stacks import check_bias_spec, check_stack_spec

    if spec.rnn is None and not spec.convs:
        return check_bias_spec(spec), []
    return check_stack_spec(spec), []


def _stack_specs(kind: str):
    def cases(quick: bool, seed: int):
        from verify import stacks

        return getattr(stacks, f"{kind}_specs")(quick, seed)

    return cases


def _variant_cases(quick: bool, seed: int) -> list:
    from verify import variants

    return variants.variant_cases(quick, seed)


def _check_variant_case(case) -> tuple[list[Measurement], list[ErratumMeasurement]]:
    from verify import variants

    return variants.check_variants(case)


def _step_cases(quick: bool, seed: int) -> list:
    from verify import steps

    return steps.step_cases(quick, seed)


def _check_step_case(case) -> tuple[list[Measurement], list[ErratumMeasurement]]:
    from verify import steps

    return steps.check_steps(case)


def _derived_cases(quick: bool, seed: int) -> list:
    from verify import derived

    return derived.derived_cases(quick, seed)


def _check_derived_case(case) -> tuple[list[Measurement], list[ErratumMeasurement]]:
    from verify import derived

    return derived.check_derived(case)


#: the groups of checks: name -> (cases(quick, seed), check(case))
GROUPS = {
    "mlp": (mlp_cases, check_mlp),
    "conv": (conv_cases, check_conv),
    "rec": (rec_cases, check_rec),
    "stack": (stack_cases, check_stack),
    # whole CNN and RNN stacks with biases (verify/stacks.py)
    "cnn": (_stack_specs("cnn"), _check_stack_spec),
    "rnn": (_stack_specs("rnn"), _check_stack_spec),
    "bias": (_stack_specs("bias"), _check_stack_spec),
    # the CR variants' quantities (verify/variants.py)
    "variants": (_variant_cases, _check_variant_case),
    # whole CR training steps on every path (verify/steps.py)
    "steps": (_step_cases, _check_step_case),
    # the layers derived from their forward rules (verify/derived.py)
    "derived": (_derived_cases, _check_derived_case),
}


def _groups(quick: bool, seed: int, only) -> Iterator[tuple[Callable, object]]:
    for name, (cases, check) in GROUPS.items():
        if only is None or name in only:
            for case in cases(quick, seed):
                yield check, case


def layer_measurements(
    seed: int = 0,
    quick: bool = True,
    backend: str = "cpu",
    progress: bool = False,
    only: tuple[str, ...] | None = None,
) -> tuple[list[Measurement], list[ErratumMeasurement]]:
    """Every measurement of the B.2/B.3 kernels (float64 references and kernels).

    ``only`` restricts the run to some of :data:`GROUPS` (``"mlp"``, ``"conv"``,
    ``"rec"``, ``"stack"``, ``"cnn"``, ``"rnn"``, ``"bias"``, ``"variants"``, ``"steps"``,
    ``"derived"``).
    """
    from verify.backend import run_settings, select_backend

    ms: list[Measurement] = []
    ems: list[ErratumMeasurement] = []
    jobs = list(_groups(quick, seed, only))
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="verify layers", unit="case")
    with run_settings(select_backend(backend)), np.errstate(all="ignore"):
        for fn, case in jobs:
            m, e = fn(case)
            ms.extend(m)
            ems.extend(e)
    return ms, ems


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def layer_results(
    seed: int = 0, quick: bool = True, only: tuple[str, ...] | None = None
) -> tuple[list[dict], list[dict]]:
    """Result and erratum records of the B.2/B.3 kernels, in the report's format.

    Returns
    -------
    results : list of dict
        ``{equation, quantity, dtype, status, max_abs_error, max_rel_error, tolerance,
        cases, comparisons, failures, worst_case, kernels, messages}``.
    errata : list of dict
        ``{equation, kinds, what, reading, corrected_form, section, printed_rel_error,
        corrected_rel_error, measured, measurements}`` for every printed equation of B.2
        and B.3 with an erratum (``measured`` where a kernel of the run evaluates it).
    """
    ms, ems = layer_measurements(seed, quick, only=only)
    results = [
        {
            "equation": r.equation,
            "quantity": r.quantity,
            "dtype": r.dtype,
            "status": r.status,
            "max_abs_error": _num(r.max_abs_error),
            "max_rel_error": _num(r.max_rel_error),
            "tolerance": r.tolerance,
            "cases": r.cases,
            "comparisons": r.comparisons,
            "failures": r.failures,
            "worst_case": r.worst_case,
            "kernels": r.kernels,
            "messages": list(r.messages),
        }
        for r in aggregate(ms)
    ]
    errata = []
    for e in summarise(ems):
        if e.equation not in LAYER_EQUATIONS:
            continue
        for m in e.measurements:
            m["printed_rel_error"] = _num(m["printed_rel_error"])
            m["corrected_rel_error"] = _num(m["corrected_rel_error"])
        errata.append(
            {
                "equation": e.equation,
                "kinds": list(e.kinds),
                "what": e.what,
                "reading": e.reading,
                "corrected_form": e.corrected_form,
                "section": e.section,
                "printed_rel_error": _num(e.printed_rel_error),
                "corrected_rel_error": _num(e.corrected_rel_error),
                "measured": e.measured,
                "measurements": e.measurements,
            }
        )
    return results, errata


def table(results: list[dict], errata: list[dict]) -> str:
    """A plain-text table of :func:`layer_results`."""
    lines = [f"{'eq':>6}  {'status':<6} {'max rel err':>11} {'tol':>7} {'cases':>5}  quantity"]
    for r in results:
        err = "n/a" if r["max_rel_error"] is None else f"{r['max_rel_error']:.1e}"
        lines.append(
            f"{r['equation']:>6}  {r['status']:<6} {err:>11} {r['tolerance']:>7.0e} "
            f"{r['cases']:>5}  {r['quantity']}"
        )
    lines += ["", f"{'eq':>6}  {'printed':>11} {'corrected':>10}  quantity / note"]
    for e in errata:
        for m in e["measurements"]:
            p = m["printed_rel_error"]
            c = m["corrected_rel_error"]
            lines.append(
                f"{e['equation']:>6}  {'n/a' if p is None else f'{p:.1e}':>11} "
                f"{'n/a' if c is None else f'{c:.1e}':>10}  {m['quantity']}"
                + (f" [{m['note']}]" if m["note"] else "")
            )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full sweep (default: quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", choices=sorted(GROUPS), help="groups to run")
    args = parser.parse_args()
    print(table(*layer_results(args.seed, quick=not args.full, only=args.only)))
