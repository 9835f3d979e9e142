"""The parts every CR rule shares: its named results and its base class.

A rule turns what :class:`~numeric.rules.curvature.Curvature` reports along the base
direction ``d`` (a list of arrays, one per parameter array) into the applied step.  It
holds its settings (``sigma``, ``nondescent``, ...) and no arrays; what changes from step
to step is its state, a NamedTuple returned with each :class:`Outcome`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from numeric.rules.curvature import Curvature

__all__ = ["NoState", "Outcome", "Rule", "StepStats", "concrete"]


def concrete(value) -> float | None:
    """``float(value)``, or ``None`` for a 0-d array known only when the step runs (a
    JAX tracer under ``jit``, as ``optax.inject_hyperparams`` passes hyperparameters):
    settings are checked when concrete and used as they are otherwise."""
    try:
        return float(value)
    except TypeError:
        if getattr(value, "shape", None) == () and hasattr(value, "dtype"):
            return None
        raise


class StepStats(NamedTuple):
    """What one step of a rule did (scalars, or 0-d arrays under ``jax.jit``).

    ``alpha``
        The length Eq 37 chose along ``d`` (adaptive CR: the trial length, also when
        rejected; multi-length rules: the least-squares scalar of the applied step).
    ``lr_eff``
        The scalar ``s`` for which ``s d`` is (closest to) the applied update.
    ``dgrad``, ``dhd``, ``dnorm``
        ``d^T grad F``, ``d^T H d`` (per-layer: its block-diagonal part, per-variable:
        its diagonal part, a reused step: NaN), ``||d||``.
    ``flag``
        An index into :data:`numeric.stepping.FLAGS`.
    """

    alpha: Any
    lr_eff: Any
    dgrad: Any
    dhd: Any
    dnorm: Any
    flag: Any


class NoState(NamedTuple):
    """The state of a rule that keeps none."""


class Outcome(NamedTuple):
    """A rule's step.

    ``update``: the applied step, one array per parameter array.  ``lengths``: per array
    the length(s) with ``update = lengths * d`` (a scalar or an array of the array's
    shape; ``None`` where the update is not a scaling of ``d``).  ``stats``:
    :class:`StepStats`.  ``state``: the rule's state after the step.  ``rejected``:
    whether an adaptive trial was rejected (the weights stay).
    """

    update: list
    lengths: list | None
    stats: StepStats
    state: Any
    rejected: Any = False


class Rule:
    """One CR step-length rule (:mod:`numeric.rules`).

    Parameters
    ----------
    sigma : float
        The cubic weight (adaptive CR: its initial value).
    nondescent : {"base", "skip"}
        Length of a non-descent direction: ``fallback`` or 0.
    """

    #: the name ``--cr-variant`` and ``variant=`` use
    name: ClassVar[str] = ""
    #: whether :meth:`apply` reads the base optimizer's metric
    reads_metric: ClassVar[bool] = False

    def __init__(self, sigma: float, nondescent: str = "base") -> None:
        value = concrete(sigma)
        self.sigma = sigma if value is None else value
        self.nondescent = nondescent

    def init(self, params: Sequence) -> Any:
        """The state before the first step (``params``: the parameter arrays)."""
        return NoState()

    def check(self, layers: Sequence) -> None:
        """``ValueError`` when the rule is not derived for a network of these layers."""

    def due(self, state: Any) -> bool:
        """Whether the next step needs curvature (``False``: it reuses lengths)."""
        return True

    def apply(self, curv: Curvature, d: list, fallback, state: Any, metric=None) -> Outcome:
        """The step along ``d`` (``fallback``: the length of flagged steps; ``metric``:
        the base optimizer's diagonal metric, read by the scale-invariant rule)."""
        raise NotImplementedError

    # ---- the state as the named entries of a checkpoint (``cr_<field>``)
    def entries(self, state: Any) -> dict:
        """``{"cr_<field>": value}`` of the state (what checkpoints store)."""
        return {f"cr_{k}": v for k, v in state._asdict().items()}

    def from_entries(self, entries: dict, params: Sequence) -> Any:
        """The state from its entries (those missing from a fresh state's)."""
        fresh = self.init(params)
        return type(fresh)(**{k: entries.get(f"cr_{k}", v) for k, v in fresh._asdict().items()})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma!r}, nondescent={self.nondescent!r})"
