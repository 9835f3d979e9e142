"""CR's step-length rules, one small object per variant, shared by every path.

:class:`numeric.cr.CR` (the NumPy and JAX training methods) and
:func:`numeric.optax.scale_by_cr` are thin adapters over these rules: each forms the base
direction ``d``, hands the rule a :class:`~numeric.rules.curvature.Curvature` (the
generated kernels of a network, or JAX autodiff of any model) and applies the
:class:`~numeric.rules.base.Outcome`.

``"paper"``            Eq 37 along ``d`` (Section 3.1): :class:`Paper`.
``"adaptive"``         ARC's sigma, trial pass, accept or reject (V3-V5): :class:`Adaptive`.
``"scale-invariant"``  the cubic term in the base's diagonal metric (V1, V2).
``"per-layer"``        one length per Hessian block (C45-C46): :class:`PerLayer`.
``"per-variable"``     one length per weight, exact Hessian diagonal (V6): :class:`PerVariable`.
``"output-trust"``     Eq 37 capped at a fixed predicted change of the logits (V7): :class:`OutputTrust`.
``every=K``            any of them every K steps, reused in between: :class:`Every`.
``averaging=``         ``"mean-alpha"``/``"alpha-g"``: the paper's per-sample averagings.

A new variant is one :class:`Rule` subclass (``apply`` and, if it keeps any, a NamedTuple
state) and one entry in :data:`RULES`; ``--cr-variant``, ``variant=`` and the checks
below pick it up from there.

Example
-------
>>> import numpy as np
>>> from numeric.rules import make_rule, step_lengths
>>> make_rule(100.0, variant="per-layer", every=4)
Every(PerLayer(sigma=100.0, nondescent='base'), every=4)
>>> alpha, flag = step_lengths(-1.0, 2.0, 100.0, 1.0, 0.01)
>>> round(float(alpha), 6), int(flag)
(0.122829, 0)
"""

from __future__ import annotations

import math
import sys

from numeric.rules.adaptive import ARC, Adaptive, AdaptiveState, adaptive_outcome
from numeric.rules.base import NoState, Outcome, Rule, StepStats, concrete
from numeric.rules.curvature import Curvature, KernelCurvature
from numeric.rules.every import Every, EveryState
from numeric.rules.metric import RMS_BETA2, RMS_EPS, metric_sq_norm, rms_metric, rms_update
from numeric.rules.output_trust import OutputTrust, output_cap
from numeric.rules.paper import Paper, ScaleInvariant
from numeric.rules.per_layer import PerLayer
from numeric.rules.per_sample import PerSample
from numeric.rules.per_variable import PerVariable, per_variable_lengths
from numeric.rules.settle import (
    NONDESCENT,
    combine_flags,
    least_squares_scale,
    scale,
    settle,
    step_lengths,
)

__all__ = [
    "ARC",
    "AVERAGING",
    "NONDESCENT",
    "RMS_BETA2",
    "RMS_EPS",
    "RULES",
    "VARIANTS",
    "Adaptive",
    "AdaptiveState",
    "Curvature",
    "Every",
    "EveryState",
    "KernelCurvature",
    "NoState",
    "Outcome",
    "OutputTrust",
    "Paper",
    "PerLayer",
    "PerSample",
    "PerVariable",
    "Rule",
    "ScaleInvariant",
    "StepStats",
    "adaptive_outcome",
    "check_fallback",
    "combine_flags",
    "concrete",
    "least_squares_scale",
    "make_rule",
    "metric_sq_norm",
    "output_cap",
    "per_variable_lengths",
    "rms_metric",
    "rms_update",
    "scale",
    "settle",
    "step_lengths",
]

#: The variants, by the name ``--cr-variant`` and ``variant=`` take.
RULES: dict[str, type[Rule]] = {
    "paper": Paper,
    "adaptive": Adaptive,
    "scale-invariant": ScaleInvariant,
    "per-layer": PerLayer,
    "per-variable": PerVariable,
    "output-trust": OutputTrust,
}
VARIANTS = tuple(RULES)
#: Mini-batch averagings of Section 3.1: one model for the batch, or per sample.
AVERAGING = ("model", "mean-alpha", "alpha-g")


def make_rule(
    sigma: float,
    *,
    variant: str = "paper",
    every: int = 1,
    averaging: str = "model",
    nondescent: str = "base",
    arc: ARC | None = None,
    sgd: bool = True,
) -> Rule:
    """The rule for these settings, after the one set of checks every path shares.

    ``sgd``: whether the base direction is ``-grad F`` of plain SGD (the per-sample
    averagings need it).  Raises ``ValueError`` with a one-line message for a setting
    outside its range or a combination that is not defined.  A traced ``sigma`` (under
    ``jax.jit``) is checked when it is concrete, not here (:func:`concrete`).
    """
    value = concrete(sigma)
    if value is not None:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
        if value < sys.float_info.min:  # a denormal sigma ||d||^3 underflows: every step "zero"
            raise ValueError(
                f"sigma must be at least {sys.float_info.min:.4g} (a normal float), got {sigma!r}"
            )
        sigma = value
    if nondescent not in NONDESCENT:
        raise ValueError(f"nondescent must be one of {NONDESCENT}, got {nondescent!r}")
    if variant not in RULES:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if isinstance(every, bool) or int(every) != every or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    if averaging not in AVERAGING:
        raise ValueError(f"averaging must be one of {AVERAGING}, got {averaging!r}")
    if averaging != "model":
        if not sgd:
            raise ValueError(
                f"averaging={averaging!r} needs per-sample directions, defined only for SGD; "
                "use averaging='model'"
            )
        if variant != "paper" or every != 1:
            raise ValueError(
                f"averaging={averaging!r} is defined for the paper's CR only (variant='paper', "
                "every=1)"
            )
        return PerSample(sigma, nondescent, averaging)
    rule = (
        Adaptive(sigma, nondescent, arc)
        if variant == "adaptive"
        else RULES[variant](sigma, nondescent)
    )
    return Every(rule, int(every)) if every > 1 else rule


def check_fallback(fallback: float) -> float:
    """``fallback`` (the length of flagged steps) as a float, finite and ``>= 0`` (a traced
    one as it is, :func:`concrete`)."""
    value = concrete(fallback)
    if value is None:
        return fallback
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"fallback must be finite and >= 0, got {fallback!r}")
    return value
