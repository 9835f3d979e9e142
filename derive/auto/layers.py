"""The layers declared by their forward rules (:class:`~derive.auto.rule.LayerRule`).

* ``dense`` and ``dense_bias``: the paper's hidden layer (Eq 10; with a bias, Eq 10.b),
  ``v^(k) = A(w^(k) v^(k-1) (+ b^(k)))``.
* ``linear`` and ``linear_bias``: the logits ``p = u v^(n) (+ c)`` (Eqs 13, 13.b), a
  layer with no activation.
* ``residual``: ``y = v + A(w v + b)`` (a square ``w``), not in the paper.
* ``layernorm``: ``y = g (v - mu) / sqrt(var + eps) + beta`` with the per-sample mean and
  variance over the features, not in the paper.
* ``attention``: single-head softmax self-attention over a short sequence of tokens
  ``x[m, t, i]``: ``y[m, t, k] = sum_u softmax_u(q[m, t] . key[m, u]) val[m, u, k]``
  with ``q = wq x``, ``key = wk x``, ``val = wv x`` per token, not in the paper (the
  usual ``1/sqrt(d_k)`` is absorbed into ``wq``).

:data:`LAYERS` maps each name to its rule.
"""

from __future__ import annotations

import sympy as sp

from derive.auto.algebra import UPPER
from derive.auto.rule import ACT, LayerRule, Statement, Tensor, ix

__all__ = ["LAYERS", "dense_rule"]

m, i, j = ix("m i j")


def _sum(body: sp.Expr, *idx: sp.Idx) -> sp.Expr:
    return sp.Sum(body, *[(x, 0, UPPER - 1) for x in idx])


def dense_rule(name: str, bias: bool, activation: bool, cites: str) -> LayerRule:
    """``z[m, j] = sum_i w[j, i] v[m, i] (+ b[j])``, ``y[m, j] = A(z[m, j])`` (or ``y = z``
    with no activation: the logits, whose weights the paper calls ``u``)."""
    w = Tensor("w" if activation else "u", ("j", "i"), "weights [out, in]",
               "phi" if activation else "omega")  # fmt: skip
    b = Tensor("b" if activation else "c", ("j",), "bias [out]", "psi" if activation else "omegac")
    v = Tensor("v", ("m", "i"), "input [sample, in]", "vdot")
    z = Tensor("z" if activation else "p", ("m", "j"), "pre-activation [sample, out]")
    rhs = _sum(w[j, i] * v[m, i], i) + (b[j] if bias else 0)
    statements = [Statement(z, rhs)]
    if activation:
        statements.append(Statement(Tensor("y", ("m", "j"), "output [sample, out]"), ACT(z[m, j])))
    return LayerRule(
        name=name,
        title=("hidden layer" if activation else "logits layer") + (" with a bias" if bias else ""),
        params=(w, b) if bias else (w,),
        input=v,
        statements=tuple(statements),
        cites=cites,
    )


def _residual() -> LayerRule:
    w = Tensor("w", ("j", "i"), "weights [out, in], square", "phi")
    b = Tensor("b", ("j",), "bias [out]", "psi")
    v = Tensor("v", ("m", "i"), "input [sample, unit]", "vdot")
    z, h, y = (Tensor(n, ("m", "j")) for n in ("z", "h", "y"))
    return LayerRule(
        name="residual",
        title="residual block y = v + A(w v + b) (w square)",
        params=(w, b),
        input=v,
        statements=(
            Statement(z, _sum(w[j, i] * v[m, i], i) + b[j]),
            Statement(h, ACT(z[m, j])),
            Statement(y, v[m, j] + h[m, j]),
        ),
    )


#: number of features of the layer normalisation (the ``n`` of its mean and variance)
FEATURES = sp.Symbol("n_f", positive=True, integer=True)
#: the variance offset of the layer normalisation
EPS = sp.Symbol("epsilon", positive=True)


def _layernorm() -> LayerRule:
    g = Tensor("g", ("j",), "scale [feature]", "gdot")
    beta = Tensor("beta", ("j",), "shift [feature]", "betadot")
    v = Tensor("v", ("m", "i"), "input [sample, feature]", "vdot")
    mu, var, r = (Tensor(n, ("m",)) for n in ("mu", "s", "r"))
    c, y = Tensor("c", ("m", "j")), Tensor("y", ("m", "j"))
    return LayerRule(
        name="layernorm",
        title="layer normalisation y = g (v - mu) / sqrt(var + eps) + beta, per sample",
        params=(g, beta),
        input=v,
        statements=(
            Statement(mu, _sum(v[m, i], i) / FEATURES),
            Statement(c, v[m, j] - mu[m]),
            Statement(var, _sum(c[m, i] ** 2, i) / FEATURES),
            Statement(r, 1 / sp.sqrt(var[m] + EPS)),
            Statement(y, g[j] * c[m, j] * r[m] + beta[j]),
        ),
        extents={"i": FEATURES, "j": FEATURES},
    )


def _attention() -> LayerRule:
    t, u, k = ix("t u k")
    wq, wk, wv = (Tensor(n, ("k", "i"), f"{what} weights [head, feature]", d)
                  for n, what, d in (("wq", "query", "phiq"), ("wk", "key", "phik"),
                                     ("wv", "value", "phiv")))  # fmt: skip
    x = Tensor("x", ("m", "t", "i"), "input [sample, token, feature]", "xdot")
    q, key, val = (Tensor(n, ("m", "t", "k")) for n in ("q", "key", "val"))
    s, e, p = (Tensor(n, ("m", "t", "u")) for n in ("s", "e", "p"))
    den, y = Tensor("den", ("m", "t")), Tensor("y", ("m", "t", "k"), "output [sample, token, head]")
    return LayerRule(
        name="attention",
        title="single-head softmax self-attention y = softmax(q key^T) val over the tokens",
        params=(wq, wk, wv),
        input=x,
        statements=(
            Statement(q, _sum(wq[k, i] * x[m, t, i], i)),
            Statement(key, _sum(wk[k, i] * x[m, t, i], i)),
            Statement(val, _sum(wv[k, i] * x[m, t, i], i)),
            Statement(s, _sum(q[m, t, k] * key[m, u, k], k)),
            Statement(e, sp.exp(s[m, t, u])),
            Statement(den, _sum(e[m, t, u], u)),
            Statement(p, e[m, t, u] / den[m, t]),
            Statement(y, _sum(p[m, t, u] * val[m, u, k], u)),
        ),
    )


LAYERS: dict[str, LayerRule] = {
    rule.name: rule
    for rule in (
        dense_rule("dense", bias=False, activation=True, cites="Eq 10"),
        dense_rule("dense_bias", bias=True, activation=True, cites="Eq 10.b"),
        dense_rule("linear", bias=False, activation=False, cites="Eq 13"),
        dense_rule("linear_bias", bias=True, activation=False, cites="Eq 13.b"),
        _residual(),
        _layernorm(),
        _attention(),
    )
}
