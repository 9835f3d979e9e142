"""The curvature a CR rule reads, by JAX autodiff of any model: the fallback path of
:func:`numeric.optax.scale_by_cr` (this module imports JAX and optax).

:class:`AutodiffCurvature` answers :class:`numeric.rules.Curvature`'s questions for a
``value_fn: params -> F`` over any pytree of parameters: ``d^T H d`` by one
forward-over-reverse product (``jax.jvp(jax.grad(value_fn))``), the per-leaf blocks by one
product per leaf, the Hessian diagonal by one product per parameter (exact; small models
only).  Directions and results are flat lists of leaves in ``jax.tree_util`` order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from optax.tree_utils import tree_vdot

from numeric.rules.curvature import Curvature

__all__ = ["AutodiffCurvature"]


class AutodiffCurvature(Curvature):
    """JAX autodiff of ``value_fn`` at ``params``.

    Parameters
    ----------
    value_fn : callable
        ``params -> F`` (a scalar).
    params : pytree
    grad : pytree, optional
        ``grad F`` when the caller has it (else ``jax.grad``).
    value : scalar, optional
        ``F(params)`` when the caller has it (adaptive CR's trial then costs one value).
    output_fn : callable, optional
        ``params -> outputs``, shape (batch, classes): :meth:`outputs` reads ``J d`` from
        the same ``jax.jvp`` that gives ``H d``.
    """

    def __init__(self, value_fn: Callable, params: Any, grad: Any = None, value: Any = None,
                 output_fn: Callable | None = None):  # fmt: skip
        self.value_fn = value_fn
        self.output_fn = output_fn
        self.params = params
        self.leaves, self.tree = jax.tree_util.tree_flatten(params)
        self._grad = grad
        self._value = value

    def _tree(self, leaves: Sequence):
        return jax.tree_util.tree_unflatten(self.tree, list(leaves))

    def grad(self) -> list:
        g = self._grad if self._grad is not None else jax.grad(self.value_fn)(self.params)
        return jax.tree_util.tree_leaves(g)

    def _hvp(self, d: Sequence):
        grad, hd = jax.jvp(jax.grad(self.value_fn), (self.params,), (self._tree(d),))
        return jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(hd)

    def along(self, d):
        grad, hd = self._hvp(d)
        return tree_vdot(d, grad), tree_vdot(d, hd), tree_vdot(d, d)

    def outputs(self, d):
        """:meth:`along`, ``pdot = J d`` and the outputs, from one ``jax.jvp`` of
        ``params -> (grad F, outputs)``."""
        if self.output_fn is None:
            raise ValueError("the output tangent J d needs the model's outputs: pass "
                             "output_fn=(params -> logits) to update()")  # fmt: skip
        out_fn = self.output_fn

        def both(p):
            return jax.grad(self.value_fn)(p), out_fn(p)

        (grad, p), (hd, pdot) = jax.jvp(both, (self.params,), (self._tree(d),))
        grad, hd = jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(hd)
        return tree_vdot(d, grad), tree_vdot(d, hd), tree_vdot(d, d), pdot, p

    def blocks(self, d):
        gtg, ghg, sq = [], [], []
        for k in range(len(d)):
            dk = [x if i == k else jnp.zeros_like(x) for i, x in enumerate(d)]
            a, b, c = self.along(dk)
            gtg.append(a)
            ghg.append(b)
            sq.append(c)
        return (jnp.stack(gtg), jnp.stack(ghg), jnp.stack(sq)), list(range(len(d)))

    def diagonal(self) -> list:
        flat, unravel = ravel_pytree(self.params)
        grad = jax.grad(lambda t: self.value_fn(unravel(t)))

        def entry(i):
            e = jnp.zeros_like(flat).at[i].set(1.0)
            return jax.jvp(grad, (flat,), (e,))[1][i]

        return jax.tree_util.tree_leaves(unravel(jax.lax.map(entry, jnp.arange(flat.size))))

    def decrease(self, step):
        trial = self._tree([p + s.astype(p.dtype) for p, s in zip(self.leaves, step, strict=True)])
        before = self.value_fn(self.params) if self._value is None else self._value
        return before - self.value_fn(trial)
