"""Section 3's cubic model along a fixed direction, in three scalars.

Along a direction ``g`` the cubic model of Eq 8 depends on ``h = g^T H g``,
``d = g^T grad F`` and ``c = sigma ||g||^3`` only.  This module holds those symbols and
the closed forms built from them: the model (Eq 8), the positive root (Eq 37), the
same root without cancellation (C8) and Eq 41's limiting cases as printed and as
corrected.  The equation modules register them; the self-checks and the code generator
use the same objects.
"""

from __future__ import annotations

import sympy as sp

__all__ = [
    "h",
    "d",
    "cc",
    "sigma",
    "alpha_s",
    "CR_SYMBOLS",
    "MEANINGS",
    "cubic_model",
    "step_length",
    "step_length_stable",
    "roots",
    "LIMITS_PRINTED",
    "LIMITS_CORRECTED",
]

h = sp.Symbol("h", real=True)  # g^T H g
d = sp.Symbol("d", real=True)  # g^T grad F
cc = sp.Symbol("c", positive=True)  # sigma ||g||^3
sigma = sp.Symbol("sigma", positive=True)
alpha_s = sp.Symbol("alpha", real=True)

CR_SYMBOLS = {"h": h, "d": d, "c": cc, "sigma": sigma, "alpha": alpha_s}
#: What each symbol stands for, by name (the legend of ``derive show``).
MEANINGS = {
    "h": "g^T H g, the curvature along the direction g",
    "d": "g^T grad F, the slope along g",
    "c": "sigma ||g||^3, the cubic term's weight along g",
    "sigma": "CR's cubic weight",
    "alpha": "the step length along g",
}


def cubic_model(alpha: sp.Expr = alpha_s) -> sp.Expr:
    """Eq 8 along a fixed direction: ``m(alpha) - f = alpha d + alpha^2 h / 2 + c alpha^3 / 6``."""
    return alpha * d + alpha**2 * h / 2 + cc * sp.Abs(alpha) ** 3 / 6


def step_length() -> sp.Expr:
    """Eq 37: the positive root of ``dm/dalpha = 0``."""
    return (-h + sp.sqrt(h**2 - 2 * d * cc)) / cc


def roots() -> sp.FiniteSet:
    """Eq 9: both roots ``(-h +- sqrt(h^2 - 2 d c)) / c`` of ``dm/dalpha = 0``."""
    root = sp.sqrt(h**2 - 2 * d * cc)
    return sp.FiniteSet((-h + root) / cc, (-h - root) / cc, evaluate=False)


def step_length_stable(root: sp.Expr | None = None) -> sp.Expr:
    """Eq 37 without cancellation, for ``d < 0``: a ``Piecewise`` on the sign of ``h``.

    ``h >= 0``: the rationalized form ``-2 d / (h + S)``; ``h < 0``: Eq 37 itself,
    ``(S - h) / c``, whose numerator then adds two positive numbers.  Here
    ``S = sqrt(h^2 - 2 d c)`` (pass ``root`` to name it, e.g. a symbol that a printer
    renders as ``hypot(h, sqrt(-2 d c))``, which cannot overflow).  Each branch
    cancels catastrophically in the other's domain when ``h^2 >> |d| c``.
    """
    S = sp.sqrt(h**2 - 2 * d * cc) if root is None else root
    return sp.Piecewise((-2 * d / (h + S), h >= 0), ((S - h) / cc, True))


def _limits(printed: bool) -> list[tuple[sp.Expr, str]]:
    """Eq 41's three regimes as (approximation, condition) pairs in h, d, c."""
    if printed:
        return [
            (sp.Abs(d) / h, "abs(h) >> abs(d)*c and h > 0"),
            (sp.sqrt(2 * d / cc), "abs(h) << abs(d)*c and h > 0"),
            (2 * sp.Abs(h / cc) + sp.Abs(d / h), "abs(h) >> abs(d)*c and h < 0"),
        ]
    return [
        (sp.Abs(d) / h, "h**2 >> abs(d)*c and h > 0"),
        (sp.sqrt(-2 * d / cc), "h**2 << abs(d)*c"),
        (2 * sp.Abs(h / cc) + sp.Abs(d / h), "h**2 >> abs(d)*c and h < 0"),
    ]


LIMITS_PRINTED = _limits(True)
LIMITS_CORRECTED = _limits(False)
