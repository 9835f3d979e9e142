"""The layers derived from their forward rules (:mod:`numeric.layers.derived`: the
residual block, layer normalisation and softmax self-attention) against JAX autodiff, in
float64.

Per layer (:class:`DerivedCase`), the reference is the layer's map written directly in
``jax.numpy`` (:func:`verify.stacks.jax_loss`'s lines for it), and each auto-derived
quantity is compared with autodiff of it, on the NumPy kernels and on the same kernels
with JAX arrays:

* the input adjoint (``vbar``, ``xbar``) and the batch-mean gradients: ``jax.vjp`` of the map with
  the output adjoint ``ybar`` (the gradient of ``mean_m ybar_m . y_m``);
* the tangent ``ydot``: ``jax.jvp`` along a random input tangent and parameter direction;
* ``curvature``, per sample and as the batch mean: the second derivative of
  ``ybar_m . y_m(x + e xdot, theta + e d)`` in ``e`` at 0 (``jvp`` of ``jvp``).

A whole network with both layers (:class:`DerivedStackCase`: dense, layer norm, residual
block, output) is compared as :mod:`verify.stacks` compares the CNN and RNN stacks:
``g^T grad F`` and ``g^T H g`` along a random and the SGD direction, the gradient and
Eq 37's step length, against ``jax.grad`` and ``jax.jvp(jax.grad)``.

Cases are valid by construction: the residual blocks use smooth activations (tanh,
softplus, sigmoid; a ReLU unit may sit at its kink) and the inputs of layer
normalisation have a per-sample variance bounded away from zero (random normal rows of
at least three features).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verify.errata import ErratumMeasurement
from verify.measure import Measurement
from verify.meter import _Meter

__all__ = [
    "DerivedCase",
    "DerivedStackCase",
    "check_derived",
    "derived_cases",
    "make_layer",
]


@dataclass(frozen=True)
class DerivedCase:
    """One derived layer: ``kind`` (``residual``, ``layernorm`` or ``attention``), width
    (features), batch, activation (residual blocks), whether it is the first layer (no
    input tangent); attention reads ``tokens`` tokens into ``d_k`` features."""

    kind: str
    d: int
    batch: int
    activation: str = "tanh"
    first: bool = False
    seed: int = 0
    tokens: int = 3
    d_k: int = 2

    @property
    def name(self) -> str:
        act = f"-{self.activation}" if self.kind == "residual" else ""
        if self.kind == "attention":
            act = f"-t{self.tokens}-k{self.d_k}"
        first = "-first" if self.first else ""
        return f"derived-{self.kind}{act}-d{self.d}-b{self.batch}{first}-s{self.seed}"


@dataclass(frozen=True)
class DerivedStackCase:
    """Dense (``d_in -> d``, tanh) then ``blocks`` x (layer norm, residual block) and the
    output of ``classes``."""

    d_in: int
    d: int
    blocks: int
    classes: int
    batch: int
    activation: str = "tanh"
    seed: int = 0

    @property
    def name(self) -> str:
        return (f"derived-stack-{self.activation}-{self.d_in}-{self.d}x{self.blocks}"
                f"-c{self.classes}-b{self.batch}-s{self.seed}")  # fmt: skip


def derived_cases(quick: bool = True, seed: int = 0) -> list:
    """Both layers, with and without an input tangent, and one network of them."""
    cases: list = [
        DerivedCase("residual", 5, 4, "tanh", seed=seed),
        DerivedCase("residual", 4, 3, "softplus", first=True, seed=seed + 1),
        DerivedCase("layernorm", 5, 4, seed=seed + 2),
        DerivedCase("layernorm", 3, 2, first=True, seed=seed + 3),
        DerivedCase("attention", 4, 3, tokens=3, d_k=2, seed=seed + 8),
        DerivedCase("attention", 3, 2, tokens=4, d_k=3, first=True, seed=seed + 9),
        DerivedStackCase(6, 4, 1, 3, 5, "tanh", seed + 4),
    ]
    if not quick:
        cases += [
            DerivedCase("residual", 7, 6, "sigmoid", seed=seed + 5),
            DerivedCase("layernorm", 8, 6, seed=seed + 6),
            DerivedStackCase(5, 6, 2, 4, 7, "softplus", seed + 7),
        ]
    return cases


def make_layer(case: DerivedCase):
    """The layer, its parameters, input, output adjoint and a direction (NumPy)."""
    from numeric.layers import Attention, LayerNorm, Residual

    rng = np.random.default_rng(case.seed + 104729)
    if case.kind == "residual":
        layer = Residual(case.d, case.activation)
        params = [rng.uniform(-1, 1, (case.d, case.d)), rng.uniform(-1, 1, case.d)]
    elif case.kind == "layernorm":
        layer = LayerNorm(case.d)
        params = [rng.uniform(0.5, 1.5, case.d), rng.uniform(-1, 1, case.d)]
    else:
        layer = Attention(case.tokens, case.d, case.d_k)
        params = [rng.uniform(-1, 1, (case.d_k, case.d)) for _ in range(3)]
    x = rng.normal(size=(case.batch, *layer.in_shape))
    ybar = rng.normal(size=(case.batch, *layer.out_shape))
    xdot = None if case.first else rng.normal(size=x.shape)
    dparams = [rng.normal(size=p.shape) for p in params]
    return layer, params, x, ybar, xdot, dparams


def _layer_map(layer):
    """The layer in plain ``jax.numpy``: ``(params, x) -> y``."""
    from verify.stacks import jax_loss

    def apply(params, x):
        return jax_loss([layer], x, None, logits=True)(list(params))

    return apply


def _numeric_layer(layer, params, x, ybar, xdot, dparams) -> dict:
    y, cache = layer.forward(params, x)
    xbar, adjoint, grads = layer.backward(params, x, cache, ybar)
    ydot, tangent = layer.tangent(params, x, cache, xdot, dparams)
    return {
        "y": y,
        "vbar": xbar,
        "grads": grads,
        "ydot": ydot,
        "curv": layer.second_order(params, x, cache, adjoint, tangent, "sample"),
        "curv_mean": layer.second_order(params, x, cache, adjoint, tangent, "mean"),
    }


def check_layer(case: DerivedCase) -> list[Measurement]:
    import jax
    import jax.numpy as jnp

    from verify.backend import require_jax

    require_jax()
    layer, params, x, ybar, xdot, dparams = make_layer(case)
    M = _Meter(case.name)
    f = _layer_map(layer)
    jp = [jnp.asarray(p) for p in params]
    jx, jybar = jnp.asarray(x), jnp.asarray(ybar)
    jxdot = jnp.zeros_like(jx) if xdot is None else jnp.asarray(xdot)
    jd = [jnp.asarray(d) for d in dparams]
    y_ref, vjp = jax.vjp(f, jp, jx)
    pbar, xbar_ref = vjp(jybar)
    grads_ref = [g / case.batch for g in pbar]
    _, ydot_ref = jax.jvp(f, (jp, jx), (jd, jxdot))

    def along(e):
        pe = [p + e * d for p, d in zip(jp, jd, strict=True)]
        return jnp.sum(jybar * f(pe, jx + e * jxdot), axis=tuple(range(1, jybar.ndim)))

    def first(e):
        return jax.jvp(along, (e,), (jnp.ones_like(e),))[1]

    curv_ref = jax.jvp(first, (jnp.zeros(()),), (jnp.ones(()),))[1]
    runs = {"numpy": _numeric_layer(layer, params, x, ybar, xdot, dparams)}
    runs["jax"] = jax.jit(lambda p, xx, yb, xd, d: _numeric_layer(layer, p, xx, yb, xd, d))(
        jp, jx, jybar, None if xdot is None else jxdot, jd
    )
    rule, names, inp = layer.RULE, layer.PARAMS, layer.INPUT
    for backend, got in runs.items():
        tag = f"{backend} kernels"
        M.m(f"A.{rule}", f"forward y ({tag})", "forward",
            lambda got=got: got["y"], np.asarray(y_ref), per_sample=True)  # fmt: skip
        M.m(f"A.{rule}.{inp}bar", f"input adjoint {inp}bar ({tag})", f"{rule}_{inp}bar",
            lambda got=got: got["vbar"], np.asarray(xbar_ref), per_sample=True)  # fmt: skip
        for k, p in enumerate(names):
            M.m(f"A.{rule}.{p}bar", f"gradient of {p}, batch mean ({tag})", f"{rule}_{p}bar",
                lambda got=got, k=k: got["grads"][k], np.asarray(grads_ref[k]))  # fmt: skip
        M.m(f"A.{rule}.ydot", f"tangent ydot ({tag})", f"{rule}_ydot",
            lambda got=got: got["ydot"], np.asarray(ydot_ref), per_sample=True)  # fmt: skip
        M.m(f"A.{rule}.curvature", f"d^2/de^2 ybar . y per sample ({tag})",
            f"{rule}_curvature", lambda got=got: got["curv"], np.asarray(curv_ref),
            per_sample=True)  # fmt: skip
        M.m(f"A.{rule}.curvature", f"d^2/de^2 ybar . y, batch mean ({tag})",
            f"{rule}_curvature", lambda got=got: got["curv_mean"],
            float(jnp.mean(curv_ref)))  # fmt: skip
    return M.ms


def make_stack(case: DerivedStackCase):
    """Layers, parameters (random scales and shifts), inputs, one-hot labels, direction."""
    from numeric.architectures import resmlp

    rng = np.random.default_rng(case.seed + 1299709)
    layers = resmlp(case.d_in, case.classes, case.d, case.blocks, True, case.activation)
    params = []
    for layer in layers:
        for shape in layer.param_shapes:
            params.append(rng.uniform(-1, 1, shape))
    x = rng.normal(size=(case.batch, case.d_in))
    y = np.eye(case.classes)[rng.integers(0, case.classes, case.batch)]
    direction = [rng.normal(size=p.shape) for p in params]
    return layers, params, x, y, direction


def check_stack(case: DerivedStackCase) -> list[Measurement]:
    """``g^T grad F``, ``g^T H g`` (random and SGD directions), the gradient and alpha
    of the network on both backends against JAX (as :func:`verify.stacks.check_stack_spec`)."""
    import jax
    import jax.numpy as jnp

    from numeric.cr import step_length
    from verify.stacks import _numeric, autodiff_reference, reference_alpha

    layers, params, x, y, direction = make_stack(case)
    M = _Meter(case.name)
    ref = autodiff_reference(layers, params, x, y, direction)
    flat_g = ref["grads"]
    jp = [jnp.asarray(p) for p in params]
    jd = [jnp.asarray(d) for d in direction]
    runs = {"numpy": _numeric(layers, params, x, y, direction)}
    fn = jax.jit(lambda p, xx, yy, d: _numeric(layers, p, xx, yy, d))
    runs["jax"] = fn(jp, jnp.asarray(x), jnp.asarray(y), jd)
    sigma = 100.0
    for backend, got in runs.items():
        tag = f"resmlp, {backend} kernels"
        M.m("A.curvature", f"g^T H g, random direction ({tag})", "directional",
            lambda got=got: float(got["ghg"]), ref["ghg"])  # fmt: skip
        M.m("A.curvature", f"g^T grad F, random direction ({tag})", "directional",
            lambda got=got: float(got["gtg"]), ref["gtg"])  # fmt: skip
        M.m("A.curvature", f"g^T H g, SGD direction ({tag})", "sgd_curvature",
            lambda got=got: float(got["sgd_ghg"]), ref["sgd_ghg"])  # fmt: skip
        M.m("A.gradient", f"gradient, all parameters ({tag})", "backward",
            lambda got=got: np.concatenate([np.asarray(g).ravel() for g in got["grads"]]),
            flat_g)  # fmt: skip
        sq_sgd = -ref["sgd_gtg"]
        if sq_sgd > 0:
            n3 = sq_sgd**1.5
            M.m("37", f"alpha, SGD direction, sigma={sigma:g} ({tag})", "step_length",
                lambda got=got, n3=n3: step_length(
                    float(got["sgd_gtg"]), float(got["sgd_ghg"]), sigma, n3, 0.0)[0],
                reference_alpha(ref["sgd_gtg"], ref["sgd_ghg"], sigma, n3))  # fmt: skip
    return M.ms


def check_derived(case) -> tuple[list[Measurement], list[ErratumMeasurement]]:
    """One case of the ``derived`` group of ``verify report``."""
    if isinstance(case, DerivedStackCase):
        return check_stack(case), []
    return check_layer(case), []
