"""Cubic regularization (CR) as a metamethod on top of any base optimizer (Section 3.1).

The base optimizer proposes an lr-free *unit direction* ``d`` (for SGD ``d = -grad F``;
see :mod:`numeric.optimizers`).  Along ``d`` the cubic model of Eq 8 is

    m(alpha) = F + alpha d^T grad F + alpha^2 / 2  d^T H d + sigma / 6 alpha^3 ||d||^3

and CR takes the step ``alpha * d`` with the positive root of ``m'(alpha) = 0`` (Eq 37,
evaluated in whichever of its two algebraically equal forms does not cancel for the sign
of ``d^T H d``).
``d^T grad F`` and ``d^T H d`` are exact, from the generated contracted and low-rank
kernels through :mod:`numeric.curvature` (:func:`~numeric.curvature.directional`, or
:func:`~numeric.curvature.sgd_curvature` when ``d = -grad F``): each layer of the network
adds its own terms (for a dense layer C7 and L1-L4, plus C11's
``vbar^(k) . A''(z^(k)) zdot^(k)^2`` when its activation has ``A'' != 0``), so CR never
branches on layer or activation type.

Averaging over the mini-batch (Section 3.1)
-------------------------------------------
``"model"`` (default, the paper's choice)
    One model for the batch: ``d`` fixed, ``d^T grad F`` and ``d^T H d`` averaged over
    the samples, a single ``alpha``.  Any base optimizer.
``"mean-alpha"`` (``E[alpha] E[g]``)
    One ``alpha_b`` per sample from the cubic model of ``f_b`` along that sample's own
    direction ``d_b = -grad f_b``; the step is ``mean_b(alpha_b) * (-grad F)``.
``"alpha-g"`` (``E[alpha g]``)
    The same ``alpha_b``; the step is ``mean_b(alpha_b * d_b)``.
The per-sample options need a per-sample direction; it is well defined only for SGD
(the adaptive optimizers' directions depend on accumulators updated by the batch
gradient), so they are restricted to SGD.

Steps the cubic model cannot set (defined, logged, never NaN)
-------------------------------------------------------------
Each step carries a flag (:data:`FLAGS`):

``"nondescent"``
    ``d^T grad F >= 0`` (possible with Adam's momentum, or Adadelta): the cubic model
    along ``+d`` is minimised at ``alpha = 0``.  Policy ``nondescent="base"`` (default)
    takes the base optimizer's own step, ``alpha = lr`` (the scheduled learning rate),
    so such a step is exactly the base method's; ``"skip"`` takes
    ``alpha = 0`` (no move; the optimizer's accumulators still advance).
``"zero"``
    ``||d|| = 0`` (e.g. a vanishing gradient): ``alpha = 0``.
``"nonfinite"``
    ``d^T grad F``, ``d^T H d`` or Eq 37 overflowed (or Eq 37 underflowed to a zero
    denominator): the base step ``alpha = lr``.
``"rejected"``
    Adaptive CR only: the trial step did not decrease the batch loss by at least
    ``eta1`` times the model's prediction; the weights stay (``lr_eff = 0``).

Variants (``variant=``, ``every=``)
-----------------------------------
Beyond the paper (its Section 4's future work and the cubic model's own sigma update),
:mod:`numeric.variants` holds the rules, shared with :func:`numeric.optax.scale_by_cr`:
``"adaptive"`` (ARC: a trial forward pass, accept or reject, sigma shrinks or grows),
``"scale-invariant"`` (the cubic term in the base optimizer's own metric), ``"per-layer"`` (one
length per layer from its Hessian block) and ``"per-variable"`` (one length per weight
from the exact Hessian diagonal).  ``every=K`` computes the length(s) every ``K`` steps
and reuses them in between.  Their state (sigma, the metric, the reused lengths) lives
in the state's ``cr_*`` entries, so checkpoints carry it.  A rejected adaptive step is
flagged ``"rejected"``.

Effective learning rate
-----------------------
``lr_eff`` is the scalar ``s`` for which ``s * d`` is the applied update (least squares
for ``"alpha-g"``, whose update is not a multiple of ``d``): ``alpha`` for CR with
``"model"``, ``mean_b(alpha_b)`` for ``"mean-alpha"``, the scheduled ``lr`` for the
base method.  It is in the units of the optimizer's learning rate, so for SGD it is
the SGD learning rate CR chose.

Learning-rate decay
-------------------
CR *replaces* the step length: its ``alpha`` is not decayed.  The schedule of a CR
method only sets the fallback step of flagged iterations.

Example
-------
>>> import numpy as np
>>> from numeric.model import Network
>>> from numeric.optimizers import SGD
>>> net = Network.create(4, [3, 3], 2, init="plateau", seed=0)
>>> method = CR(SGD(), sigma=100.0, lr=0.02)
>>> state = method.init(net)
>>> x, y = np.ones((5, 4)), np.array([0, 1, 0, 1, 1])
>>> net, state, info = method.step(net, state, x, y)
>>> info.flag, info.alpha > 0
('', True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from numeric import curvature as cv
from numeric import variants as vr
from numeric.kernels._runtime import namespace
from numeric.kernels.cubic_regularization import cr_step_length
from numeric.losses import hessian_factor, loss_change
from numeric.network import Network, forward
from numeric.optimizers import SGD, Optimizer
from numeric.schedules import Constant
from numeric.stepping import FLAGS, Diverged, Evaluation, MethodState, StepInfo, evaluate
from numeric.variants import ARC, VARIANTS, step_lengths

__all__ = [
    "ARC",
    "AVERAGING",
    "CR",
    "FLAGS",
    "NONDESCENT",
    "Baseline",
    "Diverged",
    "Method",
    "MethodState",
    "StepInfo",
    "VARIANTS",
    "cubic_model",
    "step_length",
    "step_lengths",
]

#: Averaging options of Section 3.1 (see the module docstring).
AVERAGING = ("model", "mean-alpha", "alpha-g")
#: Policies for a direction that is not a descent direction.
NONDESCENT = ("base", "skip")
Schedule = Callable[[int], float]


# ------------------------------------------------------------------ step length (Eq 37)


def cubic_model(alpha, gtg, ghg, sigma: float, norm3):
    """``m(alpha) - F`` of Eq 8 along a fixed direction (``alpha >= 0``).

    ``alpha * gtg + alpha^2 / 2 * ghg + sigma / 6 * |alpha|^3 * norm3``; broadcasts.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    return alpha * gtg + 0.5 * alpha**2 * ghg + sigma / 6.0 * np.abs(alpha) ** 3 * norm3


def step_length(
    gtg: float,
    ghg: float,
    sigma: float,
    norm3: float,
    fallback: float,
    nondescent: str = "base",
) -> tuple[float, str]:
    """CR step length (Eq 37) along one direction, with the edge cases of the module.

    Eq 37 is evaluated through the generated cancellation-free form C8
    (:func:`numeric.kernels.cubic_regularization.cr_step_length`).

    Parameters
    ----------
    gtg : float
        ``d^T grad F`` (Eq 38).
    ghg : float
        ``d^T H d`` (Eq 39, corrected).
    sigma : float
        Cubic weight ``sigma > 0``.
    norm3 : float
        ``||d||^3`` (Eq 40).
    fallback : float
        The base optimizer's step length (the scheduled learning rate).
    nondescent : {"base", "skip"}
        Step for ``gtg >= 0``: ``fallback`` or ``0``.

    Returns
    -------
    alpha : float
        Finite and ``>= 0``.
    flag : str
        One of :data:`FLAGS`.
    """
    gtg, ghg, norm3 = float(gtg), float(ghg), float(norm3)
    if not (math.isfinite(gtg) and math.isfinite(ghg) and math.isfinite(norm3)):
        return float(fallback), "nonfinite"
    if norm3 <= 0.0 or sigma * norm3 == 0.0:
        return 0.0, "zero"
    if gtg >= 0.0:
        return (float(fallback) if nondescent == "base" else 0.0), "nondescent"
    alpha = float(cr_step_length(ghg, gtg, sigma, norm3))
    if not (math.isfinite(alpha) and alpha > 0.0):
        return float(fallback), "nonfinite"
    return alpha, ""


# ------------------------------------------------------------------------- methods


def _scaled(directions: list, scale: float) -> list:
    """``scale * d`` for each direction, in place where ``d`` is a fresh NumPy array.

    The optimizers return fresh arrays for their unit directions; scaling them in place
    saves an allocation (a page-faulting one for the large first layer) per array per
    step and gives the same values as ``scale * d``.
    """
    out = []
    for d in directions:
        if isinstance(d, np.ndarray) and d.flags.owndata and d.flags.writeable:
            out.append(np.multiply(d, scale, out=d))
        else:
            out.append(scale * d)
    return out


def _add_into(update, param):
    """``param + update``, written into ``update`` when it is a fresh NumPy array of the
    parameter's dtype (same values as ``param + update``)."""
    if (
        isinstance(update, np.ndarray)
        and update.flags.owndata
        and update.flags.writeable
        and update.dtype == param.dtype
        and update.shape == param.shape
    ):
        return np.add(update, param, out=update)
    return param + update


def _schedule(lr: float | Schedule | None, optimizer: Optimizer) -> Schedule:
    if lr is None:
        if optimizer.learning_rate is None:
            raise ValueError(f"{optimizer.name} has no default learning rate; pass lr=")
        lr = optimizer.learning_rate
    if callable(lr):
        return lr
    return Constant(float(lr))


class Method:
    """A base optimizer with a step-length rule; subclasses :class:`Baseline`, :class:`CR`.

    Parameters
    ----------
    optimizer : Optimizer
        The base optimizer (:mod:`numeric.optimizers`).
    lr : float or callable, optional
        Learning rate, or a schedule ``lr(step) -> float`` (e.g.
        :class:`~numeric.schedules.ExponentialDecay`); default the optimizer's
        ``learning_rate``.
    """

    def __init__(self, optimizer: Optimizer, lr: float | Schedule | None = None) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a numeric.optimizers.Optimizer, got {optimizer!r}")
        self.optimizer = optimizer
        self.schedule = _schedule(lr, optimizer)

    def init(self, network: Network) -> MethodState:
        """Fresh state for ``network`` (the optimizer's, and the method's own ``cr_*``)."""
        opt = self.optimizer.init(network.params)
        opt.update(self._method_state(network))
        return MethodState(step=0, opt=opt)

    def _method_state(self, network: Network) -> dict:
        """The method's own entries of a fresh state (keys ``cr_*``)."""
        return {}

    def recompute(self, state: MethodState) -> bool:
        """Whether the next step computes its step length (``False``: it reuses one)."""
        return True

    def step(
        self,
        network: Network,
        state: MethodState,
        x,
        labels,
        *,
        check: bool = True,
    ) -> tuple[Network, MethodState, StepInfo]:
        """One training step on the mini-batch ``(x, labels)``.

        Parameters
        ----------
        network : Network
            Current weights (not modified).
        state : MethodState
            Current state (not modified).
        x : array, shape (batch, *in_shape)
        labels : array, shape (batch,) int or (batch, classes)
        check : bool, default True
            Validate shapes and finiteness of the inputs first (training loops pass
            False after their first step; labels are always matched to the batch).

        Returns
        -------
        network : Network
            The updated weights (new arrays).
        state : MethodState
        info : StepInfo

        Raises
        ------
        Diverged
            The loss or the gradient at ``network`` is not finite (nothing is updated).
        """
        if namespace(network.params[0]) is not np:  # JAX arrays: the compiled step
            from numeric import jax_backend

            return jax_backend.step(self, network, state, x, labels)
        if check:
            xs = network.inputs(x)
            if not np.all(np.isfinite(xs)):
                raise ValueError("x contains NaN or infinite entries")
            if not all(np.all(np.isfinite(p)) for p in network.params):
                raise Diverged(f"the weights are not finite before step {state.step}")
        else:
            xs = x if x.dtype == network.dtype else x.astype(network.dtype)
            shape = network.in_shape
            if xs.ndim != 1 + len(shape):  # image rows for a conv or recurrent input
                xs = xs.reshape(xs.shape[0], *shape)
        ys = network.targets(labels, xs.shape[0])
        recompute = self.recompute(state)
        ev = evaluate(network.layers, network.params, xs, ys, self._needs_second and recompute)
        loss = float(ev.loss)
        if not math.isfinite(loss):
            raise Diverged(f"the mini-batch loss is {loss} before step {state.step}")
        unit, opt_state = self.optimizer.unit(ev.grads, state.opt)
        lr = float(self.schedule(state.step))
        mstate = {k: v for k, v in state.opt.items() if k.startswith("cr_")}
        metric = self.metric(state.opt, opt_state)
        update, info, mstate = self._update_state(network, ev, unit, lr, mstate, recompute, metric)
        if not math.isfinite(info.dnorm):
            raise Diverged(f"the gradient is not finite at step {state.step}")
        # the update arrays are fresh: add the weights into them (no new allocation)
        params = [_add_into(s, p) for p, s in zip(network.params, update, strict=True)]
        info = info._replace(loss=loss)
        opt_state["step"] = int(opt_state["step"])
        opt_state.update(mstate)
        return network.with_params(params), MethodState(state.step + 1, opt_state), info

    _needs_second = False

    def _update(self, network: Network, ev: Evaluation, unit: list, lr: float):
        raise NotImplementedError

    def _update_state(self, network, ev, unit, lr, mstate: dict, recompute: bool, metric=None):
        """``(update, info, mstate)`` on NumPy (Python scalars in ``info``)."""
        update, info = self._update(network, ev, unit, lr)
        return update, info, mstate

    def metric(self, before, after) -> list | None:
        """The metric the step length reads (scale-invariant CR: the base optimizer's
        :meth:`~numeric.optimizers.Optimizer.metric`), else ``None``."""
        return None

    def update_arrays(
        self,
        layers: Sequence,
        params: Sequence,
        ev: Evaluation,
        unit: list,
        lr,
        mstate: dict | None = None,
        recompute: bool = True,
        metric: list | None = None,
    ):
        """The step as arrays, for any backend and under ``jax.jit``.

        Returns ``(update, info, mstate)`` with ``info`` the fields of :class:`StepInfo`
        after ``loss`` as 0-d arrays (``flag`` an index into :data:`FLAGS`) and
        ``mstate`` the method's own state entries after the step (``cr_*``; empty for
        the paper's CR).  Equal to :meth:`_update` up to rounding; the NumPy training
        path of the paper's CR uses the latter (Python scalars, no device round trips).
        """
        raise NotImplementedError

    def _curvature_arrays(self, layers, params, ev: Evaluation, unit: list):
        if isinstance(self.optimizer, SGD):
            gtg, ghg = cv.sgd_curvature(layers, params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2)
            sq = namespace(gtg).maximum(-gtg, 0.0)  # ||d||^2 = -d^T grad F for d = -grad F
        else:
            gtg, ghg = cv.directional(layers, params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2, unit)
            sq = cv.sq_norm(unit)
        return gtg, ghg, sq

    def _curvature(self, network: Network, ev: Evaluation, unit: list):
        """``(d^T grad F, d^T H d, ||d||^2)`` for the unit direction."""
        layers, params = network.layers, network.params
        if isinstance(self.optimizer, SGD):
            gtg, ghg = cv.sgd_curvature(layers, params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2)
            gtg, ghg = float(gtg), float(ghg)
            # d = -grad F: ||d||^2 = -d^T grad F (Eqs 38, 40), no pass over the weights
            sq = max(-gtg, 0.0) if math.isfinite(gtg) else math.nan
        else:
            gtg, ghg = cv.directional(layers, params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2, unit)
            sq = cv.sq_norm(unit)
        return float(gtg), float(ghg), sq


class Baseline(Method):
    """The base optimizer alone: the update is ``lr(step) * d``.

    Parameters
    ----------
    optimizer : Optimizer
    lr : float or callable, optional
        See :class:`Method`.
    curvature : bool, default False
        Also compute ``d^T H d`` each step (what CR would see; about doubles the cost).
    """

    def __init__(
        self, optimizer: Optimizer, lr: float | Schedule | None = None, *, curvature: bool = False
    ) -> None:
        super().__init__(optimizer, lr)
        self.curvature = bool(curvature)
        self._needs_second = self.curvature

    def _update(self, network, ev, unit, lr):
        if self.curvature:
            gtg, ghg, sq = self._curvature(network, ev, unit)
        elif isinstance(self.optimizer, SGD):  # d = -grad F: d^T grad F = -||d||^2, one pass
            sq = cv.sq_norm(unit)
            gtg, ghg = -sq, math.nan
        else:
            gtg, ghg, sq = cv.dot(unit, ev.grads), math.nan, cv.sq_norm(unit)
        update = _scaled(unit, lr)
        return update, StepInfo(math.nan, lr, lr, lr, gtg, ghg, math.sqrt(sq), "")

    def update_arrays(self, layers, params, ev, unit, lr, mstate=None, recompute=True, metric=None):
        xp = namespace(*ev.grads)
        if self.curvature:
            gtg, ghg, sq = self._curvature_arrays(layers, params, ev, unit)
        elif isinstance(self.optimizer, SGD):  # d = -grad F: d^T grad F = -||d||^2
            sq = cv.sq_norm(unit)
            gtg, ghg = -sq, xp.nan
        else:
            gtg, ghg, sq = cv.dot(unit, ev.grads), xp.nan, cv.sq_norm(unit)
        update = [lr * d for d in unit]
        info = (lr, lr, lr, gtg, ghg, xp.sqrt(sq), 0)
        return update, info, dict(mstate or {})

    def __repr__(self) -> str:
        return f"Baseline({self.optimizer!r}, lr={self.schedule!r})"


class CR(Method):
    """Cubic regularization on top of a base optimizer (Eq 37, Section 3.1).

    Parameters
    ----------
    optimizer : Optimizer
        The base optimizer proposing the direction.
    sigma : float
        Cubic weight ``sigma > 0`` (the paper: 100 for SGD, 1000 for Adagrad/Adadelta).
    averaging : {"model", "mean-alpha", "alpha-g"}, default "model"
        Mini-batch averaging (module docstring); the per-sample options need SGD.
    nondescent : {"base", "skip"}, default "base"
        Step for a non-descent direction: the base optimizer's ``lr`` or none.
    lr : float or callable, optional
        Scheduled learning rate, used only for flagged steps; default the optimizer's
        ``learning_rate``, or 0 (flagged steps do not move) where it has none (SGD,
        Adagrad).
    variant : {"paper", "adaptive", "scale-invariant", "per-layer", "per-variable"}
        The step-length rule (:mod:`numeric.variants`); ``"paper"`` is Eq 37.  For
        ``"adaptive"``, ``sigma`` is the initial cubic weight.
    every : int, default 1
        Compute the step length every ``every`` steps and reuse it (per layer or per
        weight for those variants) in between: the steps in between cost a base step
        (no tangent sweep, no trial pass).  A rejected adaptive step recomputes at the
        next one.
    arc : ARC, optional
        Thresholds and factor of the adaptive rule (default ``eta1 = 0.1``,
        ``eta2 = 0.9``, ``gamma = 2``).
    """

    _needs_second = True

    def __init__(
        self,
        optimizer: Optimizer,
        sigma: float,
        *,
        averaging: str = "model",
        nondescent: str = "base",
        lr: float | Schedule | None = None,
        variant: str = "paper",
        every: int = 1,
        arc: ARC | None = None,
    ) -> None:
        if lr is None and getattr(optimizer, "learning_rate", 0.0) is None:
            lr = 0.0
        super().__init__(optimizer, lr)
        sigma = float(sigma)
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
        if averaging not in AVERAGING:
            raise ValueError(f"averaging must be one of {AVERAGING}, got {averaging!r}")
        if averaging != "model" and not isinstance(optimizer, SGD):
            raise ValueError(
                f"averaging={averaging!r} needs per-sample directions, defined only for SGD; "
                f"use averaging='model' with {optimizer.name}"
            )
        if nondescent not in NONDESCENT:
            raise ValueError(f"nondescent must be one of {NONDESCENT}, got {nondescent!r}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if isinstance(every, bool) or int(every) != every or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if averaging != "model" and (variant != "paper" or every != 1):
            raise ValueError(
                f"averaging={averaging!r} is defined for the paper's CR only (variant='paper', "
                "every=1)"
            )
        self.sigma = sigma
        self.averaging = averaging
        self.nondescent = nondescent
        self.variant = variant
        self.every = int(every)
        self.arc = (arc if arc is not None else ARC()).for_sigma(sigma)

    @property
    def _fast(self) -> bool:
        """The paper's CR computed every step: the Python-scalar NumPy path."""
        return self.variant == "paper" and self.every == 1

    def _method_state(self, network: Network) -> dict:
        if self.variant == "per-variable":
            cv.check_hessian_diagonal(network.layers)
        out: dict = {}
        if self.variant == "adaptive":
            out["cr_sigma"] = self.sigma
        if self.every > 1:
            shape = (lambda p: p.shape) if self.variant == "per-variable" else (lambda p: ())
            out["cr_alpha"] = [np.zeros(shape(p), dtype=p.dtype) for p in network.params]
            out["cr_age"] = 0
        return out

    def recompute(self, state: MethodState) -> bool:
        return self.every == 1 or int(state.opt.get("cr_age", 0)) == 0

    def metric(self, before, after):
        if self.variant != "scale-invariant":
            return None
        return self.optimizer.metric(before, after)

    def _update_state(self, network, ev, unit, lr, mstate, recompute, metric=None):
        if self._fast:
            return super()._update_state(network, ev, unit, lr, mstate, recompute)
        update, info, mstate = self.update_arrays(
            network.layers, network.params, ev, unit, lr, mstate, recompute, metric
        )
        alpha, lr_, lr_eff, gtg, ghg, dnorm, flag = (float(v) for v in info)
        step_info = StepInfo(math.nan, alpha, lr_, lr_eff, gtg, ghg, dnorm, FLAGS[int(flag)])
        for key in ("cr_sigma",):
            if key in mstate:
                mstate[key] = float(mstate[key])
        for key in ("cr_age",):
            if key in mstate:
                mstate[key] = int(mstate[key])
        return update, step_info, mstate

    # --------------------------------------------------------------- the variants
    def _variant_arrays(self, layers, params, ev, unit, lr, mstate, recompute, metric):
        xp = namespace(*ev.grads)
        mstate = dict(mstate)
        if not recompute:
            update = [
                xp.asarray(a, dtype=d.dtype) * d
                for a, d in zip(mstate["cr_alpha"], unit, strict=True)
            ]
            lr_eff = vr.least_squares_scale(update, unit)
            gtg, sq = cv.dot(unit, ev.grads), cv.sq_norm(unit)
            mstate["cr_age"] = (mstate["cr_age"] + 1) % self.every
            return update, (lr_eff, lr, lr_eff, gtg, xp.nan, xp.sqrt(sq), 0), mstate
        rule = {
            "paper": self._eq37,
            "adaptive": self._adaptive,
            "scale-invariant": self._eq37,
            "per-layer": self._per_layer,
            "per-variable": self._per_variable,
        }[self.variant]
        alphas, info, rejected = rule(layers, params, ev, unit, lr, mstate, metric)
        alphas = [xp.asarray(a, dtype=d.dtype) for a, d in zip(alphas, unit, strict=True)]
        update = [a * d for a, d in zip(alphas, unit, strict=True)]
        if self.every > 1:
            mstate["cr_alpha"] = [
                xp.broadcast_to(a, c.shape) if c.ndim else a
                for a, c in zip(alphas, mstate["cr_alpha"], strict=True)
            ]
            mstate["cr_age"] = xp.where(rejected, 0, 1 % self.every)
        return update, info, mstate

    def _adaptive(self, layers, params, ev, unit, lr, mstate, metric=None):
        xp = namespace(*ev.grads)
        sigma = mstate["cr_sigma"]
        gtg, ghg, sq = self._curvature_arrays(layers, params, ev, unit)
        norm3 = sq**1.5
        alpha, flag = step_lengths(gtg, ghg, sigma, norm3, lr, self.nondescent)
        trial = [
            p + xp.asarray(alpha, dtype=p.dtype) * d for p, d in zip(params, unit, strict=True)
        ]
        p_trial = forward(layers, trial, ev.tape.inputs[0], second=False).p
        actual = -xp.mean(loss_change(ev.tape.p, p_trial, ev.ys))
        applied, new_sigma, flag, _ = vr.adaptive_outcome(
            alpha, flag, gtg, sigma * norm3, actual, sigma, self.arc
        )
        mstate["cr_sigma"] = new_sigma
        info = (alpha, lr, applied, gtg, ghg, xp.sqrt(sq), flag)
        return [applied] * len(unit), info, flag == FLAGS.index("rejected")

    def _eq37(self, layers, params, ev, unit, lr, mstate, metric=None):
        """One length by Eq 37; the cubic term in ``metric`` where given (scale-invariant
        CR, V1-V2), else in the Euclidean norm (the paper's CR reused every K steps)."""
        xp = namespace(*ev.grads)
        gtg, ghg, sq = self._curvature_arrays(layers, params, ev, unit)
        norm_m = sq if metric is None else vr.metric_sq_norm(unit, metric)
        alpha, flag = step_lengths(gtg, ghg, self.sigma, norm_m**1.5, lr, self.nondescent)
        info = (alpha, lr, alpha, gtg, ghg, xp.sqrt(sq), flag)
        return [alpha] * len(unit), info, False

    def _per_layer(self, layers, params, ev, unit, lr, mstate, metric=None):
        xp = namespace(*ev.grads)
        direction = None if isinstance(self.optimizer, SGD) else unit
        gtg, ghg, sq = cv.block_curvature(
            layers, params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2, direction
        )
        a_k, f_k = step_lengths(gtg, ghg, self.sigma, sq**1.5, lr, self.nondescent)
        alphas = [a_k[b] for b in cv.blocks(layers)]
        lr_eff = vr.least_squares_scale([a * d for a, d in zip(alphas, unit, strict=True)], unit)
        info = (lr_eff, lr, lr_eff, xp.sum(gtg), xp.sum(ghg), xp.sqrt(xp.sum(sq)),
                vr.combine_flags([f_k]))  # fmt: skip
        return alphas, info, False

    def _per_variable(self, layers, params, ev, unit, lr, mstate, metric=None):
        xp = namespace(*ev.grads)
        rfac = hessian_factor(ev.tape.p, ev.d2fdp2)
        diag = cv.hessian_diagonal(layers, params, ev.tape, rfac)
        alphas, flags, dhd = vr.per_variable_lengths(
            unit, ev.grads, diag, self.sigma, lr, self.nondescent
        )
        lr_eff = vr.least_squares_scale([a * d for a, d in zip(alphas, unit, strict=True)], unit)
        info = (lr_eff, lr, lr_eff, cv.dot(unit, ev.grads), dhd, xp.sqrt(cv.sq_norm(unit)),
                vr.combine_flags(flags))  # fmt: skip
        return alphas, info, False

    def _update(self, network, ev, unit, lr):
        if self.averaging == "model":
            gtg, ghg, sq = self._curvature(network, ev, unit)
            alpha, flag = step_length(gtg, ghg, self.sigma, sq**1.5, lr, self.nondescent)
            update = _scaled(unit, alpha)
            return update, StepInfo(math.nan, alpha, lr, alpha, gtg, ghg, math.sqrt(sq), flag)
        layers, params = network.layers, network.params
        gtg_b, ghg_b, sq_b = cv.per_sample_sgd_curvature(
            layers, params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2
        )
        alpha_b, flags = step_lengths(gtg_b, ghg_b, self.sigma, sq_b**1.5, lr, self.nondescent)
        alpha = float(alpha_b.mean())
        update, lr_eff = self._averaged(ev, unit, alpha_b)
        lr_eff = float(lr_eff)
        worst = int(flags.max()) if flags.size else 0
        info = StepInfo(
            math.nan,
            alpha,
            lr,
            lr_eff,
            float(gtg_b.mean()),
            float(ghg_b.mean()),
            float(np.sqrt(sq_b).mean()),
            FLAGS[worst],
        )
        return update, info

    def _averaged(self, ev: Evaluation, unit: list, alpha_b):
        """``(update, lr_eff)`` of the per-sample averagings (Section 3.1) from the
        per-sample lengths ``alpha_b`` (shape ``(B,)``), in the arrays' namespace.

        ``"mean-alpha"``: ``E[alpha] d``.  ``"alpha-g"``: ``E[alpha_b g_b]`` as
        ``-(1/B) sum_b alpha_b grad f_b``, rank one per sample and layer;
        ``lr_eff`` is its least-squares scale along ``d``.
        """
        xp = namespace(alpha_b)
        if self.averaging == "mean-alpha":
            alpha = xp.mean(alpha_b)
            if xp is np:  # a Python float keeps the directions' dtype
                alpha = float(alpha)
            return [alpha * d for d in unit], alpha
        wa = alpha_b / ev.dfdp.shape[0]
        vs, deltas = ev.tape.inputs, ev.adj.deltas
        n = len(deltas)
        update = [-((deltas[k] * wa[:, None]).T @ vs[k]) for k in range(n)]
        update.append(-((ev.dfdp * wa[:, None]).T @ vs[n]))
        sq_unit = cv.dot(unit, unit)
        safe = xp.where(sq_unit > 0, sq_unit, 1.0)
        return update, xp.where(sq_unit > 0, cv.dot(update, unit) / safe, 0.0)

    def update_arrays(self, layers, params, ev, unit, lr, mstate=None, recompute=True, metric=None):
        xp = namespace(*ev.grads)
        mstate = dict(mstate or {})
        if not self._fast:
            return self._variant_arrays(layers, params, ev, unit, lr, mstate, recompute, metric)
        if self.averaging == "model":
            gtg, ghg, sq = self._curvature_arrays(layers, params, ev, unit)
            alpha, flag = step_lengths(gtg, ghg, self.sigma, sq**1.5, lr, self.nondescent)
            update = [alpha * d for d in unit]
            return update, (alpha, lr, alpha, gtg, ghg, xp.sqrt(sq), flag), mstate
        gtg_b, ghg_b, sq_b = cv.per_sample_sgd_curvature(
            layers, params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2
        )
        alpha_b, flags = step_lengths(gtg_b, ghg_b, self.sigma, sq_b**1.5, lr, self.nondescent)
        alpha = xp.mean(alpha_b)
        update, lr_eff = self._averaged(ev, unit, alpha_b)
        info = (
            alpha,
            lr,
            lr_eff,
            xp.mean(gtg_b),
            xp.mean(ghg_b),
            xp.mean(xp.sqrt(sq_b)),
            xp.max(flags),
        )
        return update, info, mstate

    def __repr__(self) -> str:
        extra = ""
        if self.variant != "paper":
            extra += f", variant={self.variant!r}"
        if self.every != 1:
            extra += f", every={self.every}"
        return (
            f"CR({self.optimizer!r}, sigma={self.sigma!r}, averaging={self.averaging!r}, "
            f"nondescent={self.nondescent!r}, lr={self.schedule!r}{extra})"
        )
