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
branches on layer or activation type.  For ``d = -grad F`` each layer takes the cheaper
of the low-rank route (L1-L4) and the formed gradient (C4-C7) for the batch's shape, by
the multiply-add model of :mod:`numeric.cost_model` (equal results up to rounding).

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
:mod:`numeric.rules` holds the rules, one object per variant, shared with
:func:`numeric.optax.scale_by_cr`; :class:`CR` is a thin adapter over them:
``"adaptive"`` (ARC: a trial forward pass, accept or reject, sigma shrinks or grows),
``"scale-invariant"`` (the cubic term in the base optimizer's own metric), ``"per-layer"`` (one
length per layer from its Hessian block) and ``"per-variable"`` (one length per weight
from the exact Hessian diagonal).  ``every=K`` computes the length(s) every ``K`` steps
and reuses them in between.  Their state (sigma, the metric, the reused lengths) lives
in the state's ``cr_*`` entries (the rule's NamedTuple state by field name), so
checkpoints carry it.  A rejected adaptive step is
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
>>> from numeric.network import Network
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
from numeric.kernels._runtime import namespace
from numeric.network import Network
from numeric.optimizers import SGD, Optimizer
from numeric.rules import (
    ARC,
    AVERAGING,
    NONDESCENT,
    VARIANTS,
    Every,
    KernelCurvature,
    Rule,
    make_rule,
    step_lengths,
)
from numeric.schedules import Constant
from numeric.stepping import FLAGS, Diverged, Evaluation, MethodState, StepInfo, evaluate

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
    """CR step length (Eq 37) along one direction, with the flags of the module, as Python
    scalars: :func:`numeric.rules.step_lengths` on one entry.

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
    with np.errstate(all="ignore"):
        alpha, flag = step_lengths(float(gtg), float(ghg), float(sigma), float(norm3),
                                   float(fallback), nondescent)  # fmt: skip
    return float(alpha), FLAGS[int(flag)]


# ------------------------------------------------------------------------- methods


def _add_into(update, param):
    """``param + update`` in the parameter's dtype, written into ``update`` when it is a
    fresh NumPy array of that dtype (same values as ``param + update``)."""
    if (
        isinstance(update, np.ndarray)
        and update.flags.owndata
        and update.flags.writeable
        and update.dtype == param.dtype
        and update.shape == param.shape
    ):
        return np.add(update, param, out=update)
    xp = namespace(param)
    return param + xp.asarray(update, dtype=param.dtype)


def _host(value):
    """A method-state entry on the host: 0-d arrays as Python scalars, lists as they are."""
    if isinstance(value, list):
        return value
    return np.asarray(value).item()


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
        update, record, mstate = self.update_arrays(
            network.layers, network.params, ev, unit, lr, mstate, recompute, metric
        )
        info = StepInfo(
            loss=loss,
            alpha=float(record.alpha),
            lr=lr,
            lr_eff=float(record.lr_eff),
            dgrad=float(record.dgrad),
            dhd=float(record.dhd),
            dnorm=float(record.dnorm),
            flag=FLAGS[int(record.flag)],
        )
        if not math.isfinite(info.dnorm):
            raise Diverged(f"the gradient is not finite at step {state.step}")
        params = [_add_into(s, p) for p, s in zip(network.params, update, strict=True)]
        opt_state["step"] = int(opt_state["step"])
        opt_state.update({k: _host(v) for k, v in mstate.items()})
        return network.with_params(params), MethodState(state.step + 1, opt_state), info

    _needs_second = False

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
    ) -> tuple[list, StepInfo, dict]:
        """The step as arrays, for any backend and under ``jax.jit``: the one path of
        every method on NumPy and JAX.

        Returns ``(update, info, mstate)``: the update per parameter array, a
        :class:`StepInfo` of 0-d arrays (``flag`` an index into :data:`FLAGS`, ``lr`` the
        scheduled rate) and the method's own state entries after the step (``cr_*``).
        """
        raise NotImplementedError


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

    def update_arrays(self, layers, params, ev, unit, lr, mstate=None, recompute=True, metric=None):
        xp = namespace(*ev.grads)
        sgd = isinstance(self.optimizer, SGD)
        if self.curvature:
            gtg, ghg, sq = KernelCurvature(layers, params, ev, sgd).along(unit)
        elif sgd:  # d = -grad F: d^T grad F = -||d||^2, one pass
            sq = cv.sq_norm(unit)
            gtg, ghg = -sq, xp.nan
        else:
            gtg, ghg, sq = cv.dot(unit, ev.grads), xp.nan, cv.sq_norm(unit)
        update = [lr * d for d in unit]
        info = StepInfo(loss=ev.loss, alpha=lr, lr=lr, lr_eff=lr, dgrad=gtg, dhd=ghg,
                        dnorm=xp.sqrt(sq), flag=0)  # fmt: skip
        return update, info, dict(mstate or {})

    def __repr__(self) -> str:
        return f"Baseline({self.optimizer!r}, lr={self.schedule!r})"


class CR(Method):
    """Cubic regularization on top of a base optimizer (Eq 37, Section 3.1): a thin adapter
    from the base optimizer's direction to a rule of :mod:`numeric.rules`.

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
        The step-length rule (:data:`numeric.rules.RULES`); ``"paper"`` is Eq 37.  For
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
        self.rule: Rule = make_rule(
            sigma,
            variant=variant,
            every=every,
            averaging=averaging,
            nondescent=nondescent,
            arc=arc,
            sgd=isinstance(optimizer, SGD),
        )
        self.sigma = float(sigma)
        self.averaging = averaging
        self.nondescent = nondescent
        self.variant = variant
        self.every = int(every)

    def _method_state(self, network: Network) -> dict:
        self.rule.check(network.layers)
        state = self.rule.init(network.params)
        return {k: _host(v) for k, v in self.rule.entries(state).items()}

    def recompute(self, state: MethodState) -> bool:
        return self.every == 1 or int(state.opt.get("cr_age", 0)) == 0

    def metric(self, before, after):
        return self.optimizer.metric(before, after) if self.rule.reads_metric else None

    def update_arrays(self, layers, params, ev, unit, lr, mstate=None, recompute=True, metric=None):
        rule = self.rule
        state = rule.from_entries(dict(mstate or {}), params)
        curv = KernelCurvature(layers, params, ev, isinstance(self.optimizer, SGD))
        if isinstance(rule, Every) and not recompute:
            out = rule.reuse(curv, unit, state)
        else:
            out = rule.apply(curv, unit, lr, state, metric)
        info = StepInfo(loss=ev.loss, lr=lr, **out.stats._asdict())
        return out.update, info, rule.entries(out.state)

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
