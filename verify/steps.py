"""Whole CR training steps against plain JAX autodiff: a differential matrix of step paths.

The kernels are checked one by one elsewhere (:mod:`verify.checks`, :mod:`verify.layers`);
this module checks the paths users run: a base direction, its curvature, Eq 37's step
length, the flags and the update, over three steps from one state and batch, for every
cell of one table (:func:`cells`):

* models (:data:`MODELS`): the paper's ReLU MLP without biases, with biases, a tanh MLP,
  a small CNN, an RNN, a ResMLP (a dense layer, a layer normalisation and a residual
  block) and softmax self-attention over the image rows, the last two built of layers
  derived from their forward rules (:mod:`numeric.architectures`);
* base directions (:data:`BASES`): SGD, Adagrad, Adadelta, Adam (TF1's rules,
  :mod:`numeric.optimizers`; on the optax paths optax's own transformations);
* step-length rules (:data:`CONFIGS`): every variant of :data:`numeric.rules.VARIANTS`
  computed every step and every second step (``every=2``), and the per-sample averagings
  ``"mean-alpha"`` and ``"alpha-g"`` (Section 3.1; the paper's rule only); output-trust
  CR (V7, :data:`OUTPUT_TRUST`) on a small corner of the table only
  (:data:`OUTPUT_TRUST_MODELS` x :data:`OUTPUT_TRUST_BASES`);
* paths (:data:`PATHS`): ``numpy`` (:class:`numeric.cr.CR` on NumPy arrays), ``jax`` (the
  same ``CR.step`` on JAX arrays, compiled), ``optax-fast``
  (:func:`numeric.optax.scale_by_cr` with a :class:`~numeric.optax.NetworkObjective`) and
  ``optax-jvp`` (``scale_by_cr`` with a plain ``params -> loss`` function).

The reference (:func:`reference_run`) shares nothing with ``numeric`` but the initial
weights and the data: each model is rewritten here in a few lines of ``jax.numpy``
(docs/conventions.md), its gradient is ``jax.grad``, ``d^T H d`` is
``jax.jvp(jax.grad(F))``, the Hessian diagonal is ``jax.hessian``'s, the base directions
are TF1's (or optax's) formulas, and Eq 37 is the positive root of ``m'(alpha) = 0`` with
the flag rules of :mod:`numeric.cr`.  A cell whose combination the code does not define
(:func:`refusal`) must be refused with a ``ValueError`` naming why.

Used by ``tests/test_step_matrix.py`` and by the ``steps`` group of ``verify report``
(:func:`step_cases`, :func:`check_steps`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from verify.measure import Measurement, compare, failed

__all__ = [
    "BASES",
    "CONFIGS",
    "MODELS",
    "PATHS",
    "QUICK",
    "FULL",
    "Cell",
    "Config",
    "Model",
    "Record",
    "Sizes",
    "anchors",
    "cells",
    "check_cell",
    "check_steps",
    "compare_runs",
    "refusal",
    "reference_run",
    "run_path",
    "select",
    "step_cases",
]

#: relative tolerance of every comparison (float64), and the absolute floor for
#: quantities that are exactly 0 (a zero step, a rejected step's update)
RTOL = 1e-10
ATOL = 1e-14
#: the fallback learning rate of flagged steps, the number of steps
LR = 0.05
STEPS = 3
#: step flags (numeric.stepping.FLAGS, by name)
FLAG_NAMES = ("", "nondescent", "zero", "nonfinite", "rejected")
#: ARC's defaults (numeric.rules.ARC): thresholds, factor, sigma bounds / sigma0
ETA1, ETA2, GAMMA, SIGMA_MIN_F, SIGMA_MAX_F = 0.1, 0.9, 2.0, 1e-2, 1e6
#: the running-RMS metric of scale_by_cr's scale-invariant rule (Adam's defaults)
RMS_BETA2, RMS_EPS = 0.999, 1e-8


# ------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Model:
    """A model of the matrix: ``kind`` (mlp, cnn, rnn, resmlp, attention), activation
    (none in attention), biases."""

    name: str
    kind: str
    activation: str
    bias: bool

    @property
    def dense_bias_free(self) -> bool:
        return self.kind == "mlp" and not self.bias

    @property
    def relu_dense(self) -> bool:
        return self.kind == "mlp" and self.activation == "relu"


@dataclass(frozen=True)
class Config:
    """A step-length rule: ``variant``, ``every``, ``averaging`` and ``sigma`` of ``CR``."""

    variant: str = "paper"
    every: int = 1
    averaging: str = "model"
    sigma: float = 10.0

    @property
    def name(self) -> str:
        rule = self.averaging if self.averaging != "model" else self.variant
        return rule + (f"/every{self.every}" if self.every > 1 else "") + f"/sigma{self.sigma:g}"


@dataclass(frozen=True)
class Sizes:
    """Sizes of the matrix: images ``image`` (H, W), ``classes``, ``batch``, the MLP's
    ``hidden`` widths, the CNN's ``channels`` (3 x 3 kernels, stride 2, no dense layer),
    the RNN's ``width`` (one step per image row) and the ResMLP's ``res_width`` (one
    block)."""

    image: tuple[int, int] = (8, 8)
    classes: int = 3
    batch: int = 5
    hidden: tuple[int, ...] = (6, 6)
    channels: int = 2
    width: int = 4
    res_width: int = 4
    seed: int = 0

    @property
    def name(self) -> str:
        h, w = self.image
        return f"{h}x{w}-c{self.classes}-b{self.batch}-s{self.seed}"


MODELS = (
    Model("mlp", "mlp", "relu", False),
    Model("mlp-bias", "mlp", "relu", True),
    Model("mlp-tanh", "mlp", "tanh", False),
    Model("cnn", "cnn", "relu", True),
    Model("rnn", "rnn", "relu", True),
    Model("resmlp", "resmlp", "tanh", True),
    Model("attention", "attention", "tanh", True),
)
BASES = ("sgd", "adagrad", "adadelta", "adam")
VARIANT_NAMES = ("paper", "adaptive", "scale-invariant", "per-layer", "per-variable")
#: the cubic weight of each variant: steps that stay where the weights started.  The
#: scale-invariant metric of Adam is small (its direction is sign-like), so with a
#: Euclidean-sized sigma it takes steps that blow the weights up (the README's 1e6);
#: per-variable lengths grow as 1 / |d_i| on reused steps
SIGMAS = {"paper": 10.0, "adaptive": 10.0, "scale-invariant": 1e6, "per-layer": 10.0,
          "per-variable": 1e3}  # fmt: skip
CONFIGS = (
    *(Config(v, sigma=SIGMAS[v]) for v in VARIANT_NAMES),
    *(Config(v, every=2, sigma=SIGMAS[v]) for v in VARIANT_NAMES),
    # a small initial sigma: adaptive CR rejects trial steps and grows sigma
    Config("adaptive", sigma=1e-2),
    Config(averaging="mean-alpha"),
    Config(averaging="alpha-g"),
)
#: output-trust CR (V7): a small sigma, so that Eq 37's length exceeds the cap on some
#: steps; checked on two models and two bases only (the cap reads the same output tangent
#: on every model, and the suite stays fast)
OUTPUT_TRUST = Config("output-trust", sigma=1e-2)
OUTPUT_TRUST_MODELS = ("mlp", "cnn")
OUTPUT_TRUST_BASES = ("sgd", "adam")
PATHS = ("numpy", "jax", "optax-fast", "optax-jvp")
#: the paths that compile a step (each cell costs a compilation: about a second)
COMPILED = ("jax", "optax-fast", "optax-jvp")
QUICK = Sizes()
FULL = Sizes(image=(10, 10), classes=4, batch=8, hidden=(8, 7, 6), channels=3, width=5, res_width=5)


@dataclass(frozen=True)
class Cell:
    """One entry of the matrix."""

    model: Model
    base: str
    config: Config
    path: str

    @property
    def name(self) -> str:
        return f"{self.path}-{self.model.name}-{self.base}-{self.config.name}"


def refusal(cell: Cell) -> str | None:
    """A pattern of the ``ValueError`` the code must raise for ``cell``, or ``None`` when
    the cell is defined.

    * The per-sample averagings need per-sample directions: SGD only (``CR``), and an
      optax chain has none (``scale_by_cr`` refuses them); their per-sample curvature is
      derived for bias-free dense networks only.
    * Per-variable CR's exact Hessian diagonal is derived for ReLU dense networks
      (:func:`numeric.curvature.check_hessian_diagonal`); ``scale_by_cr`` with a plain
      function takes one Hessian-vector product per parameter, for any model.
    """
    c = cell.config
    if c.averaging != "model":
        if cell.path.startswith("optax"):
            return "needs per-sample directions"
        if cell.base != "sgd":
            return "defined only for SGD"
        if not cell.model.dense_bias_free:
            return "bias-free dense networks only"
    if c.variant == "per-variable" and cell.path != "optax-jvp" and not cell.model.relu_dense:
        return "Hessian diagonal"
    return None


def cells(paths: Sequence[str] = PATHS) -> list[Cell]:
    """The whole matrix: every model, base, rule and path in ``paths``.

    The per-sample averagings are options of the paper's rule computed every step
    (``CR`` refuses them with another variant or ``every``), so they appear only as such.
    """
    table = [Cell(m, b, c, p) for p in paths for m in MODELS for b in BASES for c in CONFIGS]
    return table + [Cell(m, b, OUTPUT_TRUST, p) for p in paths for m in MODELS
                    if m.name in OUTPUT_TRUST_MODELS for b in OUTPUT_TRUST_BASES]  # fmt: skip


TIERS = ("full", "test", "quick")


def select(all_cells: Sequence[Cell], tier: str) -> list[Cell]:
    """The cells a run of ``tier`` keeps (compiling a step costs about a second a cell,
    the NumPy path a few milliseconds).

    ``"full"``: every cell.  ``"test"``: every NumPy cell; on each compiled path the
    paper's rule over SGD for every model (the CR-SGD whose low-rank route reads the
    gradient) and each other rule once, on its ``i``-th defined (model, base) in table
    order (``i`` the rule's index, so models and bases rotate).  ``"quick"``: on the
    NumPy path the paper's rule for every model and base and each other rule once as
    above; on each compiled path the paper's rule over SGD on the CNN.  Refused cells
    compile nothing: ``"test"`` keeps them all, ``"quick"`` those of the NumPy path and
    those of the MLP over SGD.
    """
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
    if tier == "full":
        return list(all_cells)
    keep = []
    for c in all_cells:
        if c.config == OUTPUT_TRUST:  # few cells: every one in "test", NumPy in "quick"
            keep.append(c) if tier == "test" or c.path == "numpy" else None
            continue
        paper_sgd = c.config == CONFIGS[0] and c.base == "sgd"
        if refusal(c) is not None:
            first = c.model == MODELS[0] and c.base == BASES[0]
            keep.append(c) if tier == "test" or c.path == "numpy" or first else None
        elif c.path == "numpy" and tier == "test":
            keep.append(c)
        elif c.path not in COMPILED:
            keep.append(c) if c.config == CONFIGS[0] or _rotated(c, all_cells) else None
        elif tier == "test":
            keep.append(c) if paper_sgd or _rotated(c, all_cells) else None
        elif paper_sgd and c.model.kind == "cnn":
            keep.append(c)
    return keep


def _rotated(cell: Cell, all_cells: Sequence[Cell]) -> bool:
    """Whether ``cell`` is its rule's ``i``-th defined cell on its path (``i`` the rule's
    index in :data:`CONFIGS`, taken modulo their number)."""
    same = [c for c in all_cells if c.path == cell.path and c.config == cell.config
            and refusal(c) is None]  # fmt: skip
    return bool(same) and same[CONFIGS.index(cell.config) * 3 % len(same)] == cell


# ---------------------------------------------------------------- the numeric side
def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def network(model: Model, sizes: Sizes):
    """The model's initial network (NumPy, float64) from :mod:`numeric.architectures`."""
    from numeric.architectures import build

    if model.kind == "mlp":
        options = {"hidden": list(sizes.hidden)}
        shape: tuple = (sizes.image[0] * sizes.image[1],)
    elif model.kind == "cnn":
        options = {"channels": [sizes.channels], "kernel": 3, "stride": 2, "dense": []}
        shape = sizes.image
    elif model.kind == "resmlp":
        options = {"width": sizes.res_width, "blocks": 1, "norm": True}
        shape = (sizes.image[0] * sizes.image[1],)
    elif model.kind == "attention":
        options = {"d_k": 2}
        shape = sizes.image
    else:
        options = {"width": sizes.width, "dense": []}
        shape = sizes.image
    return build(model.kind, shape, sizes.classes, activation=model.activation,
                 bias=model.bias, options=options, init="normal", seed=sizes.seed)  # fmt: skip


def batch(model: Model, sizes: Sizes) -> tuple[np.ndarray, np.ndarray]:
    """One batch: inputs shaped for the model and one-hot label rows."""
    rng = np.random.default_rng(sizes.seed + 7919)
    x = rng.normal(size=(sizes.batch, *sizes.image))
    labels = np.arange(sizes.batch) % sizes.classes
    rng.shuffle(labels)
    if model.kind in ("mlp", "resmlp"):
        x = x.reshape(sizes.batch, -1)
    elif model.kind == "cnn":
        x = x[:, None]
    return x, np.eye(sizes.classes)[labels]


@dataclass
class Record:
    """What one step did: the logged quantities and the parameters after it.

    ``sigma`` is ``None`` where a rule has none (only adaptive CR has one).  ``update``: the parameters
    after the step minus those before it."""

    alpha: float
    lr_eff: float | None
    dgrad: float
    dhd: float
    dnorm: float
    flag: str
    sigma: float | None
    params: list = field(repr=False)
    update: list = field(repr=False)


def _numeric_optimizer(base: str):
    from numeric.optimizers import get_optimizer

    return get_optimizer(base)


def _run_cr(cell: Cell, sizes: Sizes, on_jax: bool) -> list[Record]:
    from numeric.cr import CR

    net = network(cell.model, sizes)
    x, y = batch(cell.model, sizes)
    c = cell.config
    method = CR(_numeric_optimizer(cell.base), c.sigma, averaging=c.averaging, lr=LR,
                variant=c.variant, every=c.every)  # fmt: skip
    if on_jax:
        from numeric import jax_backend as jb

        _jax()
        net = jb.to_jax(net)
    state = method.init(net)
    out = []
    for _ in range(STEPS):
        before = [np.asarray(p) for p in net.params]
        net, state, info = method.step(net, state, x, y)
        sigma = state.opt.get("cr_sigma")
        after = [np.asarray(p) for p in net.params]
        out.append(Record(info.alpha, info.lr_eff, info.dgrad, info.dhd, info.dnorm, info.flag,
                          None if sigma is None else float(sigma), after,
                          [a - b for a, b in zip(after, before, strict=True)]))  # fmt: skip
    return out


def _optax_base(base: str):
    """optax's own transformation for ``base`` (gradient-like output): no transformation
    for SGD, ``scale_by_rss`` without epsilon (TF1's Adagrad), ``scale_by_adadelta`` and
    ``scale_by_adam`` (Kingma and Ba's epsilon: :func:`_direction`'s ``optax`` form)."""
    import optax

    return {
        "sgd": lambda: optax.identity(),
        "adagrad": lambda: optax.scale_by_rss(initial_accumulator_value=0.1, eps=0.0),
        "adadelta": lambda: optax.scale_by_adadelta(rho=0.95, eps=1e-8),
        "adam": lambda: optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
    }[base]()


def _run_optax(cell: Cell, sizes: Sizes, fast: bool) -> list[Record]:
    jax = _jax()
    import jax.numpy as jnp
    import optax

    from numeric.network import forward
    from numeric.optax import NetworkObjective, scale_by_cr

    net = network(cell.model, sizes)
    x, y = batch(cell.model, sizes)
    c = cell.config
    direction = "sgd" if fast and cell.base == "sgd" else "any"
    tx = optax.chain(
        _optax_base(cell.base),
        scale_by_cr(c.sigma, fallback=LR, averaging=c.averaging, direction=direction,
                    variant=c.variant, every=c.every, metric="rms"),
    )  # fmt: skip
    layers = net.layers
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def step(params, state):
        objective = NetworkObjective(layers, xj, yj)
        if fast:
            value_fn = objective
            _, grads = objective.value_and_grad(params)
        else:

            def value_fn(p):  # a plain function: scale_by_cr sees no NetworkObjective
                return objective(p)

            grads = jax.grad(value_fn)(params)
        extra = {} if fast else {"output_fn": lambda p: forward(layers, list(p), xj, False).p}
        updates, state = tx.update(grads, state, params, value_fn=value_fn, **extra)
        return optax.apply_updates(params, updates), state

    compiled = jax.jit(step)
    params = [jnp.asarray(p) for p in net.params]
    state = tx.init(params)
    out = []
    for _ in range(STEPS):
        before = [np.asarray(p) for p in params]
        params, state = compiled(params, state)
        s = state[1]
        after = [np.asarray(p) for p in params]
        sigma = _rule_sigma(s.rule)
        out.append(Record(float(s.alpha), float(s.lr_eff), float(s.dgrad), float(s.dhd),
                          float(s.dnorm), FLAG_NAMES[int(s.flag)],
                          None if sigma is None else float(sigma), after,
                          [a - b for a, b in zip(after, before, strict=True)]))  # fmt: skip
    return out


def _rule_sigma(state):
    """Adaptive CR's ``sigma`` inside a rule's state (reuse wraps it), else ``None``."""
    if hasattr(state, "sigma"):
        return state.sigma
    inner = getattr(state, "inner", None)
    return None if inner is None else _rule_sigma(inner)


def run_path(cell: Cell, sizes: Sizes = QUICK) -> list[Record]:
    """The cell's path: three steps from the initial network on one batch."""
    if cell.path in ("numpy", "jax"):
        return _run_cr(cell, sizes, on_jax=cell.path == "jax")
    return _run_optax(cell, sizes, fast=cell.path == "optax-fast")


# ------------------------------------------------------------------ the reference
def _act(name: str):
    jax = _jax()
    import jax.numpy as jnp

    return {"relu": jax.nn.relu, "tanh": jnp.tanh}[name]


def _logits(model: Model, params: Sequence, x):
    """The model in plain ``jax.numpy`` (docs/conventions.md): dense ``z = v w^T + b``,
    VALID 3 x 3 cross-correlation of stride 2 then a C-order flatten, a recurrent layer
    ``z_t = v_(t-1) w^T + x_t U^T + b`` from ``v_0 = 0`` over the image rows; the output
    layer ``p = v u^T + c``; the ResMLP's dense layer, then ``(v - mu) / sqrt(var + 1e-5)``
    scaled and shifted, then ``v + A(v w^T + b)``; attention ``softmax(q key^T) val`` over
    the image rows, flattened."""
    jax = _jax()
    import jax.numpy as jnp

    act = _act(model.activation)
    ps = list(params)
    if model.kind == "mlp":
        per = 2 if model.bias else 1
        v = x
        for k in range(len(ps) // per - 1):
            z = v @ ps[per * k].T
            v = act(z + ps[per * k + 1] if model.bias else z)
        p = v @ ps[-per].T
        return p + ps[-1] if model.bias else p
    if model.kind == "cnn":
        w, b, u, c = ps
        z = jax.lax.conv_general_dilated(x, w, (2, 2), "VALID",
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))  # fmt: skip
        v = act(z + b[None, :, None, None]).reshape(x.shape[0], -1)
        return v @ u.T + c
    if model.kind == "resmlp":
        w0, b0, g, beta, w1, b1, u, c = ps
        v = act(x @ w0.T + b0)
        mu = jnp.mean(v, axis=1, keepdims=True)
        var = jnp.mean((v - mu) ** 2, axis=1, keepdims=True)
        v = g * (v - mu) / jnp.sqrt(var + 1e-5) + beta
        v = v + act(v @ w1.T + b1)
        return v @ u.T + c
    if model.kind == "attention":
        wq, wk, wv, u, c = ps
        p = jax.nn.softmax((x @ wq.T) @ jnp.swapaxes(x @ wk.T, 1, 2), axis=2)
        return (p @ (x @ wv.T)).reshape(x.shape[0], -1) @ u.T + c
    w, uin, b, u, c = ps
    v = jnp.zeros((x.shape[0], w.shape[0]), dtype=x.dtype)
    for t in range(x.shape[1]):
        v = act(v @ w.T + x[:, t] @ uin.T + b)
    return v @ u.T + c


def _layer_blocks(model: Model, n_params: int) -> tuple[int, ...]:
    """The layer of each parameter array (per-layer CR's blocks)."""
    if model.kind == "mlp":
        per = 2 if model.bias else 1
        return tuple(i // per for i in range(n_params))
    if model.kind == "cnn":
        return (0, 0, 1, 1)
    if model.kind == "resmlp":
        return (0, 0, 1, 1, 2, 2, 3, 3)
    if model.kind == "attention":
        return (0, 0, 0, 1, 1)
    return (0, 0, 0, 1, 1)


@cache
def _autodiff(model: Model, sizes: Sizes):
    """Compiled autodiff of the reference model on the matrix's batch: loss, gradient,
    Hessian-vector product, Hessian diagonal, per-sample gradients and ``H_b g_b``."""
    jax = _jax()
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    x, y = (jnp.asarray(a) for a in batch(model, sizes))

    def loss_on(params, xs, ys):
        p = _logits(model, params, xs)
        return -jnp.mean(jnp.sum(ys * jax.nn.log_softmax(p, axis=1), axis=1))

    def loss(params):
        return loss_on(params, x, y)

    grad = jax.grad(loss)

    def hvp(params, d):
        return jax.jvp(grad, (params,), (d,))[1]

    def jd(params, d):  # the output tangent J d, (batch, classes)
        return jax.jvp(lambda p: _logits(model, p, x), (params,), (d,))[1]

    def hdiag(params):
        flat, unravel = ravel_pytree(params)
        return unravel(jnp.diag(jax.hessian(lambda t: loss(unravel(t)))(flat)))

    def per_sample(params):
        def one(xb, yb):
            g1 = jax.grad(lambda p: loss_on(p, xb[None], yb[None]))
            gb = g1(params)
            return gb, jax.jvp(g1, (params,), (gb,))[1]

        return jax.vmap(one)(x, y)

    return {
        "loss": jax.jit(loss),
        "grad": jax.jit(grad),
        "hvp": jax.jit(hvp),
        "jd": jax.jit(jd),
        "hdiag": jax.jit(hdiag),
        "per_sample": jax.jit(per_sample),
    }


def _np_list(tree) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.float64) for a in tree]


def _dot(a: Sequence, b: Sequence) -> float:
    return float(sum(np.vdot(u, v) for u, v in zip(a, b, strict=True)))


def eq37(gtg: float, ghg: float, sigma: float, n3: float, fallback: float) -> tuple[float, str]:
    """Eq 37: the positive root of ``m'(alpha) = gtg + alpha ghg + sigma/2 alpha^2 n3`` for
    ``m(alpha) = alpha gtg + alpha^2/2 ghg + sigma/6 alpha^3 n3``, with numeric.cr's flags
    (non-finite: ``fallback``; zero direction: 0; non-descent: ``fallback``)."""
    if not all(math.isfinite(v) for v in (gtg, ghg, n3)):
        return fallback, "nonfinite"
    c = sigma * n3
    if n3 <= 0.0 or c == 0.0:
        return 0.0, "zero"
    if gtg >= 0.0:
        return fallback, "nondescent"
    root = math.sqrt(ghg * ghg - 2.0 * c * gtg)
    # the two algebraically equal forms of the root; each one free of cancellation
    a = (root - ghg) / c if ghg <= 0.0 else -2.0 * gtg / (ghg + root)
    if not (math.isfinite(a) and a > 0.0):
        return fallback, "nonfinite"
    return a, ""


def _combined(flags: Sequence[str]) -> str:
    """One flag for many lengths: nonfinite, else nondescent, else zero if all are."""
    if "nonfinite" in flags:
        return "nonfinite"
    if "nondescent" in flags:
        return "nondescent"
    return "zero" if flags and all(f == "zero" for f in flags) else ""


def _least_squares(update: Sequence, d: Sequence) -> float:
    sq = _dot(d, d)
    return _dot(update, d) / sq if sq > 0 else 0.0


def _direction(base: str, form: str, g: list, state: dict) -> tuple[list, dict, list | None]:
    """The base's lr-free descent direction ``d``, its next state and its diagonal metric
    ``M`` (``d = -M^{-1} m``; ``None``: the identity).  TF1's rules (numeric/optimizers.py);
    ``form="optax"`` takes optax's Adam (``m_hat / (sqrt(v_hat) + eps)``)."""
    t = state["t"] + 1
    new = {"t": t}
    if base == "sgd":
        return [-gi for gi in g], new, None
    if base == "adagrad":
        acc = [a + gi * gi for a, gi in zip(state["acc"], g, strict=True)]
        new["acc"] = acc
        return (
            [-gi / np.sqrt(a) for gi, a in zip(g, acc, strict=True)],
            new,
            [np.sqrt(a) for a in acc],
        )
    if base == "adadelta":
        rho, eps = 0.95, 1e-8
        acc = [rho * a + (1 - rho) * gi * gi for a, gi in zip(state["acc"], g, strict=True)]
        upd = [np.sqrt(au + eps) / np.sqrt(a + eps) * gi
               for au, a, gi in zip(state["acc_upd"], acc, g, strict=True)]  # fmt: skip
        metric = [np.sqrt(a + eps) / np.sqrt(au + eps)
                  for a, au in zip(acc, state["acc_upd"], strict=True)]  # fmt: skip
        new["acc"] = acc
        new["acc_upd"] = [rho * au + (1 - rho) * u * u
                          for au, u in zip(state["acc_upd"], upd, strict=True)]  # fmt: skip
        return [-u for u in upd], new, metric
    b1, b2, eps = 0.9, 0.999, 1e-8
    m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(state["m"], g, strict=True)]
    v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(state["v"], g, strict=True)]
    new["m"], new["v"] = m, v
    if form == "optax":
        d = [-(mi / (1 - b1**t)) / (np.sqrt(vi / (1 - b2**t)) + eps)
             for mi, vi in zip(m, v, strict=True)]  # fmt: skip
        return d, new, None
    scale = math.sqrt(1 - b2**t) / (1 - b1**t)
    d = [-scale * mi / (np.sqrt(vi) + eps) for mi, vi in zip(m, v, strict=True)]
    return d, new, [(np.sqrt(vi) + eps) / scale for vi in v]


def _base_init(base: str, params: list) -> dict:
    zeros = [np.zeros_like(p) for p in params]
    if base == "adagrad":
        return {"t": 0, "acc": [np.full_like(p, 0.1) for p in params]}
    if base == "adadelta":
        return {"t": 0, "acc": zeros, "acc_upd": [z.copy() for z in zeros]}
    if base == "adam":
        return {"t": 0, "m": zeros, "v": [z.copy() for z in zeros]}
    return {"t": 0}


def reference_run(cell: Cell, sizes: Sizes = QUICK,
                  anchors: Sequence[Sequence] | None = None) -> list[Record]:  # fmt: skip
    """The cell's three steps in plain JAX autodiff and NumPy (module docstring).

    ``anchors``: the parameters to take each step from (a path's own iterates, so that
    each step is compared as a function of the weights it starts from, and rounding
    differences do not compound along the trajectory: per-variable CR's lengths scale
    as ``1 / |d_i|`` and ``1 / H_ii``); default the reference's own iterates.  The
    base optimizer's and CR's own state always evolve in the reference."""
    ad = _autodiff(cell.model, sizes)
    params = _np_list(network(cell.model, sizes).params)
    c = cell.config
    optax_path = cell.path.startswith("optax")
    form = "optax" if optax_path else "tf1"
    blocks = (tuple(range(len(params))) if cell.path == "optax-jvp"
              else _layer_blocks(cell.model, len(params)))  # fmt: skip
    base = _base_init(cell.base, params)
    sigma, cached, age = c.sigma, None, 0
    rms, rms_count = [np.zeros_like(p) for p in params], 0
    out = []
    for step in range(STEPS):
        if anchors is not None:
            params = _np_list(anchors[step])
        g = _np_list(ad["grad"](params))
        d, base_next, metric = _direction(cell.base, form, g, base)
        base = base_next
        sq = _dot(d, d)
        dnorm = math.sqrt(sq)
        if c.variant == "scale-invariant" and optax_path:  # scale_by_cr's running RMS
            rms = [RMS_BETA2 * r + (1 - RMS_BETA2) * gi * gi for r, gi in zip(rms, g, strict=True)]
            rms_count += 1
            metric = [np.sqrt(r / (1 - RMS_BETA2**rms_count)) + RMS_EPS for r in rms]
        gtg = _dot(d, g)

        def dhd(direction, params=params):
            return _dot(direction, _np_list(ad["hvp"](params, direction)))

        if c.averaging != "model":
            gb, hgb = (_np_list(t) for t in ad["per_sample"](params))
            nb = gb[0].shape[0]
            gb_list = [[a[b] for a in gb] for b in range(nb)]
            gtg_b = [-_dot(gs, gs) for gs in gb_list]
            ghg_b = [_dot(gs, [a[b] for a in hgb]) for b, gs in enumerate(gb_list)]
            found = [
                eq37(gt, gh, c.sigma, (-gt) ** 1.5, LR) for gt, gh in zip(gtg_b, ghg_b, strict=True)
            ]
            a_b = np.array([a for a, _ in found])
            if c.averaging == "mean-alpha":
                update = [a_b.mean() * di for di in d]
            else:
                update = [-np.tensordot(a_b, a, axes=1) / nb for a in gb]
            flag = FLAG_NAMES[max(FLAG_NAMES.index(f) for _, f in found)]
            rec = (float(a_b.mean()), _least_squares(update, d), float(np.mean(gtg_b)),
                   float(np.mean(ghg_b)), float(np.mean(np.sqrt(-np.array(gtg_b)))), flag)  # fmt: skip
        elif c.every > 1 and age != 0:  # reuse the lengths of the last computed step
            update = [a * di for a, di in zip(cached, d, strict=True)]
            ls = _least_squares(update, d)
            rec = (ls, ls, gtg, math.nan, dnorm, "")
            age = (age + 1) % c.every
        else:
            if c.variant == "output-trust":  # V7: Eq 37, at most 1 / RMS_m ||J_m d||
                ghg = dhd(d)
                alpha, flag = eq37(gtg, ghg, sigma, sq**1.5, LR)
                jd = np.asarray(ad["jd"](params, d), dtype=np.float64)
                rms = math.sqrt(float(np.mean(np.sum(jd * jd, axis=1))))
                applied = min(alpha, 1.0 / rms) if flag == "" and rms > 0 else alpha
                alphas = [applied] * len(d)
                rec = (alpha, applied, gtg, ghg, dnorm, flag)
            elif c.variant in ("paper", "scale-invariant", "adaptive"):
                n = (
                    sq
                    if metric is None or c.variant != "scale-invariant"
                    else sum(float(np.sum(m * di * di)) for m, di in zip(metric, d, strict=True))
                )
                ghg = dhd(d)
                alpha, flag = eq37(gtg, ghg, sigma, n**1.5, LR)
                applied = alpha
                if c.variant == "adaptive":
                    trial = [p + alpha * di for p, di in zip(params, d, strict=True)]
                    actual = float(ad["loss"](params)) - float(ad["loss"](trial))
                    model_m = alpha * gtg + alpha**2 / 2 * ghg + sigma / 6 * alpha**3 * n**1.5
                    predicted = -model_m
                    rho = actual / predicted if predicted > 0 else -math.inf
                    if flag == "":
                        accept = rho >= ETA1
                        if rho > ETA2:
                            sigma = max(c.sigma * SIGMA_MIN_F, sigma / GAMMA)
                        elif not accept:
                            sigma = min(c.sigma * SIGMA_MAX_F, sigma * GAMMA)
                        if not accept:
                            applied, flag = 0.0, "rejected"
                alphas = [applied] * len(d)
                rec = (alpha, applied, gtg, ghg, dnorm, flag)
            elif c.variant == "per-layer":
                nblocks = max(blocks) + 1
                per = []
                for k in range(nblocks):
                    dk = [di if b == k else np.zeros_like(di)
                          for di, b in zip(d, blocks, strict=True)]  # fmt: skip
                    per.append((_dot(dk, g), dhd(dk), _dot(dk, dk)))
                found = [eq37(gt, gh, c.sigma, s**1.5, LR) for gt, gh, s in per]
                alphas = [found[b][0] for b in blocks]
                ls = _least_squares([a * di for a, di in zip(alphas, d, strict=True)], d)
                rec = (ls, ls, sum(p[0] for p in per), sum(p[1] for p in per), dnorm,
                       _combined([f for _, f in found]))  # fmt: skip
            else:  # per-variable: one Eq 37 per weight along d_i e_i
                h = _np_list(ad["hdiag"](params))
                alphas, flags = [], []
                for di, gi, hi in zip(d, g, h, strict=True):
                    found = [eq37(float(a * b), float(a * a * e), c.sigma, abs(float(a)) ** 3, LR)
                             for a, b, e in zip(di.ravel(), gi.ravel(), hi.ravel(), strict=True)]  # fmt: skip
                    alphas.append(np.array([a for a, _ in found]).reshape(di.shape))
                    flags += [f for _, f in found]
                ls = _least_squares([a * di for a, di in zip(alphas, d, strict=True)], d)
                diag_part = sum(float(np.sum(di * di * hi)) for di, hi in zip(d, h, strict=True))
                rec = (ls, ls, gtg, diag_part, dnorm, _combined(flags))
            update = [a * di for a, di in zip(alphas, d, strict=True)]
            if c.every > 1:
                cached = alphas
                age = 0 if rec[5] == "rejected" else 1 % c.every
        params = [p + u for p, u in zip(params, update, strict=True)]
        alpha, lr_eff, gtg_, ghg_, dn, flag = rec
        out.append(Record(alpha, lr_eff, gtg_, ghg_, dn, flag,
                          sigma if c.variant == "adaptive" else None, params,
                          [np.asarray(u, dtype=np.float64) for u in update]))  # fmt: skip
    return out


# --------------------------------------------------------------------- comparisons
QUANTITIES = ("alpha", "lr_eff", "dgrad", "dhd", "dnorm", "sigma")


def _err(got: float | None, want: float | None) -> float:
    """Relative error of one logged scalar (NaN matches NaN; ``None`` only ``None``)."""
    if got is None or want is None:
        return 0.0 if got is None and want is None else math.inf
    if math.isnan(want) or math.isnan(got):
        return 0.0 if math.isnan(want) and math.isnan(got) else math.inf
    return abs(got - want) / max(abs(want), ATOL / RTOL)


def _err_arrays(got: Sequence, want: Sequence) -> float:
    """Largest error over the arrays, each against its own largest entry."""
    worst = 0.0
    for a, b in zip(got, want, strict=True):
        scale = max(float(np.max(np.abs(b), initial=0.0)), ATOL / RTOL)
        worst = max(worst, float(np.max(np.abs(np.asarray(a) - b), initial=0.0)) / scale)
    return worst


def compare_runs(got: Sequence[Record],
                 want: Sequence[Record]) -> Iterator[tuple[int, str, float]]:  # fmt: skip
    """``(step, quantity, relative error)`` of every logged quantity, the flag (0 or
    inf), the new parameters and the applied update."""
    for s, (g, w) in enumerate(zip(got, want, strict=True)):
        for q in QUANTITIES:
            if getattr(g, q) is not None or getattr(w, q) is not None:  # else: not logged
                yield s, q, _err(getattr(g, q), getattr(w, q))
        yield s, "flag", 0.0 if g.flag == w.flag else math.inf
        yield s, "params", _err_arrays(g.params, w.params)
        yield s, "update", _err_arrays(g.update, w.update)


def anchors(cell: Cell, got: Sequence[Record], sizes: Sizes = QUICK) -> list[list]:
    """The parameters each step of a path started from (see :func:`reference_run`)."""
    return [network(cell.model, sizes).params, *(r.params for r in got[:-1])]


def check_cell(cell: Cell, sizes: Sizes = QUICK) -> dict[str, float]:
    """The largest relative error of each compared quantity of a defined cell over its
    steps (and, for SGD with one model for the batch, of ``dgrad`` against
    ``-||grad F||^2``)."""
    got = run_path(cell, sizes)
    want = reference_run(cell, sizes, anchors(cell, got, sizes))
    worst: dict[str, float] = {}
    for _, q, e in compare_runs(got, want):
        worst[q] = max(worst.get(q, 0.0), e)
    if cell.base == "sgd" and cell.config.averaging == "model":
        worst["dgrad = -||grad F||^2"] = max(sgd_invariant(cell, got, sizes))
    return worst


def sgd_invariant(cell: Cell, got: Sequence[Record], sizes: Sizes = QUICK) -> list[float]:
    """For SGD (one model for the batch): the relative error of ``dgrad`` against
    ``-||grad F||^2``, the gradient from JAX at the path's own iterate before each step."""
    ad = _autodiff(cell.model, sizes)
    params = _np_list(network(cell.model, sizes).params)
    errs = []
    for r in got:
        g = _np_list(ad["grad"](params))
        errs.append(_err(r.dgrad, -_dot(g, g)))
        params = r.params
    return errs


# ------------------------------------------------------------- the report's group
@dataclass(frozen=True)
class StepCase:
    """The report's unit of work: the cells of one path and model at one size."""

    path: str
    model: Model
    sizes: Sizes
    cells: tuple[Cell, ...]

    @property
    def name(self) -> str:
        return f"steps-{self.path}-{self.model.name}-{self.sizes.name}"


def step_cases(quick: bool = True, seed: int = 0) -> list[StepCase]:
    """The ``steps`` group: the ``"quick"`` tier (:func:`select`) at the quick sizes, or
    the whole matrix at :data:`FULL`."""
    sizes = QUICK if quick else FULL
    sizes = Sizes(**{**sizes.__dict__, "seed": seed})
    chosen = select(cells(), "quick" if quick else "full")
    return [
        StepCase(p, m, sizes, tuple(c for c in chosen if c.path == p and c.model == m))
        for p in PATHS
        for m in MODELS
    ]


def _refused(cell: Cell, sizes: Sizes, pattern: str) -> str | None:
    """``None`` when the path raises the expected ``ValueError``, else what happened."""
    try:
        run_path(cell, sizes)
    except ValueError as exc:
        return None if re.search(pattern, str(exc)) else f"ValueError without {pattern!r}: {exc}"
    except Exception as exc:  # noqa: BLE001 - any other outcome is the finding
        return f"{type(exc).__name__} instead of a ValueError: {exc}"
    return "ran; expected a ValueError"


def check_steps(case: StepCase) -> tuple[list[Measurement], list]:
    """Every cell of ``case`` against :func:`reference_run` (measurements named
    ``step`` / ``<path>: <quantity>``), and the refusals."""
    ms: list[Measurement] = []
    kernels = f"{case.path} step path"
    for cell in case.cells:
        pattern = refusal(cell)
        if pattern is not None:
            why = _refused(cell, case.sizes, pattern)
            q = f"{case.path}: undefined cells are refused"
            ms.append(failed("step", q, "float64", cell.name, RTOL, kernels, why) if why
                      else compare("step", q, 0.0, 0.0, dtype="float64", case=cell.name,
                                   tolerance=RTOL, kernels=kernels))  # fmt: skip
            continue
        try:
            worst = check_cell(cell, case.sizes)
        except Exception as exc:  # noqa: BLE001 - a failing path is a verdict
            ms.append(failed("step", f"{case.path}: the step runs", "float64", cell.name, RTOL,
                             kernels, f"{type(exc).__name__}: {exc}"))  # fmt: skip
            continue
        for q, e in worst.items():
            ms.append(Measurement("step", f"{case.path}: {q}", "float64", cell.name,
                                  e, e, RTOL, kernels))  # fmt: skip
    return ms, []
