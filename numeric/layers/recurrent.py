"""Recurrent layer with tied weights (Appendix B.2.2, Eqs 58-65, extended by Eq 58.s).

The paper's layer is ``v_(t) = A(w v_(t-1))`` with the input as the initial state,
``v_(0) = x`` (Eqs 58-59).  To read a sequence (an image row by row) the layer takes an
input at every step (the derived Eq 58.s)::

    z_(t) = w v_(t-1) + U x_(t) + b,   v_(t) = A(z_(t)),   t = 1..T,   v_(0) = 0,

and outputs the last state ``v_(T)``.  ``sequence=False`` is the paper's layer exactly
(no ``U``; input ``x`` (batch, width) as ``v_(0)``).  Parameters: ``[w]`` (width, width),
then ``U`` (width, d_in) for a sequence, then ``b`` (width,) when ``bias``.  Per sample:
``x`` (batch, T, d_in) for a sequence, output (batch, width).

Unrolled, the layer is B.1's network with one weight matrix at every step, so its
derivatives are the dense sweeps at the tied weights with sums over steps (Eq 60):

* forward: ``U x_(t)`` for all steps at once (C34), then Eq 10 per step;
* adjoint (back-propagation through time): ``delta_(t) = A'(z_(t)) vbar_(t)``,
  ``vbar_(t-1) = w^T delta_(t)`` (C10 per step), the gradients as step sums C35-C37 and
  the input adjoint C38 (``w^T delta_(1)`` for the paper's layer);
* tangent: the sources known before the recursion for all steps at once (C39), then
  ``zdot_(t) = source_(t) + psi + w vdot_(t-1)`` (C40, C4 per step);
* the layer's own terms of ``d^T H d`` (C41): ``2 sum_t delta_(t) . (phi vdot_(t-1) +
  phi_U xdot_(t))`` (Eqs 63-65 contracted) and ``sum_t vbar_(t) A''(z_(t)) zdot_(t)^2``
  (their B.3 forms).  They need the internal tangents ``vdot_(t-1)``, which the tangent
  record holds, so all of them (the input cross term included) are returned by
  :meth:`Recurrent.second_order`; :meth:`Recurrent.cross_term` adds nothing.

For the SGD direction the direction is the formed gradient (its rank per layer is up to
``batch * T``, above the width).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from numeric.kernels import activations as act
from numeric.kernels import contracted as ct
from numeric.kernels import feedforward as ff
from numeric.kernels import stacking as st
from numeric.kernels._runtime import namespace
from numeric.layers.activation import get_activation
from numeric.layers.base import Layer

__all__ = ["Recurrent"]


class RecCache(NamedTuple):
    """``sv`` the states entering each step ``v_(t-1)`` (batch, T, width), ``A'``/``A''`` of
    every step (batch, T, width; ``a2`` ``None`` unless needed), and whether ``A'' = 0``."""

    sv: object
    a1: object
    a2: object
    vanishes: bool


class RecAdjoint(NamedTuple):
    """``delta_(t)`` and ``vbar_(t)`` of every step (batch, T, width) and the batch-mean
    gradient."""

    sdelta: object
    svbar: object
    grads: list


class RecTangent(NamedTuple):
    """Tangents along a direction: ``zdot_(t)`` and the states' ``vdot_(t-1)`` (batch, T,
    width), the input tangent (or ``None``) and the direction's ``phi``, ``phi_U``."""

    szdot: object
    svdot: object
    xdot: object
    phi: object
    phiu: object


@dataclass(frozen=True)
class Recurrent(Layer):
    """A recurrent layer of ``width`` units unrolled ``steps`` times.

    Parameters
    ----------
    d_in : int
        Features per step (a sequence), or the width (``sequence=False``).
    width : int
    steps : int
        ``T >= 1``.
    activation : str, default "relu"
    bias : bool, default False
        Add ``b`` at every step (initialised to zero).
    sequence : bool, default True
        An input at every step (Eq 58.s); ``False``: the paper's layer (Eqs 58-59).
    """

    d_in: int
    width: int
    steps: int
    activation: str = "relu"
    bias: bool = False
    sequence: bool = True

    def __post_init__(self) -> None:
        get_activation(self.activation)
        for name in ("d_in", "width", "steps"):
            val = getattr(self, name)
            if isinstance(val, bool) or int(val) != val or val < 1:
                raise ValueError(f"{name} must be a positive integer, got {val!r}")
            object.__setattr__(self, name, int(val))
        if not self.sequence and self.d_in != self.width:
            raise ValueError(
                f"the paper's recurrent layer (sequence=False) takes its input as the initial "
                f"state: d_in must equal width, got {self.d_in} and {self.width}"
            )

    @property
    def in_shape(self) -> tuple[int, ...]:
        return (self.steps, self.d_in) if self.sequence else (self.width,)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.width,)

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        shapes: list[tuple[int, ...]] = [(self.width, self.width)]
        if self.sequence:
            shapes.append((self.width, self.d_in))
        if self.bias:
            shapes.append((self.width,))
        return shapes

    @property
    def second_vanishes(self) -> bool:
        return False  # the step pairs of Eq 63 contribute even for the ReLU

    def _split(self, params):
        """``(w, U or None, b or None)``."""
        u = params[1] if self.sequence else None
        b = params[-1] if self.bias else None
        return params[0], u, b

    # ------------------------------------------------------------------ passes
    def forward(self, params, x, second=True):
        xp = namespace(x, params[0])
        w, u, b = self._split(params)
        fn = act.ACTIVATIONS[self.activation]
        vanishes = self.activation in act.SECOND_VANISHES
        keep2 = second and not vanishes
        if self.sequence:
            inputs = st.c34_rec_input_preactivation(sx=x, ur=u)  # (batch, T, width)
            if b is not None:
                inputs = inputs + b
            v = xp.zeros((x.shape[0], self.width), dtype=x.dtype)
        else:
            inputs = None
            v = x
        svs, a1s, a2s = [], [], []
        for t in range(self.steps):
            svs.append(v)
            z = inputs[:, t] if inputs is not None else None
            if not (self.sequence and t == 0):  # v_(0) = 0 for a sequence
                wv = ff.eq10_preactivation(w_k=w, v_km1=v)
                z = wv if z is None else z + wv
            if b is not None and inputs is None:
                z = z + b
            v, a1, a2 = fn(z, second=keep2)
            a1s.append(a1)
            a2s.append(a2)
        cache = RecCache(
            xp.stack(svs, axis=1),
            xp.stack(a1s, axis=1),
            xp.stack(a2s, axis=1) if keep2 else None,
            vanishes,
        )
        return v, cache

    def backward(self, params, x, cache, ybar, need_xbar=True):
        xp = namespace(ybar)
        w, u, _ = self._split(params)
        vbar = ybar
        deltas, vbars = [None] * self.steps, [None] * self.steps
        for t in range(self.steps - 1, -1, -1):
            vbars[t] = vbar
            deltas[t] = cache.a1[:, t] * vbar
            if t > 0 or not self.sequence:
                vbar = ct.c10_adjoint_v_step(delta_kp1=deltas[t], w_kp1=w)
        sdelta = xp.stack(deltas, axis=1)
        grads = [st.c35_rec_grad_w(sdelta=sdelta, sv=cache.sv, reduce="mean")]
        if self.sequence:
            grads.append(st.c36_rec_grad_u(sdelta=sdelta, sx=x, reduce="mean"))
        if self.bias:
            grads.append(st.c37_rec_grad_bias(sdelta=sdelta, reduce="mean"))
        xbar = None
        if need_xbar:
            xbar = st.c38_rec_input_adjoint(sdelta=sdelta, ur=u) if self.sequence else vbar
        return xbar, RecAdjoint(sdelta, xp.stack(vbars, axis=1), grads), grads

    def tangent(self, params, x, cache, xdot, dparams):
        xp = namespace(cache.a1)
        w, u, _ = self._split(params)
        phi, phiu, psi = self._split(dparams)
        source = st.c39_rec_source_state(phir=phi, sv=cache.sv)
        if self.sequence:
            source = source + st.c39_rec_source_input(phiu=phiu, sx=x)
            if xdot is not None:
                source = source + st.c39_rec_source_input_tangent(sxdot=xdot, ur=u)
        if psi is not None:
            source = source + psi
        vdot = xdot if not self.sequence else None
        zeros = xp.zeros_like(cache.a1[:, 0])
        svdot, szdot = [], []
        for t in range(self.steps):
            svdot.append(zeros if vdot is None else vdot)
            zdot = source[:, t]
            if vdot is not None:
                zdot = zdot + ct.c4_tangent_propagate(w_k=w, vdot_km1=vdot)  # C40
            vdot = cache.a1[:, t] * zdot
            szdot.append(zdot)
        record = RecTangent(xp.stack(szdot, axis=1), xp.stack(svdot, axis=1), xdot, phi, phiu)
        return vdot, record

    def second_order(self, params, x, cache, adjoint, tangent, reduce):
        total = st.c41_rec_state_term(
            phir=tangent.phi, sdelta=adjoint.sdelta, svdot=tangent.svdot, reduce=reduce
        )
        if self.sequence and tangent.xdot is not None:
            total = total + st.c41_rec_input_term(
                phiu=tangent.phiu, sdelta=adjoint.sdelta, sxdot=tangent.xdot, reduce=reduce
            )
        if not cache.vanishes:
            if cache.a2 is None:
                raise ValueError("the forward pass did not keep A''; run it with second=True")
            total = total + st.c41_rec_second_order_term(
                szdot=tangent.szdot, sa2=cache.a2, svbar=adjoint.svbar, reduce=reduce
            )
        return total

    def lowrank_tangent(self, params, x, cache, adjoint, xdot, source=None):
        return self.tangent(params, x, cache, xdot, [-g for g in adjoint.grads])

    def lowrank_cross(self, params, x, cache, adjoint, xdot):
        return None  # in second_order (see the module docstring)

    def init(self, rng, bound: float, dtype) -> list:
        """Weights uniform in ``[-bound, bound]`` (Appendix A); the bias zero."""
        out = [
            rng.uniform(-bound, bound, size=shape).astype(dtype, copy=False)
            for shape in self.param_shapes[: 2 if self.sequence else 1]
        ]
        return out + ([np.zeros(self.width, dtype=dtype)] if self.bias else [])

    def describe(self) -> dict:
        out = {
            "type": "recurrent",
            "d_in": self.d_in,
            "width": self.width,
            "steps": self.steps,
            "activation": self.activation,
        }
        if self.bias:
            out["bias"] = True
        if not self.sequence:
            out["sequence"] = False
        return out
