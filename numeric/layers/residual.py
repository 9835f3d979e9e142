"""Residual block ``y = v + A(w v + b)`` (not in the paper; a square ``w``) with any
shipped activation.

Parameters: ``[w, b]``, ``w`` of shape (d, d) and ``b`` (d,).  Per sample: ``x``
(batch, d), ``y`` (batch, d).

The forward rule is declared in ``derive/auto/layers.py`` (``residual``); every
derivative comes from its auto-derived kernels (:mod:`numeric.kernels.auto_derived`,
registry ``A.residual.*``) run by :class:`~numeric.layers.derived.DerivedLayer`: the
adjoints ``hbar``, ``zbar``, ``vbar``, the gradients ``wbar`` (rank one per sample) and
``bbar``, the tangents ``zdot``, ``hdot``, ``ydot`` and ``curvature`` (the cross term
``2 zbar phi vdot`` and the activation term ``hbar A''(z) zdot^2``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numeric.kernels import activations as act
from numeric.kernels import feedforward as ff
from numeric.layers.activation import get_activation
from numeric.layers.derived import DerivedLayer

__all__ = ["Residual"]


@dataclass(frozen=True)
class Residual(DerivedLayer):
    """A residual block of width ``d`` with an entry-wise ``activation``."""

    d: int
    activation: str = "tanh"

    RULE = "residual"
    STATEMENTS = ("z", "h", "y")
    PARAMS = ("w", "b")
    DIRECTIONS = ("phi", "psi")

    def __post_init__(self) -> None:
        get_activation(self.activation)
        if int(self.d) < 1:
            raise ValueError(f"the width must be positive, got {self.d}")

    @property
    def in_shape(self) -> tuple[int, ...]:
        return (self.d,)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.d,)

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        return [(self.d, self.d), (self.d,)]

    def forward(self, params, x, second=True):
        z = ff.eq10_preactivation(w_k=params[0], v_km1=x) + params[1]  # z = w v + b
        h, a1, a2 = act.ACTIVATIONS[self.activation](z, second=second)
        return x + h, {"z": z, "h": h, "a1": a1, "a2": a2}

    def init(self, rng, bound: float, dtype) -> list:
        """Weights uniform in ``[-bound, bound]`` (Appendix A); the bias zero."""
        w = rng.uniform(-bound, bound, size=(self.d, self.d)).astype(dtype, copy=False)
        return [w, np.zeros(self.d, dtype=dtype)]

    def describe(self) -> dict:
        return {"type": "residual", "d": self.d, "activation": self.activation}
