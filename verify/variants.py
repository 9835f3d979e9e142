"""JAX references for the quantities of the CR variants (C42-C46, V1, V3, V4, V6).

Each case is a dense network written directly in JAX from Eqs 10-16 (with biases where
the case has them), independent of the generated kernels, in float64:

* C42-C44 (factored adjoints, Hessian diagonal): ``jnp.diag(jax.hessian(F))``;
* C45-C46 (per-layer blocks ``d_k^T H_kk d_k``): ``jax.jvp`` of ``jax.grad`` along the
  direction restricted to layer ``k``, for a random direction and for ``-grad F``;
* V1 (metric norm): ``sum M d^2`` with ``jnp``;
* V3 (predicted decrease): ``-m(alpha)`` of Eq 8 at Eq 37's root, in ``jnp``;
* V4 (loss change from the logits): the difference of JAX's losses at a step large
  enough for that difference to keep its digits;
* V6 (per-variable steps): Table 2's unit step from JAX's gradient and Hessian diagonal.

:func:`variant_cases` and :func:`check_variants` form the ``variants`` group of
:mod:`verify.layers`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verify.errata import ErratumMeasurement
from verify.measure import Measurement
from verify.meter import _Meter, _np

__all__ = ["VARIANT_EQUATIONS", "VariantCase", "check_variants", "variant_cases"]

#: the registry equations whose kernels this group checks (the sweep of
#: :mod:`verify.cases` does not)
VARIANT_EQUATIONS = ("C42", "C43", "C44", "C45", "C46", "V1", "V3", "V4", "V6")


@dataclass(frozen=True)
class VariantCase:
    """A dense network: widths, classes, batch, activation, biases."""

    widths: tuple[int, ...]
    classes: int
    batch: int
    activation: str
    bias: bool
    seed: int = 0

    @property
    def name(self) -> str:
        w = "-".join(map(str, self.widths))
        b = "-bias" if self.bias else ""
        return f"variants-{self.activation}{b}-{w}-c{self.classes}-b{self.batch}-s{self.seed}"


def variant_cases(quick: bool = True, seed: int = 0) -> list[VariantCase]:
    """ReLU with and without biases (the Hessian diagonal is derived for A'' = 0) and
    tanh (the blocks carry C11's second-order terms)."""
    cases = [
        VariantCase((5, 4, 3, 4), 3, 4, "relu", False, seed),
        VariantCase((4, 3, 5), 3, 3, "relu", True, seed + 1),
        VariantCase((4, 5, 4), 3, 3, "tanh", False, seed + 2),
    ]
    if not quick:
        cases += [
            VariantCase((6, 5, 5, 5, 4), 4, 5, "relu", True, seed + 3),
            VariantCase((3, 4, 4, 3), 2, 4, "softplus", True, seed + 4),
        ]
    return cases


def check_variants(case: VariantCase) -> tuple[list[Measurement], list[ErratumMeasurement]]:
    """The variants' quantities on one case against JAX (float64)."""
    from verify.backend import require_jax

    jax = require_jax()
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from numeric import curvature as cv
    from numeric import rules as vr
    from numeric.architectures import build
    from numeric.kernels import cr_variants as kv
    from numeric.losses import hessian_factor, loss_change
    from numeric.stepping import evaluate

    M = _Meter(case.name)
    rng = np.random.default_rng(case.seed + 104729)
    net = build("mlp", (case.widths[0],), case.classes, activation=case.activation,
                bias=case.bias, options={"hidden": list(case.widths[1:])}, init=0.6,
                seed=case.seed)  # fmt: skip
    params = [p + 0.05 * rng.normal(size=p.shape) for p in net.params]
    net = net.with_params(params)
    x = rng.normal(size=(case.batch, case.widths[0]))
    y = np.eye(case.classes)[rng.integers(0, case.classes, case.batch)]
    act = {
        "relu": jax.nn.relu,
        "tanh": jnp.tanh,
        "softplus": jax.nn.softplus,
        "sigmoid": jax.nn.sigmoid,
    }[case.activation]
    per = 2 if case.bias else 1

    def logits(ps):
        v = jnp.asarray(x)
        n = (len(ps) // per) - 1
        for k in range(n):
            z = v @ ps[per * k].T
            v = act(z + ps[per * k + 1] if case.bias else z)
        p = v @ ps[per * n].T
        return p + ps[per * n + 1] if case.bias else p

    def loss(ps):
        return -jnp.mean(jnp.sum(jnp.asarray(y) * jax.nn.log_softmax(logits(ps), axis=1), 1))

    jparams = [jnp.asarray(p) for p in params]
    ev = evaluate(net.layers, net.params, x, y, True)
    owner = cv.blocks(net.layers)
    relu = case.activation == "relu"
    d_random = [rng.normal(size=p.shape) for p in params]
    # the code under test: the Hessian diagonal (A'' = 0 only), the per-layer blocks
    if relu:
        diag = cv.hessian_diagonal(net.layers, net.params, ev.tape,
                                   hessian_factor(ev.tape.p, ev.d2fdp2))  # fmt: skip
    ghgs = {
        kind: cv.block_curvature(net.layers, net.params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2,
                                 d_random if kind == "random" else None)[1]
        for kind in ("random", "sgd")
    }  # fmt: skip
    n_blocks = len(ghgs["random"])

    def references(ps, d_rand):
        """JAX's gradient, Hessian diagonal (ReLU) and block products ``d_k^T H_kk d_k``
        along the random direction and along ``-grad F``, in one compiled function."""
        g = jax.grad(loss)(ps)
        out = {"grad": g}
        if relu:
            flat, unravel = ravel_pytree(ps)
            out["hdiag"] = unravel(jnp.diag(jax.hessian(lambda t: loss(unravel(t)))(flat)))
        for kind, d in (("random", d_rand), ("sgd", [-gi for gi in g])):
            blocks = []
            for k in range(n_blocks):
                dk = [di if b == k else jnp.zeros_like(p)
                      for di, p, b in zip(d, ps, owner, strict=True)]  # fmt: skip
                _, hd = jax.jvp(jax.grad(loss), (ps,), (dk,))
                blocks.append(sum(jnp.vdot(a, b) for a, b in zip(dk, hd, strict=True)))
            out[kind] = blocks
        return out

    REF = jax.jit(references)(jparams, [jnp.asarray(d) for d in d_random])

    # C42-C44: the Hessian diagonal (A'' = 0 only)
    if relu:
        ref = REF["hdiag"]
        cat = lambda arrays: np.concatenate([np.ravel(np.asarray(a)) for a in arrays])  # noqa: E731
        M.m("C44", "Hessian diagonal, every parameter (C42-C44 sweep; C21 for u)",
            "hessian_diagonal, c42_factored_adjoint_v_*, c43_factored_adjoint_z, "
            "c44_hessian_diag_w, c21_hessian_diag_u", lambda: cat(diag), cat(ref))  # fmt: skip
        g = [np.asarray(gi) for gi in REF["grad"]]
        d = [-gi for gi in g]
        sigma = 10.0
        alphas, _, _ = vr.per_variable_lengths(d, g, diag, sigma, 0.0)
        want = []
        for gi, hi in zip(g, ref, strict=True):
            gabs, hi = np.abs(gi), np.asarray(hi)
            root = np.sqrt(hi**2 + 2 * sigma * gabs)
            unit = np.where(hi >= 0, 2 * gabs / np.where(gabs > 0, hi + root, 1.0),
                            (root - hi) / sigma)  # fmt: skip
            want.append(np.where(gabs > 0, -np.sign(gi) * unit, 0.0))
        M.m("V6", "per-variable steps alpha_i d_i along -grad F (Table 2's unit steps)",
            "per_variable_lengths, cr_step_length",
            lambda: cat([a * di for a, di in zip(alphas, d, strict=True)]), cat(want))  # fmt: skip

    # C45-C46: per-layer blocks
    for kind in ("random", "sgd"):
        ghg = ghgs[kind]
        for k in range(len(ghg)):
            eq = "C46" if k == len(ghg) - 1 else "C45"
            M.m(eq, f"block d_k^T H_kk d_k of layer {k + 1}, {kind} direction",
                "block_curvature, propagate, c4/c5 tangents, c7_pdot_term, c11 (A'' != 0)",
                lambda k=k, ghg=ghg: ghg[k], _np(REF[kind][k]))  # fmt: skip

    # V1, V3, V4
    d = [rng.normal(size=p.shape) for p in params]
    met = [rng.uniform(0.1, 3.0, size=p.shape) for p in params]
    M.m("V1", "||d||_M^2 in a diagonal metric", "metric_sq_norm, v1_metric_sq_norm_w",
        lambda: vr.metric_sq_norm(d, met),
        _np(sum(jnp.sum(jnp.asarray(m) * jnp.asarray(di) ** 2) for m, di in zip(met, d,
                                                                               strict=True))))  # fmt: skip
    h, dg, c = float(rng.normal()), -float(rng.uniform(0.1, 2.0)), float(rng.uniform(0.1, 5.0))
    root = (-h + jnp.sqrt(h**2 - 2 * dg * c)) / c
    model = root * dg + root**2 * h / 2 + c * root**3 / 6
    M.m("V3", "predicted decrease m(0) - m(alpha) at Eq 37's root", "predicted_decrease",
        lambda: kv.predicted_decrease(alpha=float(root), gtg=dg, c=c), _np(-model))  # fmt: skip
    p0 = np.asarray(logits(jparams))
    p1 = p0 + 0.3 * rng.normal(size=p0.shape)
    ls = jax.nn.log_softmax
    ref = -jnp.sum(y * ls(p1, axis=1), 1) + jnp.sum(y * ls(p0, axis=1), 1)
    M.m("V4", "f(p + dp) - f(p) per sample from the logits", "loss_change",
        lambda: loss_change(p0, p1, y), _np(ref), per_sample=True)  # fmt: skip
    return M.ms, M.errata
