"""Whole CNN and RNN stacks against JAX: ``g^T grad F``, ``g^T H g``, the gradient and the
CR step length alpha (Eq 37), in float64.

The reference is an independent JAX model of the same layers (:func:`jax_loss`:
``jax.lax.conv_general_dilated`` for a conv layer, a Python loop over the steps for a
recurrent one, ``x @ w.T + b`` for a dense one) differentiated by ``jax.grad`` and
``jax.jvp(jax.grad)`` (a Hessian-vector product).  The network code under test is
:mod:`numeric.network` and :mod:`numeric.curvature` with the generated kernels, on NumPy
and, under ``jax.jit``, on JAX arrays.

Cases are valid by construction (:func:`make_stack`): every kernel fits its input (sizes
are drawn from the output side), and a ReLU network is built off its kinks: a dense or
conv layer's bias puts zero in the middle of the widest gap between its pre-activations
over the batch (and positions), or below or above all of them, so ``|z| >= margin``
everywhere; a ReLU recurrent layer gets a sign per unit shared by its row of ``w``, of
``U`` and its bias, with positive inputs, so each unit is active (or inactive) at every
step with ``|z|`` bounded away from zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from verify.backend import jax_activation
from verify.cases import TOLERANCES

__all__ = [
    "ConvSpec",
    "StackSpec",
    "make_stack",
    "jax_loss",
    "check_stack_spec",
    "check_bias_spec",
    "bias_specs",
    "cnn_specs",
    "rnn_specs",
    "reference_alpha",
]

TOL = TOLERANCES["float64"]
MARGIN = 0.05


@dataclass(frozen=True)
class ConvSpec:
    """One conv layer by its *output* size: ``S x T`` outputs of ``O`` channels from a
    ``K_h x K_w`` kernel with strides ``(sigma, tau)``; ``extra = (e_h, e_w)`` input rows and
    columns the last window leaves over (``0 <= e < stride``; 0 and S = 1: the kernel just
    fits).  In a stack, ``S, T`` of every conv but the last are the next conv's input size."""

    O: int
    S: int
    T: int
    kh: int
    kw: int
    sigma: int = 1
    tau: int = 1
    extra: tuple[int, int] = (0, 0)

    def input_hw(self) -> tuple[int, int]:
        return (
            self.kh + self.sigma * (self.S - 1) + self.extra[0],
            self.kw + self.tau * (self.T - 1) + self.extra[1],
        )


@dataclass(frozen=True)
class StackSpec:
    """A CNN (``convs`` on a ``C``-channel image), an RNN (``rnn = (d_in, width, steps,
    sequence)``) or, with neither, an MLP on ``C`` features; then dense widths ``dense``
    and ``classes`` logits.  With ``convs`` and ``rnn`` the conv output (O, S, T) is read by
    a sequence RNN as O * S steps of T features (``rnn``'s width only is used); with ``pre``
    dense layers on ``C`` features feed the paper's recurrence (width ``pre[-1]``)."""

    batch: int
    activation: str
    classes: int
    C: int = 1
    convs: tuple[ConvSpec, ...] = ()
    rnn: tuple[int, int, int, bool] | None = None
    dense: tuple[int, ...] = ()
    pre: tuple[int, ...] = ()
    bias: bool = True
    seed: int = 0
    label: str = field(default="", compare=False)
    #: also run the generated kernels on JAX arrays under jit (the slow part of a check)
    jax: bool = field(default=True, compare=False)

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        if self.rnn is not None and self.convs:
            body = "crnn-" + "-".join(f"o{c.O}k{c.kh}x{c.kw}" for c in self.convs)
            body += f"-w{self.rnn[1]}"
        elif self.rnn is not None:
            d, w, t, seq = self.rnn
            body = f"rnn-{'seq' if seq else 'paper'}-d{d}-w{w}-t{t}"
            if self.pre:
                body = f"pre{'-'.join(map(str, self.pre))}-{body}"
        elif not self.convs:
            body = f"mlp-d{self.C}"
        else:
            body = "cnn-" + "-".join(
                f"o{c.O}k{c.kh}x{c.kw}s{c.sigma}{c.tau}S{c.S}x{c.T}" for c in self.convs
            )
        dense = "-".join(map(str, self.dense)) or "none"
        return (
            f"{body}-dense{dense}-c{self.classes}-{self.activation}"
            f"{'-bias' if self.bias else ''}-b{self.batch}-s{self.seed}"
        )


def _layers(spec: StackSpec) -> list:
    from numeric.layers import Conv2D, Dense, Flatten, Output, Recurrent, Reshape

    act, bias = spec.activation, spec.bias
    layers: list = []
    if spec.convs:
        convs = _chain(spec.convs)
        c_in = spec.C
        h, w_ = convs[0].input_hw()
        for cs in convs:
            layer = Conv2D((c_in, h, w_), cs.O, (cs.kh, cs.kw), (cs.sigma, cs.tau), act, bias)
            layers.append(layer)
            c_in, h, w_ = layer.out_shape
        if spec.rnn is not None:  # the conv output read as c_in * h steps of w_ features
            layers.append(Reshape((c_in, h, w_), (c_in * h, w_)))
            layers.append(Recurrent(w_, spec.rnn[1], c_in * h, act, bias, True))
            width = spec.rnn[1]
        else:
            layers.append(Flatten(layers[-1].out_shape))
            width = c_in * h * w_
    elif spec.rnn is not None:
        d, w, t, seq = spec.rnn
        if spec.pre:  # dense layers, then the paper's recurrence from their output
            width = spec.C
            for dw in spec.pre:
                layers.append(Dense(width, dw, act, bias))
                width = dw
            layers.append(Recurrent(width, width, t, act, bias, False))
        else:
            layers.append(Recurrent(d, w, t, act, bias, seq))
            width = w
    else:  # a dense network on C input features
        width = spec.C
    for dw in spec.dense:
        layers.append(Dense(width, dw, act, bias))
        width = dw
    layers.append(Output(width, spec.classes, bias))
    return layers


def _chain(convs) -> list[ConvSpec]:
    """The convs with each output size but the last set to the next conv's input size."""
    from dataclasses import replace

    out = [convs[-1]]
    for cs in reversed(convs[:-1]):
        h, w = out[0].input_hw()
        out.insert(0, replace(cs, S=h, T=w))
    return out


def _gap_bias(z: np.ndarray, rng, margin: float = MARGIN) -> float:
    """A bias putting zero below, above, or in the widest gap of the values ``z``."""
    vals = np.sort(z.ravel())
    choice = rng.integers(3)
    if choice == 0 or vals.size < 2:
        return float(margin - vals[0])  # every unit active
    if choice == 1:
        return float(-vals[-1] - margin)  # every unit inactive
    gaps = np.diff(vals)
    g = int(np.argmax(gaps))
    return float(-(vals[g] + vals[g + 1]) / 2.0)


def make_stack(spec: StackSpec):
    """``(layers, params, x, y, direction)`` of a case, deterministic in ``spec.seed``.

    Returns
    -------
    layers : list of numeric layers
    params : list of float64 arrays
    x : array (batch, *in_shape)
    y : array (batch, classes), one-hot
    direction : list of arrays shaped like ``params`` (standard normal)
    """
    from numeric.network import forward

    rng = np.random.default_rng(spec.seed + 7)
    layers = _layers(spec)
    relu = spec.activation == "relu"
    in_shape = layers[0].in_shape
    x = (
        rng.uniform(0.1, 1.0, (spec.batch, *in_shape))
        if relu
        else rng.uniform(-1, 1, (spec.batch, *in_shape))
    )
    params: list = []
    v = x
    for layer in layers:
        shapes = layer.param_shapes
        ps = [rng.uniform(-1, 1, s) for s in shapes]
        kind = type(layer).__name__
        if relu and kind == "Recurrent":
            ps = _signed_recurrent(layer, rng)
        elif relu and kind in ("Dense", "Conv2D") and layer.bias:
            ps[-1] = np.zeros(shapes[-1])
            z = _preactivation(layer, ps, v)
            ps[-1] = np.array([_gap_bias(np.take(z, j, axis=1), rng) for j in range(z.shape[1])])
        params.extend(ps)
        v = layer.forward(ps, v, second=False)[0]
    y = np.eye(spec.classes)[rng.integers(0, spec.classes, spec.batch)]
    direction = [rng.normal(size=p.shape) for p in params]
    forward(layers, params, x)  # the stack runs
    return layers, params, x, y, direction


def _preactivation(layer, ps, v) -> np.ndarray:
    """The pre-activation of a dense or conv layer (its bias is zero here)."""
    kind = type(layer).__name__
    if kind == "Dense":
        return v @ ps[0].T
    z = layer.patches(v)
    return np.einsum("bcstlk,oclk->bost", z, ps[0])


def _signed_recurrent(layer, rng) -> list:
    """ReLU recurrence off its kinks: a sign per unit on its rows of ``w``, ``U`` and ``b``
    (unit 0 active), so with positive inputs every step's ``|z|`` is bounded below."""
    h = layer.width
    sign = np.where(rng.random(h) < 0.5, -1.0, 1.0)
    sign[0] = 1.0
    w = sign[:, None] * rng.uniform(0.1, 1.0, (h, h)) / h
    out = [w]
    if layer.sequence:
        out.append(sign[:, None] * rng.uniform(0.1, 1.0, (h, layer.d_in)))
    if layer.bias:
        out.append(sign * rng.uniform(0.1, 1.0, h))
    return out


# ---------------------------------------------------------------------- JAX reference
def jax_loss(layers, x, y, logits: bool = False):
    """``F(params)`` of the stack, written directly in JAX (independent of the kernels);
    with ``logits``, the stack's output instead (``y`` is then unused)."""
    import jax
    import jax.numpy as jnp

    def loss(params):
        v = jnp.asarray(x)
        pos = 0
        for layer in layers:
            n = layer.n_params
            ps = params[pos : pos + n]
            pos += n
            kind = type(layer).__name__
            bias = getattr(layer, "bias", False)
            if kind == "Conv2D":
                z = jax.lax.conv_general_dilated(v, ps[0], tuple(layer.stride), "VALID")
                if bias:
                    z = z + ps[1][None, :, None, None]
                v = jax_activation(layer.activation)(z)
            elif kind == "Flatten":
                v = v.reshape(v.shape[0], -1)
            elif kind == "Reshape":
                v = v.reshape(v.shape[0], *layer.out_shape)
            elif kind == "Dense":
                z = v @ ps[0].T
                v = jax_activation(layer.activation)(z + ps[1] if bias else z)
            elif kind == "Recurrent":
                a = jax_activation(layer.activation)
                w = ps[0]
                u = ps[1] if layer.sequence else None
                b = ps[-1] if bias else 0.0
                if layer.sequence:
                    h = jnp.zeros((v.shape[0], layer.width))
                    for t in range(layer.steps):
                        h = a(h @ w.T + v[:, t] @ u.T + b)
                else:
                    h = v
                    for _ in range(layer.steps):
                        h = a(h @ w.T + b)
                v = h
            elif kind == "Residual":
                v = v + jax_activation(layer.activation)(v @ ps[0].T + ps[1])
            elif kind == "LayerNorm":
                mu = jnp.mean(v, axis=1, keepdims=True)
                var = jnp.mean((v - mu) ** 2, axis=1, keepdims=True)
                v = ps[0] * (v - mu) / jnp.sqrt(var + layer.epsilon) + ps[1]
            elif kind == "Attention":
                q, key, val = (v @ w.T for w in ps)
                p = jax.nn.softmax(q @ jnp.swapaxes(key, 1, 2), axis=2)
                v = p @ val
            elif kind == "Output":
                v = v @ ps[0].T + (ps[1] if bias else 0.0)
            else:  # pragma: no cover
                raise TypeError(kind)
        if logits:
            return v
        return jnp.mean(-jnp.sum(jnp.asarray(y) * jax.nn.log_softmax(v), axis=1))

    return loss


def reference_alpha(gtg: float, ghg: float, sigma: float, norm3: float) -> float:
    """Eq 37's positive root for ``gtg < 0``, in whichever algebraically equal form does
    not cancel (``-2 gtg / (ghg + sqrt(...))`` for ``ghg > 0``)."""
    root = math.sqrt(ghg * ghg - 2.0 * gtg * sigma * norm3)
    if ghg > 0:
        return -2.0 * gtg / (ghg + root)
    return (-ghg + root) / (sigma * norm3)


def _numeric(layers, params, x, y, direction):
    """The quantities from the generated kernels, on the arrays' backend."""
    from numeric.curvature import directional, sgd_curvature, sq_norm
    from numeric.losses import softmax_cross_entropy
    from numeric.network import backward, forward

    tape = forward(layers, params, x)
    _, dfdp, d2fdp2 = softmax_cross_entropy(tape.p, y)
    adj = backward(layers, params, tape, dfdp)
    gtg, ghg = directional(layers, params, tape, adj, dfdp, d2fdp2, direction)
    sgtg, sghg = sgd_curvature(layers, params, tape, adj, dfdp, d2fdp2)
    return {
        "grads": adj.grads,
        "gtg": gtg,
        "ghg": ghg,
        "sgd_gtg": sgtg,
        "sgd_ghg": sghg,
        "sq": sq_norm(direction),
    }


def autodiff_reference(layers, params, x, y, direction) -> dict:
    """JAX autodiff of a stack's loss: the flat gradient ``grads``, ``gtg = d^T grad F``
    and ``ghg = d^T H d`` along ``direction``, and ``sgd_gtg``, ``sgd_ghg`` along
    ``d = -grad F`` (from ``jax.grad`` and ``jax.jvp(jax.grad)``, one compiled call)."""
    import jax
    import jax.numpy as jnp

    loss = jax_loss(layers, x, y)
    jp = [jnp.asarray(p) for p in params]
    jd = [jnp.asarray(d) for d in direction]

    def autodiff(p, d):
        g = jax.grad(loss)(p)
        return g, jax.jvp(jax.grad(loss), (p,), (d,))[1], jax.jvp(jax.grad(loss), (p,), (g,))[1]

    grads, hvp, hgg = jax.jit(autodiff)(jp, jd)
    flat_g = np.concatenate([np.asarray(g).ravel() for g in grads])
    return {
        "grads": flat_g,
        "gtg": float(sum(jnp.vdot(g, d) for g, d in zip(grads, jd, strict=True))),
        "ghg": float(sum(jnp.vdot(h, d) for h, d in zip(hvp, jd, strict=True))),
        "sgd_gtg": -float(flat_g @ flat_g),
        "sgd_ghg": float(sum(jnp.vdot(h, g) for h, g in zip(hgg, grads, strict=True))),
    }


def check_stack_spec(spec: StackSpec, sigma: float = 100.0, jax_backend: bool | None = None):
    """Measurements of one stack: NumPy kernels (and, with ``jax_backend``, default
    ``spec.jax``, the JAX-backend kernels under jit) against JAX autodiff.  Returns a list
    of :class:`verify.measure.Measurement`."""
    import jax
    import jax.numpy as jnp

    from numeric.cr import step_length
    from verify.meter import _Meter

    jax_backend = spec.jax if jax_backend is None else jax_backend
    layers, params, x, y, direction = make_stack(spec)
    M = _Meter(spec.name)
    ref = autodiff_reference(layers, params, x, y, direction)
    jp = [jnp.asarray(p) for p in params]
    jd = [jnp.asarray(d) for d in direction]
    kind = "rnn" if spec.rnn is not None else "cnn"
    eqs = {"cnn": ("C33", "C29"), "rnn": ("C41", "C40")}[kind]
    runs = {"numpy": _numeric(layers, params, x, y, direction)}
    if jax_backend:
        fn = jax.jit(lambda p, xx, yy, d: _numeric(layers, p, xx, yy, d))
        runs["jax"] = fn(jp, jnp.asarray(x), jnp.asarray(y), jd)
    for backend, got in runs.items():
        tag = f"{kind}, {backend} kernels"
        M.m(eqs[0], f"g^T H g, random direction ({tag})", "directional",
            lambda got=got: float(got["ghg"]), ref["ghg"])  # fmt: skip
        M.m(eqs[1], f"g^T grad F, random direction ({tag})", "directional",
            lambda got=got: float(got["gtg"]), ref["gtg"])  # fmt: skip
        M.m(eqs[0], f"g^T H g, SGD direction ({tag})", "sgd_curvature",
            lambda got=got: float(got["sgd_ghg"]), ref["sgd_ghg"])  # fmt: skip
        M.m(eqs[1], f"g^T grad F = -||grad F||^2, SGD direction ({tag})", "sgd_curvature",
            lambda got=got: float(got["sgd_gtg"]), ref["sgd_gtg"])  # fmt: skip
        M.m("C24", f"gradient, all parameters ({tag})", "backward",
            lambda got=got: np.concatenate([np.asarray(g).ravel() for g in got["grads"]]),
            ref["grads"])  # fmt: skip
        sq = float(got["sq"])
        norm3 = sq**1.5
        if ref["gtg"] < 0:
            M.m("37", f"alpha, random direction, sigma={sigma:g} ({tag})", "step_length",
                lambda got=got, norm3=norm3: step_length(
                    float(got["gtg"]), float(got["ghg"]), sigma, norm3, 0.0)[0],
                reference_alpha(ref["gtg"], ref["ghg"], sigma, norm3))  # fmt: skip
        sq_sgd = -ref["sgd_gtg"]
        if sq_sgd > 0:
            n3 = sq_sgd**1.5
            M.m("37", f"alpha, SGD direction, sigma={sigma:g} ({tag})", "step_length",
                lambda got=got, n3=n3: step_length(
                    float(got["sgd_gtg"]), float(got["sgd_ghg"]), sigma, n3, 0.0)[0],
                reference_alpha(ref["sgd_gtg"], ref["sgd_ghg"], sigma, n3))  # fmt: skip
    if spec.convs:
        _check_fold(M, layers, np.random.default_rng(spec.seed + 99))
    return M.ms


def _check_fold(M, layers, rng) -> None:
    """C31 (the input adjoint of a conv layer) three ways: the layer's scatter-add, the
    generated kernel with Eq 48's selection tensor, and ``jax.vjp`` of the patch gather."""
    import jax
    import jax.numpy as jnp

    from numeric.kernels import convolution as cv
    from numeric.kernels import stacking as st

    for i, layer in enumerate(layers):
        if type(layer).__name__ != "Conv2D":
            continue
        x = rng.normal(size=(2, *layer.in_shape))
        _, ref_fn = jax.vjp(layer.patches, jnp.asarray(x))
        zbar = rng.normal(size=layer.patches(x).shape)
        (ref,) = ref_fn(jnp.asarray(zbar))
        _, S, T = layer.out_shape
        sel = cv.eq48_dz_dx_entrywise(*layer.stride, S, T, *layer.kernel, *layer.in_shape[1:])
        M.m("C31", f"conv input adjoint, scatter-add over the patch grid (layer {i})",
            "Conv2D.fold", lambda zbar=zbar, layer=layer: layer.fold(zbar), np.asarray(ref),
            per_sample=True)  # fmt: skip
        M.m("C31", f"conv input adjoint through Eq 48's selection tensor (layer {i})",
            "c31_conv_input_adjoint, eq48_dz_dx_entrywise",
            lambda zbar=zbar, sel=sel: st.c31_conv_input_adjoint(mzbar=zbar, cdz=sel),
            np.asarray(ref), per_sample=True)  # fmt: skip


def check_bias_spec(spec: StackSpec):
    """The literal gradient and Hessian blocks of a ReLU MLP with biases (Eqs 27-36 and
    27.b-36.bb) against ``jax.grad`` and ``jax.hessian`` (batch mean and per sample)."""
    import jax
    import jax.numpy as jnp

    from numeric.literal.bias import gradient_bias, hessian_blocks_bias, hessian_dense_bias
    from numeric.losses import softmax_cross_entropy
    from numeric.network import forward
    from verify.meter import _Meter

    layers, params, x, y, _ = make_stack(spec)
    M = _Meter(spec.name)
    n = len(layers) - 1
    ws, u = params[0:-2:2], params[-2]
    loss = jax_loss(layers, x, y)
    jp = [jnp.asarray(p) for p in params]
    flat = jnp.concatenate([p.ravel() for p in jp])
    shapes = [p.shape for p in params]

    def unflat(t):
        out, o = [], 0
        for shp in shapes:
            size = int(np.prod(shp))
            out.append(t[o : o + size].reshape(shp))
            o += size
        return out

    def references(t, xs, ys):
        """The batch's Hessian and gradient, and each sample's Hessian (``xs[b:b+1]``)."""

        def sample_hessian(xb, yb):
            return jax.hessian(lambda t_: jax_loss(layers, xb, yb)(unflat(t_)))(t)

        return (jax.hessian(lambda t_: loss(unflat(t_)))(t),
                jax.grad(lambda t_: loss(unflat(t_)))(t),
                jax.vmap(sample_hessian)(xs[:, None], ys[:, None]))  # fmt: skip

    # one compiled function (an eager jax.hessian compiles each of its operations)
    hess, grad, per_sample = (np.asarray(a) for a in jax.jit(references)(flat, x, y))
    tape = forward(layers, params, x)
    _, dfdp, d2fdp2 = softmax_cross_entropy(tape.p, y)
    g = gradient_bias(tape, ws, u, dfdp)
    order = [gr for k in range(1, n + 1) for gr in (("w", k), ("b", k))] + [("u",), ("c",)]
    M.m("28.b", "gradient of an MLP with biases (Eqs 27, 28, 27.b, 28.b)", "eq27b, eq28b",
        lambda: np.concatenate([np.asarray(g[gr]).ravel() for gr in order]), grad)  # fmt: skip
    for reduce, ref in (("mean", hess), ("sample", per_sample)):
        M.m("36.b", f"Hessian of an MLP with biases, every block ({reduce})",
            "eq34b-eq36bb, eq34-eq36",
            lambda reduce=reduce: hessian_dense_bias(
                hessian_blocks_bias(tape, ws, u, dfdp, d2fdp2, reduce=reduce), ws),
            ref, per_sample=reduce == "sample")  # fmt: skip
    return M.ms


def bias_specs(quick: bool = True, seed: int = 0) -> list[StackSpec]:
    """ReLU MLPs with biases (B.1's bias forms assume A'' = 0), widths unequal."""
    out = [StackSpec(3, "relu", 3, C=4, dense=(5, 3), seed=seed + 20)]
    if not quick:
        out.append(StackSpec(2, "relu", 2, C=3, dense=(4,), seed=seed + 21))
        out.append(StackSpec(4, "relu", 4, C=5, dense=(3, 4, 2), seed=seed + 22))
    return out


def _cnn(batch, act, classes, C, convs, dense, seed, bias=True) -> StackSpec:
    return StackSpec(batch, act, classes, C=C, convs=convs, dense=dense, bias=bias, seed=seed)


def cnn_specs(quick: bool = True, seed: int = 0) -> list[StackSpec]:
    """Two-conv and one-conv stacks: strides 1-3, kernels that just fit, several channels."""
    c = ConvSpec
    out = [
        _cnn(3, "relu", 4, 1, (c(3, 4, 4, 3, 3, 2, 2, (1, 0)), c(2, 2, 1, 2, 3, 1, 2)), (5,), seed),
        _cnn(2, "tanh", 3, 2, (c(2, 3, 2, 2, 3, 1, 3, (0, 2)), c(3, 1, 1, 3, 2)), (), seed + 1),
    ]
    if not quick:
        out += [
            _cnn(2, "softplus", 3, 1, (c(2, 1, 1, 4, 4),), (3, 4), seed + 2, bias=False),
            _cnn(
                3,
                "sigmoid",
                2,
                3,
                (c(4, 3, 3, 2, 2, 3, 3, (2, 1)), c(2, 1, 2, 3, 2, 1, 1)),
                (4,),
                seed + 3,
            ),
            _cnn(1, "relu", 3, 2, (c(3, 5, 2, 2, 2, 1, 2),), (6, 5), seed + 4),
        ]
    return _jax_first(out, quick)


def _jax_first(specs: list[StackSpec], quick: bool) -> list[StackSpec]:
    """Quick sweeps run the JAX backend on the first case only (its jit is the slow part)."""
    from dataclasses import replace

    return [replace(sp, jax=not quick or i == 0) for i, sp in enumerate(specs)]


def rnn_specs(quick: bool = True, seed: int = 0) -> list[StackSpec]:
    """Sequence recurrences of 1-5 steps and the paper's recurrence (input as v_(0))."""
    out = [
        StackSpec(3, "relu", 3, rnn=(4, 5, 4, True), dense=(4,), seed=seed + 10),
        StackSpec(2, "tanh", 3, rnn=(3, 4, 1, True), seed=seed + 11),  # one step
        StackSpec(2, "sigmoid", 2, rnn=(3, 3, 3, False), dense=(2,), bias=False, seed=seed + 12),
        # a conv layer read by a sequence RNN; dense layers feeding the paper's recurrence
        StackSpec(
            2,
            "relu",
            3,
            C=1,
            convs=(ConvSpec(2, 2, 3, 2, 2, 2, 1),),
            rnn=(0, 3, 0, True),
            dense=(3,),
            seed=seed + 15,
        ),
        StackSpec(2, "tanh", 3, C=4, rnn=(0, 0, 2, False), pre=(5, 3), seed=seed + 16),
    ]
    if not quick:
        out += [
            StackSpec(3, "softplus", 4, rnn=(2, 6, 5, True), dense=(3,), seed=seed + 13),
            StackSpec(2, "relu", 2, rnn=(4, 4, 3, False), seed=seed + 14),
        ]
    return _jax_first(out, quick)
