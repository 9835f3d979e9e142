"""One training iteration, the unit of work of ``lowrank train`` (and of its benchmark).

:class:`Iteration` gathers the next mini-batch from the dataset, takes one step of the
method and keeps the running means (period :data:`PERIOD`) that a metrics row reports.
The training loop wraps it with what happens between iterations (signals, metric
flushes, checkpoints); ``lowrank bench`` times it as ``train-sgd`` and ``train-cr``.
Nothing here validates per step: the first step of a run checks its inputs, later steps
only check that the loss and the direction stay finite (``Diverged``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from numeric.cr import Method, MethodState, StepInfo
from numeric.network import Network

__all__ = ["PERIOD", "Iteration", "iteration_runner"]

#: period of the moving averages of the loss and the effective learning rate
PERIOD = 100


class Iteration:
    """The state of a run between iterations, and the iteration itself.

    Parameters
    ----------
    method : Method
    net : Network
    state : MethodState
    xs : array, shape (N, ...)
        The training inputs (any dtype; cast batch by batch).
    labels : array of int, shape (N,)
    sampler
        Yields the row indices of the next batch (``next_indices()``).
    tail_loss, tail_lr_eff : sequences of float
        The last values of the loss and the effective learning rate (for the means).
    transfer : callable, optional
        Applied to ``(x, labels)`` of each batch (e.g. placing them on a device).
    """

    def __init__(
        self,
        method: Method,
        net: Network,
        state: MethodState,
        xs,
        labels,
        sampler,
        tail_loss: Sequence[float] = (),
        tail_lr_eff: Sequence[float] = (),
        transfer: Callable | None = None,
    ) -> None:
        self.method = method
        self.net = net
        self.state = state
        self.xs = xs
        self.labels = np.asarray(labels)
        self.sampler = sampler
        self.dtype = net.dtype
        self.eye = np.eye(net.classes, dtype=self.dtype)
        self.tail_loss: deque[float] = deque(tail_loss, maxlen=PERIOD)
        self.tail_lr: deque[float] = deque(tail_lr_eff, maxlen=PERIOD)
        self.transfer = transfer
        self.first = True

    def __call__(self) -> tuple[StepInfo, float, float, float]:
        """One iteration: ``(info, mean loss, mean lr_eff, seconds)``."""
        start = time.perf_counter()
        idx = self.sampler.next_indices()
        xb = self.xs[idx]
        if xb.dtype != self.dtype:
            xb = xb.astype(self.dtype)
        yb = self.eye[self.labels[idx]]
        if self.transfer is not None:
            xb, yb = self.transfer(xb, yb)
        self.net, self.state, info = self.method.step(
            self.net, self.state, xb, yb, check=self.first
        )
        self.first = False
        self.tail_loss.append(info.loss)
        self.tail_lr.append(info.lr_eff)
        mean_loss = math.fsum(self.tail_loss) / len(self.tail_loss)
        mean_lr = math.fsum(self.tail_lr) / len(self.tail_lr)
        return info, mean_loss, mean_lr, time.perf_counter() - start


def iteration_runner(method: Method, net: Network, xs, labels, sampler) -> Callable[[], None]:
    """A zero-argument callable running one iteration of a fresh run (for the bench)."""
    it = Iteration(method, net, method.init(net), xs, labels, sampler)

    def run() -> None:
        it()

    return run
