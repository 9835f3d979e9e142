"""Step-length reuse: any rule computed every ``K`` steps, its lengths reused in between.

The steps in between cost a base step (no tangent sweep, no trial pass); a rejected
adaptive step recomputes at the next one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from numeric import curvature as cv
from numeric.kernels._runtime import namespace
from numeric.rules.base import Outcome, Rule, StepStats
from numeric.rules.settle import least_squares_scale, scale

__all__ = ["Every", "EveryState"]


class EveryState(NamedTuple):
    """``inner``: the wrapped rule's state; ``alpha``: the lengths to reuse, one per
    parameter array (a scalar, or an array of its shape for per-weight lengths);
    ``age``: steps since they were computed (0: the next step computes)."""

    inner: Any
    alpha: list
    age: Any


class Every(Rule):
    """``inner`` every ``every`` steps (``every >= 2``)."""

    def __init__(self, inner: Rule, every: int) -> None:
        super().__init__(inner.sigma, inner.nondescent)
        self.inner = inner
        self.every = int(every)
        self.name = inner.name  # type: ignore[misc]  # an instance reports its inner rule
        self.reads_metric = inner.reads_metric  # type: ignore[misc]

    def _per_weight(self) -> bool:
        return self.inner.name == "per-variable"

    def init(self, params):
        xp = namespace(*params)
        shape = (lambda p: p.shape) if self._per_weight() else (lambda p: ())
        alpha = [xp.zeros(shape(p), dtype=p.dtype) for p in params]
        return EveryState(self.inner.init(params), alpha, 0)

    def check(self, layers):
        self.inner.check(layers)

    def due(self, state) -> bool:
        return int(state.age) == 0

    def apply(self, curv, d, fallback, state, metric=None) -> Outcome:
        """The inner rule's step; its lengths are kept for the next ``every - 1`` steps
        (the adapters call :meth:`reuse` on those: on the host as :meth:`due` says, or
        under ``jax.lax.cond``)."""
        out = self.inner.apply(curv, d, fallback, state.inner, metric)
        assert out.lengths is not None, "a reused rule scales d by its lengths"
        xp = namespace(*d)
        cached = [
            xp.broadcast_to(xp.asarray(a, dtype=c.dtype), c.shape) if c.ndim else a
            for a, c in zip(out.lengths, state.alpha, strict=True)
        ]
        age = xp.where(out.rejected, 0, 1 % self.every)
        return out._replace(state=EveryState(out.state, cached, age))

    def reuse(self, curv, d, state) -> Outcome:
        """The kept lengths along this step's ``d`` (no curvature but ``grad F``)."""
        xp = namespace(*d)
        update = scale(state.alpha, d)
        lr_eff = least_squares_scale(update, d)
        stats = StepStats(lr_eff, lr_eff, cv.dot(d, curv.grad()), xp.nan,
                          xp.sqrt(cv.sq_norm(d)), 0)  # fmt: skip
        new = state._replace(age=(state.age + 1) % self.every)
        return Outcome(update, list(state.alpha), stats, new, False)

    def entries(self, state):
        return {**self.inner.entries(state.inner), "cr_alpha": state.alpha, "cr_age": state.age}

    def from_entries(self, entries, params):
        fresh = self.init(params)
        return EveryState(
            self.inner.from_entries(entries, params),
            entries.get("cr_alpha", fresh.alpha),
            entries.get("cr_age", fresh.age),
        )

    def __repr__(self) -> str:
        return f"Every({self.inner!r}, every={self.every})"
