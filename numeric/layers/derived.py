"""Layers whose derivatives are the auto-derived kernels of
:mod:`numeric.kernels.auto_derived`, and the one driver that runs them.

A layer declared to ``derive.auto`` by its forward rule, statements ``T_1, ..., T_K``
(the last is the output ``y``), gets its kernels named ``<rule>_<part>``: the adjoints
``<T>bar`` of the intermediates and ``vbar`` of the input, the per-sample gradients
``<P>bar`` of the parameters, the tangents ``<T>dot`` and the layer's whole part of
``d^T H d``, ``curvature``.  :class:`DerivedLayer` calls them in sweep order, each with
the arrays it names from one environment of named arrays (the forward values, the
adjoints and tangents computed so far, the parameters and their directions): this
driver holds no derivative, only the order of the sweeps.

Subclasses say which rule they run (``RULE``, ``STATEMENTS``, ``PARAMS``,
``DIRECTIONS``) and write the forward pass, returning the named intermediates the
kernels read (``z``, ``a1``, ``a2``, ...).  The layer's whole second-order part
(cross terms of weights against input and the activation's ``A''`` terms) is the one
form ``curvature``, so :meth:`DerivedLayer.cross_term` and
:meth:`DerivedLayer.lowrank_cross` add nothing and :meth:`DerivedLayer.second_order`
returns it; along the SGD direction the tangent is taken along ``-grad F`` formed from
the batch gradient (no per-sample low-rank shortcut for these layers).
"""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any, ClassVar

from numeric.kernels import auto_derived as ad
from numeric.kernels._runtime import namespace
from numeric.layers.base import Layer

__all__ = ["DerivedLayer", "call_kernel"]


@cache
def _arguments(fn) -> tuple[str, ...]:
    return tuple(p for p in inspect.signature(fn).parameters if p != "reduce")


def call_kernel(fn, env: dict[str, Any], **extra):
    """``fn(**{name: env[name]})`` for the arguments ``fn`` names (plus ``extra``)."""
    args = _arguments(fn)
    missing = [a for a in args if a not in env]
    if missing:
        raise KeyError(f"{fn.__name__} needs {', '.join(missing)}, which no sweep has computed")
    return fn(**{a: env[a] for a in args}, **extra)


class DerivedLayer(Layer):
    """Adjoint, tangent and second-order sweeps through the auto-derived kernels.

    Class attributes
    ----------------
    RULE : str
        The layer's name in ``derive.auto`` (kernel prefix).
    STATEMENTS : tuple of str
        Targets of the forward rule in order; the last is the output.
    PARAMS, DIRECTIONS : tuple of str
        Parameter names in the network's order, and the names of their directions.
    INPUT : str
        Name of the input (``v``); its tangent is ``<INPUT>dot``.
    """

    RULE: ClassVar[str]
    STATEMENTS: ClassVar[tuple[str, ...]]
    PARAMS: ClassVar[tuple[str, ...]]
    DIRECTIONS: ClassVar[tuple[str, ...]]
    INPUT: ClassVar[str] = "v"

    def kernel(self, part: str):
        """The generated kernel ``<RULE>_<part>`` (looked up at call time)."""
        return getattr(ad, f"{self.RULE}_{part}")

    def constants(self) -> dict[str, Any]:
        """Scalars the kernels name (``epsilon``); none by default."""
        return {}

    @property
    def second_vanishes(self) -> bool:
        return False  # the cross terms of the rule are second order whatever A is

    def _env(self, params, x, cache) -> dict[str, Any]:
        env = dict(cache)
        env.update(zip(self.PARAMS, params, strict=True))
        env[self.INPUT] = x
        env.update(self.constants())
        return env

    # ------------------------------------------------------------------ sweeps
    def backward(self, params, x, cache, ybar, need_xbar=True):
        env = self._env(params, x, cache)
        env[f"{self.STATEMENTS[-1]}bar"] = ybar
        for target in reversed(self.STATEMENTS[:-1]):
            env[f"{target}bar"] = call_kernel(self.kernel(f"{target}bar"), env)
        grads = [call_kernel(self.kernel(f"{p}bar"), env, reduce="mean") for p in self.PARAMS]
        env["grads"] = grads
        xbar = call_kernel(self.kernel(f"{self.INPUT}bar"), env) if need_xbar else None
        return xbar, env, grads

    def tangent(self, params, x, cache, xdot, dparams):
        env = self._env(params, x, cache)
        env.update(zip(self.DIRECTIONS, dparams, strict=True))
        env[f"{self.INPUT}dot"] = namespace(x).zeros_like(x) if xdot is None else xdot
        for target in self.STATEMENTS:
            env[f"{target}dot"] = call_kernel(self.kernel(f"{target}dot"), env)
        return env[f"{self.STATEMENTS[-1]}dot"], env

    def second_order(self, params, x, cache, adjoint, tangent, reduce):
        if any(v is None for v in cache.values()):
            raise ValueError("the forward pass did not keep A''; run it with second=True")
        return call_kernel(self.kernel("curvature"), {**adjoint, **tangent}, reduce=reduce)

    def lowrank_tangent(self, params, x, cache, adjoint, xdot, source=None):
        return self.tangent(params, x, cache, xdot, [-g for g in adjoint["grads"]])

    def lowrank_cross(self, params, x, cache, adjoint, xdot):
        return None  # in ``curvature`` (second_order)
