"""What a training step reads and returns, shared by every backend and method.

:func:`evaluate` runs the forward and adjoint sweeps and the loss on one batch;
:class:`StepInfo` is one row of a run's metrics; :class:`MethodState` the state between
steps; :class:`Diverged` the error of a step whose loss or direction is not finite;
:data:`FLAGS` names the steps the cubic model cannot set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from numeric.losses import softmax_cross_entropy
from numeric.network import backward, forward
from numeric.optimizers import State

__all__ = [
    "FLAGS",
    "Diverged",
    "Evaluation",
    "MethodState",
    "StepInfo",
    "eval_network",
    "evaluate",
]

#: Step flags; ``""`` is a regular step.  ``"rejected"``: adaptive CR's trial step did
#: not decrease the loss enough (the weights stay; ``numeric.cr``).
FLAGS = ("", "nondescent", "zero", "nonfinite", "rejected")


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

    For per-layer and per-variable CR, ``alpha`` is the least-squares scalar of the
    applied update along ``d`` (as ``lr_eff``) and ``dhd`` the block-diagonal (per-layer)
    or diagonal (per-variable) part of ``d^T H d`` that the step lengths read.
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
        The base optimizer's state, and the method's own entries (keys starting with
        ``cr_``: adaptive CR's ``cr_sigma``, the reused step lengths ``cr_alpha`` and
        ``cr_age`` of ``every > 1``), so
        that checkpoints carry them.
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
    ys: Any = None

    @property
    def grads(self) -> list:
        return self.adj.grads


def evaluate(layers: Sequence, params: Sequence, xs, ys, second: bool) -> Evaluation:
    """Forward and adjoint sweeps, loss and its p-derivatives on one batch (any backend)."""
    tape = forward(layers, params, xs, second)
    f, dfdp, d2fdp2 = softmax_cross_entropy(tape.p, ys, second=second)
    adj = backward(layers, params, tape, dfdp)
    return Evaluation(f.mean(), tape, adj, dfdp, d2fdp2, ys)


def eval_network(method, network, state: MethodState):
    """The network to evaluate (test loss and accuracy) after ``method``'s steps.

    The trained network itself, except for a method whose evaluation point is not its
    iterate (optax's schedule-free methods: their averaged weights); such a method
    defines ``eval_network(network, state)``.
    """
    hook = getattr(method, "eval_network", None)
    return network if hook is None else hook(network, state)
