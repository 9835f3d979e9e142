"""What a CR rule reads about ``F``: one interface, two implementations.

A rule (:mod:`numeric.rules`) sees the objective only through :class:`Curvature`:

``grad()``
    ``grad F``, one array per parameter array.
``along(d)``
    ``(d^T grad F, d^T H d, ||d||^2)`` for a direction (Eqs 38-40).
``outputs(d)``
    ``along(d)``, the output tangent ``pdot = J d`` of the same tangent sweep (C4-C5)
    and the outputs ``p`` (logits), per sample.
``blocks(d)``
    The same per block of the Hessian's block diagonal, and the block of each array.
``diagonal()``
    The diagonal of the Hessian, one array per parameter array.
``decrease(step)``
    ``F(theta) - F(theta + step)`` on the batch (adaptive CR's trial).
``per_sample()``, ``per_sample_update(w)``
    Per-sample quantities along each sample's own gradient, and
    ``-(1/B) sum_b w_b grad f_b`` (the averagings of Section 3.1).

:class:`KernelCurvature` answers from the generated kernels for any
:class:`~numeric.network.Network` on NumPy or JAX arrays (:mod:`numeric.curvature`);
``sgd=True`` says the direction is ``-grad F``, so :meth:`along` reuses the adjoint
sweep: per layer the low-rank route (L1-L4) or the formed gradient, whichever the
multiply-add model of :mod:`numeric.cost_model` finds cheaper for the batch.  :class:`numeric.autodiff.AutodiffCurvature`
answers by ``jax.jvp(jax.grad(F))`` for any pytree model.  Parameters are flat lists of
arrays in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from numeric import curvature as cv
from numeric.kernels._runtime import namespace
from numeric.losses import hessian_factor, loss_change
from numeric.network import forward
from numeric.stepping import Evaluation

__all__ = ["Curvature", "KernelCurvature"]


class Curvature:
    """The interface (module docstring); subclasses answer what they can."""

    #: whether the direction a rule passes is ``-grad F`` (the base is plain SGD)
    sgd: bool = False

    def grad(self) -> list:
        raise NotImplementedError

    def along(self, d: Sequence) -> tuple[Any, Any, Any]:
        raise NotImplementedError

    def outputs(self, d: Sequence) -> tuple[Any, Any, Any, Any, Any]:
        """``(d^T grad F, d^T H d, ||d||^2, pdot, p)``: :meth:`along`, the output tangent
        ``pdot = J d`` and the outputs ``p``, both shaped (batch, classes)."""
        raise ValueError("the output tangent J d needs the model's outputs")

    def blocks(self, d: Sequence) -> tuple[tuple[Any, Any, Any], list[int]]:
        raise NotImplementedError

    def diagonal(self) -> list:
        raise NotImplementedError

    def decrease(self, step: Sequence) -> Any:
        raise NotImplementedError

    def per_sample(self) -> tuple[Any, Any, Any]:
        raise ValueError("per-sample curvature needs the generated kernels of a network")

    def per_sample_update(self, weights) -> list:
        raise ValueError("per-sample curvature needs the generated kernels of a network")


class KernelCurvature(Curvature):
    """The generated kernels on one batch of a network.

    Parameters
    ----------
    layers : sequence of Layer
    params : list of arrays
    ev : Evaluation
        The network's sweeps on the batch (:func:`numeric.stepping.evaluate`; with
        ``second=True`` for ``d^T H d`` when an activation has ``A'' != 0``).
    sgd : bool
        The rules' direction is ``-grad F`` (:meth:`along` and :meth:`blocks` then
        reuse the adjoint sweep, :func:`numeric.curvature.sgd_curvature`).
    routes : str or sequence of str, default "auto"
        The route of each layer for ``-grad F``: the cheaper by the multiply-add model
        of :mod:`numeric.cost_model` (``"auto"``), or ``"gram"``, ``"dense"``, or one per
        layer; equal results up to rounding.
    """

    def __init__(self, layers: Sequence, params: Sequence, ev: Evaluation, sgd: bool,
                 routes: str | Sequence[str] = "auto") -> None:  # fmt: skip
        self.layers = tuple(layers)
        self.params = list(params)
        self.ev = ev
        self.sgd = bool(sgd)
        self.routes = routes

    def _sweeps(self):
        ev = self.ev
        return self.layers, self.params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2

    def grad(self) -> list:
        return list(self.ev.grads)

    def along(self, d):
        if self.sgd:  # d = -grad F: ||d||^2 = -d^T grad F (Eqs 38, 40), no pass over d
            gtg, ghg = cv.sgd_curvature(*self._sweeps(), routes=self.routes)
            return gtg, ghg, namespace(gtg).maximum(-gtg, 0.0)
        gtg, ghg = cv.directional(*self._sweeps(), list(d))
        return gtg, ghg, cv.sq_norm(d)

    def outputs(self, d):
        """:meth:`along`, ``pdot`` from the same tangent sweep, and the logits."""
        if self.sgd:
            gtg, ghg, pdot = cv.sgd_curvature(*self._sweeps(), routes=self.routes,
                                              with_pdot=True)  # fmt: skip
            sq = namespace(gtg).maximum(-gtg, 0.0)
        else:
            gtg, ghg, pdot = cv.directional(*self._sweeps(), list(d), with_pdot=True)
            sq = cv.sq_norm(d)
        return gtg, ghg, sq, pdot, self.ev.tape.p

    def blocks(self, d):
        out = cv.block_curvature(*self._sweeps(), None if self.sgd else list(d),
                                 routes=self.routes)  # fmt: skip
        return out, cv.blocks(self.layers)

    def diagonal(self) -> list:
        tape = self.ev.tape
        rfac = hessian_factor(tape.p, self.ev.d2fdp2)
        return cv.hessian_diagonal(self.layers, self.params, tape, rfac)

    def decrease(self, step):
        """V4 from the logits: one forward pass at the trial point."""
        ev = self.ev
        xp = namespace(*self.params)
        trial = [p + s for p, s in zip(self.params, step, strict=True)]
        p_trial = forward(self.layers, trial, ev.tape.inputs[0], second=False).p
        return -xp.mean(loss_change(ev.tape.p, p_trial, ev.ys))

    def per_sample(self):
        return cv.per_sample_sgd_curvature(*self._sweeps())

    def per_sample_update(self, weights) -> list:
        """``-(1/B) sum_b w_b grad f_b``, rank one per sample and layer (Eqs 27-28)."""
        ev = self.ev
        wa = weights / ev.dfdp.shape[0]
        vs, deltas = ev.tape.inputs, ev.adj.deltas
        n = len(deltas)
        update = [-((deltas[k] * wa[:, None]).T @ vs[k]) for k in range(n)]
        update.append(-((ev.dfdp * wa[:, None]).T @ vs[n]))
        return update
