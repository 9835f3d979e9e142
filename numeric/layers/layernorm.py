"""Layer normalisation ``y = g (v - mu) / sqrt(s + epsilon) + beta`` with the per-sample
mean ``mu`` and variance ``s`` over the features (not in the paper).

Parameters: ``[g, beta]``, the scale and shift, each (d,).  Per sample: ``x`` and ``y``
(batch, d).

The forward rule is declared in ``derive/auto/layers.py`` (``layernorm``); every
derivative comes from its auto-derived kernels (:mod:`numeric.kernels.auto_derived`,
registry ``A.layernorm.*``) run by :class:`~numeric.layers.derived.DerivedLayer`: the
adjoints ``rbar``, ``sbar``, ``cbar``, ``mubar``, ``vbar``, the gradients ``gbar`` and
``betabar``, the tangents and ``curvature``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numeric.kernels._runtime import namespace
from numeric.layers.derived import DerivedLayer

__all__ = ["LayerNorm"]


@dataclass(frozen=True)
class LayerNorm(DerivedLayer):
    """Layer normalisation of ``d`` features with offset ``epsilon``."""

    d: int
    epsilon: float = 1e-5

    RULE = "layernorm"
    STATEMENTS = ("mu", "c", "s", "r", "y")
    PARAMS = ("g", "beta")
    DIRECTIONS = ("gdot", "betadot")

    def __post_init__(self) -> None:
        if int(self.d) < 2:
            raise ValueError(f"layer normalisation needs at least 2 features, got {self.d}")
        if not float(self.epsilon) > 0:
            raise ValueError(f"epsilon must be positive, got {self.epsilon}")

    @property
    def in_shape(self) -> tuple[int, ...]:
        return (self.d,)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.d,)

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        return [(self.d,), (self.d,)]

    def constants(self) -> dict:
        return {"epsilon": float(self.epsilon)}

    def forward(self, params, x, second=True):
        xp = namespace(x)
        g, beta = params
        mu = xp.mean(x, axis=1)
        c = x - mu[:, None]
        s = xp.mean(c * c, axis=1)
        r = 1 / xp.sqrt(s + self.epsilon)
        return g * c * r[:, None] + beta, {"mu": mu, "c": c, "s": s, "r": r}

    def init(self, rng, bound: float, dtype) -> list:
        """Scale one, shift zero (the identity map of the normalised features)."""
        return [np.ones(self.d, dtype=dtype), np.zeros(self.d, dtype=dtype)]

    def describe(self) -> dict:
        return {"type": "layernorm", "d": self.d, "epsilon": self.epsilon}
