"""CR where researchers train: an optax transformation, and optax methods for ``lowrank train``.

:func:`scale_by_cr` is an ``optax.GradientTransformationExtraArgs`` that composes with any
base transformation: the base's output is read as the lr-free direction in optax's sign
convention (gradient-like, as ``scale_by_adam``, ``scale_by_rss`` or no transformation
for SGD), CR takes the descent direction ``d = -updates`` and returns ``alpha * d`` with
the step length of Eq 37 (through the cancellation-free form C8), with the flags and
fallbacks of :mod:`numeric.cr` (non-descent, zero, non-finite)::

    opt = optax.chain(optax.scale_by_adam(), scale_by_cr(sigma=1000.0))
    state = opt.init(params)
    updates, state = opt.update(grads, state, params, value_fn=loss_of_params)
    params = optax.apply_updates(params, updates)

``d^T grad F`` and ``d^T H d`` are exact:

* for any JAX model, by one forward-over-reverse product of ``value_fn``
  (``jax.jvp(jax.grad(value_fn))``), for any pytree of parameters;
* for this project's networks, when ``value_fn`` is a :class:`NetworkObjective`, by the
  generated contracted kernels (one tangent sweep; the low-rank forms L1-L4 when
  ``direction="sgd"`` says the incoming updates are the gradient itself), without
  building the autodiff route.

:class:`OptaxMethod` runs any optax transformation (CR chains, and the optax baselines:
Prodigy, D-Adaptation, DoG, Schedule-Free, Momo, backtracking line search, Sophia) as a
:class:`numeric.cr.Method` on the JAX backend, so ``lowrank train`` records them like its
own methods.  This module imports JAX and optax; ``import numeric`` does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from numeric import curvature as cv
from numeric import variants as vr
from numeric.cr import AVERAGING, FLAGS, NONDESCENT, Diverged, MethodState, StepInfo
from numeric.losses import hessian_factor, loss_change, softmax_cross_entropy
from numeric.network import Network, backward, forward
from numeric.optax_state import state_from_arrays, state_to_arrays
from numeric.variants import ARC, VARIANTS

__all__ = [
    "BASELINES",
    "NetworkObjective",
    "OptaxMethod",
    "ScaleByCRState",
    "baseline",
    "bench_steps",
    "scale_by_cr",
    "state_from_arrays",
    "state_to_arrays",
]


class ScaleByCRState(NamedTuple):
    """What the last CR step did (all 0-d arrays), for logging, and the variants' state.

    ``alpha`` the step length along ``d`` (per-layer and per-variable: the
    least-squares scalar of the applied step); ``dgrad`` = ``d^T grad F``; ``dhd`` =
    ``d^T H d`` (per-layer: its block-diagonal part, per-variable: its diagonal part);
    ``dnorm`` = ``||d||``; ``flag`` an index into :data:`numeric.cr.FLAGS`; ``count``
    the number of steps taken.  ``sigma``: adaptive CR's cubic weight; ``rms``, ``rms_count``:
    the running mean of the squared gradient (scale-invariant CR); ``cached``, ``age``:
    the step lengths reused by ``every > 1`` and the steps since they were computed
    (``None`` where the variant has no such state).
    """

    count: Any
    alpha: Any
    dgrad: Any
    dhd: Any
    dnorm: Any
    flag: Any
    sigma: Any = None
    rms: Any = None
    rms_count: Any = None
    cached: Any = None
    age: Any = None


class NetworkObjective:
    """``F(params)`` of a :class:`numeric.network.Network` on one batch: the fast path.

    Passed as ``value_fn``, it lets :func:`scale_by_cr` compute ``d^T grad F`` and
    ``d^T H d`` with the generated kernels.  ``params`` is the network's flat parameter
    list.  Calling it returns the batch-mean loss (so it also serves as an ordinary
    ``value_fn`` for line searches).

    Parameters
    ----------
    layers : sequence of Layer
    x : array, shape (batch, *in_shape)
    y : array, shape (batch, classes)
        Label rows (e.g. one-hot).
    """

    def __init__(self, layers: Sequence, x, y) -> None:
        self.layers = tuple(layers)
        self.x = x
        self.y = y

    def evaluate(self, params, second: bool = True):
        tape = forward(self.layers, params, self.x, second)
        f, dfdp, d2fdp2 = softmax_cross_entropy(tape.p, self.y, second=second)
        adj = backward(self.layers, params, tape, dfdp)
        return f.mean(), tape, adj, dfdp, d2fdp2

    def __call__(self, params):
        tape = forward(self.layers, params, self.x, second=False)
        f, _, _ = softmax_cross_entropy(tape.p, self.y, second=False)
        return f.mean()

    def value_and_grad(self, params):
        """``(F, grad F)`` through the generated adjoint sweep."""
        loss, _, adj, _, _ = self.evaluate(params, second=False)
        return loss, adj.grads


def _vdot(a, b):
    leaves = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    return sum(jnp.vdot(x, y) for x, y in leaves)


def _tmap(fn, *trees):
    return jax.tree_util.tree_map(fn, *trees)


def _autodiff_curvature(value_fn: Callable, params, d):
    grad, hd = jax.jvp(jax.grad(value_fn), (params,), (d,))
    return _vdot(d, grad), _vdot(d, hd)


def _network_curvature(objective: NetworkObjective, params, d, direction: str):
    params = list(params)
    d = list(d)
    _, tape, adj, dfdp, d2fdp2 = objective.evaluate(params)
    if direction == "sgd":
        return cv.sgd_curvature(objective.layers, params, tape, adj, dfdp, d2fdp2)
    return cv.directional(objective.layers, params, tape, adj, dfdp, d2fdp2, d)


def _gradient(value_fn, params, grad=None):
    """The gradient: the ``grad`` extra argument, the generated adjoint sweep for a
    :class:`NetworkObjective`, else ``jax.grad``."""
    if grad is not None:
        return grad
    if isinstance(value_fn, NetworkObjective):
        return type(params)(value_fn.value_and_grad(list(params))[1])
    return jax.grad(value_fn)(params)


def _block_curvature(value_fn, params, d, direction: str):
    """Per block ``(d_k^T grad_k F, d_k^T H_kk d_k, ||d_k||^2)`` and the block of each
    leaf: the layers of a :class:`NetworkObjective` (C45-C46), else one block per leaf
    (one Hessian-vector product each)."""
    if isinstance(value_fn, NetworkObjective):
        params, dl = list(params), list(d)
        _, tape, adj, dfdp, d2fdp2 = value_fn.evaluate(params)
        way = None if direction == "sgd" else dl
        out = cv.block_curvature(value_fn.layers, params, tape, adj, dfdp, d2fdp2, way)
        return out, cv.blocks(value_fn.layers)
    leaves, tree = jax.tree_util.tree_flatten(d)
    gtg, ghg, sq = [], [], []
    for k in range(len(leaves)):
        dk = jax.tree_util.tree_unflatten(
            tree, [x if i == k else jnp.zeros_like(x) for i, x in enumerate(leaves)]
        )
        a, b = _autodiff_curvature(value_fn, params, dk)
        gtg.append(a)
        ghg.append(b)
        sq.append(jnp.vdot(leaves[k], leaves[k]))
    return (jnp.stack(gtg), jnp.stack(ghg), jnp.stack(sq)), list(range(len(leaves)))


def _hessian_diagonal(value_fn, params):
    """The Hessian diagonal as a pytree: C21, C42-C44 for a :class:`NetworkObjective`;
    otherwise one Hessian-vector product per parameter (exact; small models only)."""
    if isinstance(value_fn, NetworkObjective):
        params = list(params)
        _, tape, _, _, d2fdp2 = value_fn.evaluate(params)
        return cv.hessian_diagonal(value_fn.layers, params, tape, hessian_factor(tape.p, d2fdp2))
    flat, unravel = ravel_pytree(params)
    grad = jax.grad(lambda t: value_fn(unravel(t)))

    def entry(i):
        e = jnp.zeros_like(flat).at[i].set(1.0)
        return jax.jvp(grad, (flat,), (e,))[1][i]

    return unravel(jax.lax.map(entry, jnp.arange(flat.size)))


def _actual_decrease(value_fn, params, step, value=None):
    """``F(params) - F(params + step)`` on the batch: V4 from the logits for a
    :class:`NetworkObjective` (one extra forward pass), else two values of ``value_fn``
    (one when ``value`` is given)."""
    trial = _tmap(lambda p, s: p + s.astype(p.dtype), params, step)
    if isinstance(value_fn, NetworkObjective):
        p0 = forward(value_fn.layers, list(params), value_fn.x, second=False).p
        p1 = forward(value_fn.layers, list(trial), value_fn.x, second=False).p
        return -jnp.mean(loss_change(p0, p1, value_fn.y))
    before = value_fn(params) if value is None else value
    return before - value_fn(trial)


def scale_by_cr(
    sigma: float,
    *,
    nondescent: str = "base",
    fallback: float = 0.0,
    averaging: str = "model",
    direction: str = "any",
    variant: str = "paper",
    every: int = 1,
    arc: ARC | None = None,
    metric: str = "rms",
) -> optax.GradientTransformationExtraArgs:
    """Scale the base transformation's direction by the CR step length (Eq 37).

    Parameters
    ----------
    sigma : float
        Cubic weight ``sigma > 0`` (adaptive: its initial value).
    nondescent : {"base", "skip"}
        Step for a direction with ``d^T grad F >= 0``: ``fallback`` or none.
    fallback : float
        Step length of flagged steps (non-descent with ``"base"``, non-finite); the base
        method's own learning rate is the natural choice.
    averaging : {"model"}
        One cubic model for the batch (Section 3.1's choice).  The per-sample options
        of :class:`numeric.cr.CR` need per-sample directions, which an optax chain does
        not have.
    direction : {"any", "sgd"}
        ``"sgd"``: the incoming updates are the mini-batch gradient itself (no base
        transformation), so the fast path applies it through its per-sample factors
        (L1-L4) instead of a tangent sweep.
    variant : {"paper", "adaptive", "scale-invariant", "per-layer", "per-variable"}
        As :class:`numeric.cr.CR` (:mod:`numeric.variants`): the same rules, in the same
        functions.  For any model, ``"per-layer"`` takes each leaf of the parameters as
        a block (one Hessian-vector product per leaf) and ``"per-variable"`` needs one
        Hessian-vector product per parameter (small models; a :class:`NetworkObjective`
        uses the factored sweep C42-C44).  ``"adaptive"`` evaluates ``value_fn`` at the
        trial point (and at ``params`` unless ``value=`` is passed).
    every : int
        Compute the step length every ``every`` steps and reuse it in between.
    arc : numeric.variants.ARC, optional
        Parameters of the adaptive rule.
    metric : {"rms", "identity"}
        Scale-invariant CR's metric.  A chain hides its base's state, so ``"rms"``
        keeps the gradient's running RMS (``beta2 = 0.999``, ``eps = 1e-8``): Adam's
        preconditioner metric, for Adam- and RMSProp-like bases; ``"identity"`` for
        SGD (the paper's CR).  :class:`numeric.cr.CR` reads its base optimizer's own.

    The update function takes ``value_fn`` (required): ``params -> F``; a
    :class:`NetworkObjective` selects the fast path.  It also reads ``grad=`` and
    ``value=`` when given (scale-invariant and adaptive CR use them).
    """
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
    if nondescent not in NONDESCENT:
        raise ValueError(f"nondescent must be one of {NONDESCENT}, got {nondescent!r}")
    if averaging not in AVERAGING:
        raise ValueError(f"averaging must be one of {AVERAGING}, got {averaging!r}")
    if averaging != "model":
        raise ValueError(
            f"averaging={averaging!r} needs per-sample directions; an optax chain has one "
            "direction for the batch: use averaging='model'"
        )
    if direction not in ("any", "sgd"):
        raise ValueError(f"direction must be 'any' or 'sgd', got {direction!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if isinstance(every, bool) or int(every) != every or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    if metric not in ("rms", "identity"):
        raise ValueError(f"metric must be 'rms' or 'identity', got {metric!r}")
    every = int(every)
    arc = (arc if arc is not None else ARC()).for_sigma(sigma)
    rms = variant == "scale-invariant" and metric == "rms"
    rejected_flag = FLAGS.index("rejected")

    def init_fn(params):
        ftype = jnp.result_type(float)
        zero = jnp.zeros((), dtype=ftype)
        extra = {}
        if variant == "adaptive":
            extra["sigma"] = jnp.asarray(sigma, ftype)
        if rms:
            extra["rms"] = _tmap(jnp.zeros_like, params)
            extra["rms_count"] = jnp.zeros((), jnp.int32)
        if every > 1:
            shape = (
                (lambda p: jnp.zeros_like(p))
                if variant == "per-variable"
                else (lambda p: jnp.zeros((), p.dtype))
            )
            extra["cached"] = _tmap(shape, params)
            extra["age"] = jnp.zeros((), jnp.int32)
        return ScaleByCRState(
            jnp.zeros((), jnp.int32), zero, zero, zero, zero, jnp.zeros((), jnp.int32), **extra
        )

    def lengths(d, params, value_fn, state, grad, value):
        """Step lengths per leaf (a pytree like ``d``), the logged values, new sigma."""
        sq = _vdot(d, d)
        sig = state.sigma if variant == "adaptive" else sigma
        if variant == "per-layer":
            (gtg_k, ghg_k, sq_k), owner = _block_curvature(value_fn, params, d, direction)
            a_k, f_k = vr.step_lengths(gtg_k, ghg_k, sigma, sq_k**1.5, fallback, nondescent)
            leaves, tree = jax.tree_util.tree_flatten(d)
            alphas = jax.tree_util.tree_unflatten(tree, [a_k[b] for b in owner])
            step = _tmap(lambda a, x: a * x, alphas, d)
            lr_eff = vr.least_squares_scale(jax.tree_util.tree_leaves(step), leaves)
            info = (lr_eff, jnp.sum(gtg_k), jnp.sum(ghg_k), vr.combine_flags([f_k]))
            return alphas, info, sig
        if variant == "per-variable":
            diag = _hessian_diagonal(value_fn, params)
            g = _gradient(value_fn, params, grad)
            leaves, tree = jax.tree_util.tree_flatten(d)
            al, fl, dhd = vr.per_variable_lengths(
                leaves, jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(diag), sigma,
                fallback, nondescent,
            )  # fmt: skip
            lr_eff = vr.least_squares_scale([a * x for a, x in zip(al, leaves, strict=True)],
                                            leaves)  # fmt: skip
            info = (lr_eff, _vdot(d, g), dhd, vr.combine_flags(fl))
            return jax.tree_util.tree_unflatten(tree, al), info, sig
        if isinstance(value_fn, NetworkObjective):
            gtg, ghg = _network_curvature(value_fn, params, d, direction)
        else:
            gtg, ghg = _autodiff_curvature(value_fn, params, d)
        norm3 = sq**1.5
        if rms:
            met = vr.rms_metric(jax.tree_util.tree_leaves(state.rms), state.rms_count)
            norm3 = vr.metric_sq_norm(jax.tree_util.tree_leaves(d), met) ** 1.5
        alpha, flag = vr.step_lengths(gtg, ghg, sig, norm3, fallback, nondescent)
        if variant == "adaptive":
            step = _tmap(lambda x: (alpha * x).astype(x.dtype), d)
            actual = _actual_decrease(value_fn, params, step, value)
            alpha_t = alpha
            alpha, sig, flag, _ = vr.adaptive_outcome(
                alpha, flag, gtg, sig * norm3, actual, sig, arc
            )
            info = (alpha_t, gtg, ghg, flag)
        else:
            info = (alpha, gtg, ghg, flag)
        return _tmap(lambda x: alpha, d), info, sig

    def update_fn(updates, state, params=None, *, value_fn=None, **extra):
        if params is None or value_fn is None:
            raise ValueError("scale_by_cr needs params and value_fn=(params -> loss)")
        grad, value = extra.get("grad"), extra.get("value")
        d = _tmap(lambda u: -u, updates)
        ftype = state.alpha.dtype
        new = {}
        if rms:
            g = _gradient(value_fn, params, grad)
            moments = vr.rms_update(
                jax.tree_util.tree_leaves(state.rms), jax.tree_util.tree_leaves(g)
            )
            new["rms"] = jax.tree_util.tree_unflatten(
                jax.tree_util.tree_structure(state.rms), moments
            )
            new["rms_count"] = state.rms_count + 1
            state = state._replace(**new)

        def compute(_):
            alphas, (alpha, gtg, ghg, flag), sig = lengths(d, params, value_fn, state, grad, value)
            sig = state.sigma if sig is None or variant != "adaptive" else sig
            return alphas, (alpha, gtg, ghg, flag), sig

        def reuse(_):
            alphas = state.cached
            step = jax.tree_util.tree_leaves(_tmap(lambda a, x: a * x, alphas, d))
            lr_eff = vr.least_squares_scale(step, jax.tree_util.tree_leaves(d))
            g = _gradient(value_fn, params, grad)
            info = (lr_eff, _vdot(d, g), jnp.asarray(jnp.nan, ftype), jnp.zeros((), jnp.int32))
            return alphas, info, state.sigma

        if every == 1:
            alphas, (alpha, gtg, ghg, flag), sig = compute(None)
        else:
            alphas, (alpha, gtg, ghg, flag), sig = jax.lax.cond(
                state.age == 0,
                lambda o: _cast(compute(o), ftype, state.cached),
                lambda o: _cast(reuse(o), ftype, state.cached),
                None,
            )
            rejected = flag == rejected_flag
            fresh = state.age == 0
            new["cached"] = _tmap(
                lambda a, c: jnp.where(fresh, jnp.broadcast_to(a, c.shape).astype(c.dtype), c),
                alphas, state.cached,
            )  # fmt: skip
            new["age"] = jnp.where(rejected, 0, (state.age + 1) % every).astype(jnp.int32)
        if variant == "adaptive":
            new["sigma"] = jnp.asarray(sig, ftype)
        out = _tmap(lambda a, x: (a * x).astype(x.dtype), alphas, d)
        info = state._replace(
            count=state.count + 1,
            alpha=jnp.asarray(alpha, ftype),
            dgrad=jnp.asarray(gtg, ftype),
            dhd=jnp.asarray(ghg, ftype),
            dnorm=jnp.asarray(jnp.sqrt(_vdot(d, d)), ftype),
            flag=jnp.asarray(flag, jnp.int32),
            **new,
        )
        return out, info

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _cast(result, ftype, like):
    """Both branches of ``lax.cond`` with the same dtypes (``like``: the cached lengths)."""
    alphas, (alpha, gtg, ghg, flag), sig = result
    alphas = _tmap(lambda a, c: jnp.asarray(a, c.dtype), alphas, like)
    info = (jnp.asarray(alpha, ftype), jnp.asarray(gtg, ftype), jnp.asarray(ghg, ftype),
            jnp.asarray(flag, jnp.int32))  # fmt: skip
    return alphas, info, (None if sig is None else jnp.asarray(sig, ftype))


# ------------------------------------------------------------------ optax baselines
def _linesearch(lr: float):
    return optax.chain(
        optax.sgd(learning_rate=lr),
        optax.scale_by_backtracking_linesearch(max_backtracking_steps=15, store_grad=True),
    )


_STANDARD = ("value", "grad", "value_fn")

#: optax's learning-rate-free and second-order methods, by ``lowrank train`` name:
#: ``name -> (factory(lr) -> GradientTransformation, default lr, extra arguments)``
BASELINES: dict[str, tuple[Callable[[float], Any], float, tuple[str, ...]]] = {
    "prodigy": (lambda lr: optax.contrib.prodigy(learning_rate=lr), 1.0, _STANDARD),
    "dadapt_adamw": (lambda lr: optax.contrib.dadapt_adamw(learning_rate=lr), 1.0, _STANDARD),
    "dog": (lambda lr: optax.contrib.dog(learning_rate=lr), 1.0, _STANDARD),
    "schedule_free_adamw": (
        lambda lr: optax.contrib.schedule_free_adamw(learning_rate=lr),
        0.0025,
        _STANDARD,
    ),
    "schedule_free_sgd": (
        lambda lr: optax.contrib.schedule_free_sgd(learning_rate=lr),
        1.0,
        _STANDARD,
    ),
    "momo": (lambda lr: optax.contrib.momo(learning_rate=lr), 1.0, _STANDARD),
    "linesearch": (_linesearch, 1.0, _STANDARD),
    "sophia": (lambda lr: optax.contrib.sophia(learning_rate=lr), 0.001, ("obj_fn",)),
}


def baseline(name: str, lr: float | None = None) -> OptaxMethod:
    """The optax method ``name`` of :data:`BASELINES` (its default learning rate if none),
    ready for ``lowrank train``."""
    if name not in BASELINES:
        raise ValueError(f"unknown optax method {name!r}; choose one of {sorted(BASELINES)}")
    factory, default, extra = BASELINES[name]
    return OptaxMethod(factory(default if lr is None else float(lr)), name, extra)


class OptaxMethod:
    """An optax transformation as a training method on the JAX backend.

    ``step(network, state, x, labels)`` has the signature of
    :meth:`numeric.cr.Method.step`: the loss and the gradient come from the generated
    kernels; ``value``, ``grad``, ``value_fn`` and ``obj_fn`` are passed to the
    transformation as extra arguments (a :class:`NetworkObjective` of the batch), so line
    searches, Momo and Sophia work.  When the chain contains :func:`scale_by_cr`, the
    logged ``alpha``, ``dgrad``, ``dhd`` and flag are CR's; otherwise ``alpha`` is the
    effective SGD learning rate ``-<update, grad> / ||grad||^2``.

    Parameters
    ----------
    tx : optax.GradientTransformation
    name : str
        For ``repr`` and the run's config.
    extra_args : tuple of str
        Which of ``value``, ``grad``, ``value_fn`` and ``obj_fn`` the transformation is
        given (a line search hands every unknown one on to ``value_fn``).
    """

    def __init__(self, tx, name: str = "optax", extra_args: tuple[str, ...] = _STANDARD) -> None:
        unknown = set(extra_args) - {"value", "grad", "value_fn", "obj_fn"}
        if unknown:
            raise ValueError(f"unknown extra arguments {sorted(unknown)}")
        self.tx = tx
        self.name = name
        self.extra_args = tuple(extra_args)
        self._compiled: dict[tuple, Any] = {}

    def init(self, network: Network) -> MethodState:
        return MethodState(0, self.tx.init(list(network.params)))

    def eval_network(self, network: Network, state: MethodState) -> Network:
        """The network at the weights to evaluate: a schedule-free method's average
        ``x`` (:func:`optax.contrib.schedule_free_eval_params`), not its iterate ``y``;
        every other transformation's iterate."""
        sf = _find_schedule_free_state(state.opt)
        if sf is None:
            return network
        params = optax.contrib.schedule_free_eval_params(sf, list(network.params))
        return network.with_params(list(params))

    def _impl(self, layers, params, opt_state, x, y):
        objective = NetworkObjective(layers, x, y)
        loss, grads = objective.value_and_grad(params)
        offered = {"value": loss, "grad": grads, "value_fn": objective, "obj_fn": objective}
        extra = {k: offered[k] for k in self.extra_args}
        updates, new_state = self.tx.update(grads, opt_state, params, **extra)
        new_params = optax.apply_updates(params, updates)
        gg = _vdot(grads, grads)
        ug = _vdot(updates, grads)
        cr_state = _find_cr_state(new_state)
        if cr_state is not None:
            info = (cr_state.alpha, cr_state.alpha, cr_state.dgrad, cr_state.dhd,
                    cr_state.dnorm, cr_state.flag)  # fmt: skip
        else:
            lr_eff = jnp.where(gg > 0, -ug / gg, 0.0)
            info = (lr_eff, lr_eff, ug, jnp.nan, jnp.sqrt(_vdot(updates, updates)), 0)
        return new_params, new_state, (loss, *(jnp.asarray(v) for v in info))

    def step(self, network: Network, state: MethodState, x, labels, *, check: bool = True,
             sharding=None):  # fmt: skip
        from numeric import jax_backend as jb

        dtype = network.dtype
        xs = np.asarray(x, dtype=dtype) if isinstance(x, np.ndarray) else x
        if xs.ndim == 2 and len(network.in_shape) > 1:
            xs = xs.reshape(xs.shape[0], *network.in_shape)
        ys = network.targets(np.asarray(labels) if isinstance(labels, np.ndarray) else labels,
                             xs.shape[0])  # fmt: skip
        if sharding is not None:
            xs, ys = jb.device_array(xs, sharding), jb.device_array(ys, sharding)
        key = tuple(network.layers)
        fn = self._compiled.get(key)
        if fn is None:
            fn = jax.jit(partial(self._impl, key))
            self._compiled[key] = fn
        new_params, new_state, info = fn(list(network.params), state.opt, xs, ys)
        loss, alpha, lr_eff, dgrad, dhd, dnorm, flag = (float(v) for v in jax.device_get(info))
        if not math.isfinite(loss):
            raise Diverged(f"the mini-batch loss is {loss} before step {state.step}")
        if not math.isfinite(dnorm):
            raise Diverged(f"the update is not finite at step {state.step}")
        info = StepInfo(loss, alpha, math.nan, lr_eff, dgrad, dhd, dnorm, FLAGS[int(flag)])
        return network.with_params(new_params), MethodState(state.step + 1, new_state), info

    def __repr__(self) -> str:
        return f"OptaxMethod({self.name})"


def _find_schedule_free_state(state):
    """The ``ScheduleFreeState`` inside an optax state (a chain's tuple), or ``None``."""
    if hasattr(state, "z") and hasattr(state, "b1"):
        return state
    if isinstance(state, tuple):
        for part in state:
            found = _find_schedule_free_state(part)
            if found is not None:
                return found
    return None


def _find_cr_state(state) -> ScaleByCRState | None:
    if isinstance(state, ScaleByCRState):
        return state
    if isinstance(state, tuple | list):
        for s in state:
            found = _find_cr_state(s)
            if found is not None:
                return found
    return None


def bench_steps(objective: NetworkObjective, lr: float, sigma: float) -> dict[str, Callable]:
    """Jit-compiled steps ``params -> params`` for ``lowrank bench``: an optax SGD step and
    the CR step of :func:`scale_by_cr` on the SGD direction, with ``d^T H d`` from the
    generated kernels (``optax-cr-fast``) or from ``jvp(grad)`` (``optax-cr-jvp``)."""

    def plain(params):
        return objective(params)

    sgd = optax.sgd(lr)
    cr_fast = optax.chain(optax.identity(), scale_by_cr(sigma, fallback=lr, direction="sgd"))
    cr_jvp = optax.chain(optax.identity(), scale_by_cr(sigma, fallback=lr))

    def make(tx, grad_fn, value_fn):
        @jax.jit
        def step(params, state):
            _, grads = grad_fn(params)
            updates, state = tx.update(grads, state, params, value_fn=value_fn)
            return optax.apply_updates(params, updates), state

        return tx, step

    return {
        "optax-sgd": make(sgd, jax.value_and_grad(plain), plain),
        "optax-cr-fast": make(cr_fast, objective.value_and_grad, objective),
        "optax-cr-jvp": make(cr_jvp, jax.value_and_grad(plain), plain),
    }
