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
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from numeric import curvature as cv
from numeric.kernels._runtime import namespace
from numeric.kernels.cubic_regularization import cr_step_length
from numeric.losses import softmax_cross_entropy
from numeric.network import Network, backward, forward
from numeric.optimizers import SGD, Optimizer, State
from numeric.schedules import Constant

__all__ = [
    "AVERAGING",
    "CR",
    "FLAGS",
    "NONDESCENT",
    "Baseline",
    "Diverged",
    "Method",
    "MethodState",
    "StepInfo",
    "cubic_model",
    "step_length",
    "step_lengths",
]

#: Averaging options of Section 3.1 (see the module docstring).
AVERAGING = ("model", "mean-alpha", "alpha-g")
#: Policies for a direction that is not a descent direction.
NONDESCENT = ("base", "skip")
#: Step flags; ``""`` is a regular step.
FLAGS = ("", "nondescent", "zero", "nonfinite")

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


def step_lengths(gtg, ghg, sigma: float, norm3, fallback, nondescent: str = "base"):
    """Vectorised :func:`step_length` in the arrays' namespace (NumPy or JAX, ``jit``-able).

    Returns
    -------
    alpha : array, shape of ``gtg``
        Finite and ``>= 0``.
    flags : array of int, shape of ``gtg``
        Index into :data:`FLAGS`.
    """
    xp = namespace(gtg, ghg, norm3)
    if xp is np:
        gtg = np.asarray(gtg, dtype=np.float64)
        ghg = np.asarray(ghg, dtype=np.float64)
        norm3 = np.asarray(norm3, dtype=np.float64)
    finite = xp.isfinite(gtg) & xp.isfinite(ghg) & xp.isfinite(norm3)
    zero = finite & ((norm3 <= 0.0) | (sigma * norm3 == 0.0))
    nondesc = finite & ~zero & (gtg >= 0.0)
    regular = finite & ~zero & ~nondesc
    a = cr_step_length(ghg, gtg, sigma, norm3)
    bad = regular & ~(xp.isfinite(a) & (a > 0.0))
    ok = regular & ~bad
    alpha = xp.where(ok, a, 0.0)
    alpha = xp.where(~finite | bad, fallback, alpha)
    alpha = xp.where(nondesc, fallback if nondescent == "base" else 0.0, alpha)
    flags = xp.where(nondesc, FLAGS.index("nondescent"), 0)
    flags = xp.where(zero, FLAGS.index("zero"), flags)
    flags = xp.where(~finite | bad, FLAGS.index("nonfinite"), flags)
    return alpha, flags


# ------------------------------------------------------------------------- methods


class Diverged(FloatingPointError):
    """The weights left the floating-point range: the loss or gradient is not finite.

    Raised by :meth:`Method.step` before any state changes; the training loop records
    the run as ``"diverged"``.
    """


class StepInfo(NamedTuple):
    """What one step did (one row of a run's ``metrics.csv``).

    Attributes
    ----------
    loss : float
        Mini-batch objective ``F`` at the weights *before* the step.
    alpha : float
        Step length along the unit direction (``mean_b alpha_b`` for the per-sample
        options; the scheduled ``lr`` for a base method).
    lr : float
        Scheduled learning rate of this step.
    lr_eff : float
        Effective learning rate (module docstring).
    dgrad : float
        ``d^T grad F`` for the unit direction ``d`` (per-sample options: the mean of
        ``d_b^T grad f_b``).
    dhd : float
        ``d^T H d`` (per-sample options: the mean of ``d_b^T H_b d_b``); NaN where not
        computed (a base method without ``curvature=True``).
    dnorm : float
        ``||d||`` (per-sample options: the mean of ``||d_b||``).
    flag : str
        One of :data:`FLAGS`.
    """

    loss: float
    alpha: float
    lr: float
    lr_eff: float
    dgrad: float
    dhd: float
    dnorm: float
    flag: str


@dataclass
class MethodState:
    """State of a method between steps.

    Attributes
    ----------
    step : int
        Number of steps taken (the global step of the schedule).
    opt : State
        The base optimizer's state.
    """

    step: int
    opt: State


class Evaluation(NamedTuple):
    """The network's sweeps on one batch: what every step length rule reads."""

    loss: Any
    tape: Any
    adj: Any
    dfdp: Any
    d2fdp2: Any

    @property
    def grads(self) -> list:
        return self.adj.grads


def evaluate(layers: Sequence, params: Sequence, xs, ys, second: bool) -> Evaluation:
    """Forward and adjoint sweeps, loss and its p-derivatives on one batch (any backend)."""
    tape = forward(layers, params, xs, second)
    f, dfdp, d2fdp2 = softmax_cross_entropy(tape.p, ys, second=second)
    adj = backward(layers, params, tape, dfdp)
    return Evaluation(f.mean(), tape, adj, dfdp, d2fdp2)


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
        """Fresh state for ``network``."""
        return MethodState(step=0, opt=self.optimizer.init(network.params))

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
        ev = evaluate(network.layers, network.params, xs, ys, self._needs_second)
        loss = float(ev.loss)
        if not math.isfinite(loss):
            raise Diverged(f"the mini-batch loss is {loss} before step {state.step}")
        unit, opt_state = self.optimizer.unit(ev.grads, state.opt)
        lr = float(self.schedule(state.step))
        update, info = self._update(network, ev, unit, lr)
        if not math.isfinite(info.dnorm):
            raise Diverged(f"the gradient is not finite at step {state.step}")
        params = [p + s for p, s in zip(network.params, update, strict=True)]
        info = info._replace(loss=loss)
        opt_state["step"] = int(opt_state["step"])
        return network.with_params(params), MethodState(state.step + 1, opt_state), info

    _needs_second = False

    def _update(self, network: Network, ev: Evaluation, unit: list, lr: float):
        raise NotImplementedError

    def _curvature(self, network: Network, ev: Evaluation, unit: list):
        """``(d^T grad F, d^T H d, ||d||^2)`` for the unit direction."""
        layers, params = network.layers, network.params
        if isinstance(self.optimizer, SGD):
            gtg, ghg = cv.sgd_curvature(layers, params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2)
            sq = cv.sq_norm(ev.grads)
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
        else:
            gtg, ghg, sq = cv.dot(unit, ev.grads), math.nan, cv.sq_norm(unit)
        update = [lr * d for d in unit]
        return update, StepInfo(math.nan, lr, lr, lr, gtg, ghg, math.sqrt(sq), "")

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
        self.sigma = sigma
        self.averaging = averaging
        self.nondescent = nondescent

    def _update(self, network, ev, unit, lr):
        if self.averaging == "model":
            gtg, ghg, sq = self._curvature(network, ev, unit)
            alpha, flag = step_length(gtg, ghg, self.sigma, sq**1.5, lr, self.nondescent)
            update = [alpha * d for d in unit]
            return update, StepInfo(math.nan, alpha, lr, alpha, gtg, ghg, math.sqrt(sq), flag)
        layers, params = network.layers, network.params
        gtg_b, ghg_b, sq_b = cv.per_sample_sgd_curvature(
            layers, params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2
        )
        alpha_b, flags = step_lengths(gtg_b, ghg_b, self.sigma, sq_b**1.5, lr, self.nondescent)
        alpha = float(alpha_b.mean())
        if self.averaging == "mean-alpha":
            update = [alpha * d for d in unit]
            lr_eff = alpha
        else:  # E[alpha g]: -(1/B) sum_b alpha_b grad f_b, rank one per sample and layer
            batch = ev.dfdp.shape[0]
            wa = alpha_b / batch
            vs, deltas = ev.tape.inputs, ev.adj.deltas
            n = len(deltas)
            update = [-((deltas[k] * wa[:, None]).T @ vs[k]) for k in range(n)]
            update.append(-((ev.dfdp * wa[:, None]).T @ vs[n]))
            sq_unit = cv.dot(unit, unit)
            lr_eff = cv.dot(update, unit) / sq_unit if sq_unit > 0 else 0.0
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

    def __repr__(self) -> str:
        return (
            f"CR({self.optimizer!r}, sigma={self.sigma!r}, averaging={self.averaging!r}, "
            f"nondescent={self.nondescent!r}, lr={self.schedule!r})"
        )
