"""Single-head softmax self-attention over a short sequence of tokens (not in the paper).

Per sample, ``x`` holds ``tokens`` tokens of ``d`` features; with ``q = x wq^T``,
``key = x wk^T`` and ``val = x wv^T`` (each (tokens, d_k)),
``y[t] = sum_u softmax_u(q[t] . key[u]) val[u]``.  The usual ``1/sqrt(d_k)`` is part of
``wq`` (its initial scale).

Parameters: ``[wq, wk, wv]``, each (d_k, d).  Per sample: ``x`` (batch, tokens, d),
``y`` (batch, tokens, d_k).

The forward rule is declared in ``derive/auto/layers.py`` (``attention``); every
derivative comes from its auto-derived kernels (:mod:`numeric.kernels.auto_derived`,
registry ``A.attention.*``) run by :class:`~numeric.layers.derived.DerivedLayer`.

The forward pass keeps the scores shifted by their row maximum, ``s[t, u] - max_u s[t, u]``
(``e = exp(s)`` then never overflows).  Every quantity of the rule from ``s`` on enters
``y`` through the softmax of a row of ``s``, which a shift of the row leaves unchanged,
so the derived forms evaluated at the shifted scores give the same adjoints, tangents
and second-order terms (``verify report`` checks them against JAX's softmax).
"""

from __future__ import annotations

from dataclasses import dataclass

from numeric.kernels._runtime import einsum, namespace
from numeric.layers.derived import DerivedLayer

__all__ = ["Attention"]


@dataclass(frozen=True)
class Attention(DerivedLayer):
    """Self-attention of ``tokens`` tokens of ``d`` features into ``d_k`` features."""

    tokens: int
    d: int
    d_k: int

    RULE = "attention"
    STATEMENTS = ("q", "key", "val", "s", "e", "den", "p", "y")
    PARAMS = ("wq", "wk", "wv")
    DIRECTIONS = ("phiq", "phik", "phiv")
    INPUT = "x"

    def __post_init__(self) -> None:
        for name in ("tokens", "d", "d_k"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def in_shape(self) -> tuple[int, ...]:
        return (self.tokens, self.d)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.tokens, self.d_k)

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        return [(self.d_k, self.d)] * 3

    def forward(self, params, x, second=True):
        xp = namespace(x)
        wq, wk, wv = params
        q = einsum("mti,ki->mtk", x, wq)
        key = einsum("mti,ki->mtk", x, wk)
        val = einsum("mti,ki->mtk", x, wv)
        s = einsum("mtk,muk->mtu", q, key)
        s = s - xp.max(s, axis=2, keepdims=True)  # the softmax's shift (module docstring)
        e = xp.exp(s)
        den = xp.sum(e, axis=2)
        p = e / den[:, :, None]
        y = einsum("mtu,muk->mtk", p, val)
        return y, {"q": q, "key": key, "val": val, "s": s, "e": e, "den": den, "p": p}

    def describe(self) -> dict:
        return {"type": "attention", "tokens": self.tokens, "d": self.d, "d_k": self.d_k}
