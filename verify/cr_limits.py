"""Eq 37's step length and Eq 41's limiting cases, probed in the regimes Eq 41 states.

Along a direction ``g`` the cubic model (Eq 8) has the scalars ``h = g^T H g``,
``d = g^T grad F < 0`` and ``c = sigma ||g||^3``.  Eq 41 approximates the step length
in three regimes; this module places real ``(h, d, ||g||)`` triples (from the reference
of each case) into each regime by choosing ``sigma`` (the paper's free weight) and the
length of ``g`` (which "need not be normalized", Section 3.1), and compares

* each approximation, printed and corrected (:mod:`derive`'s registry), with the exact
  stationary point (:func:`verify.reference.cr_root`), and
* the Eq 37 kernel with the exact stationary point in each regime.

Printed conditions read ">>" as a factor :data:`PRINTED_FACTOR` between ``|h|`` and
``|d| c``; the corrected ones as :data:`CORRECTED_FACTOR` between ``h^2`` and ``|d| c``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np

from verify.reference import cr_root

__all__ = [
    "PRINTED_FACTOR",
    "CORRECTED_FACTOR",
    "SCALES",
    "CASE_NAMES",
    "Probe",
    "probes",
    "representable",
    "approximations",
    "expansion_bound",
]

PRINTED_FACTOR = 1e3
CORRECTED_FACTOR = 1e8
#: lengths of g relative to the drawn direction
SCALES = (1e-4, 1e-2, 1.0, 1e2, 1e4)
CASE_NAMES = {
    1: "case 1 (h > 0, h^2 >> |d| sigma ||g||^3)",
    2: "case 2 (h^2 << |d| sigma ||g||^3)",
    3: "case 3 (h < 0, h^2 >> |d| sigma ||g||^3)",
}


@dataclass(frozen=True)
class Probe:
    """One ``(h, d, c)`` point placed in one of Eq 41's regimes."""

    case: int  # 1, 2 or 3 (Eq 41's rows)
    conditions: str  # "printed" or "corrected"
    h: float
    d: float
    norm3: float
    sigma: float

    @property
    def c(self) -> float:
        return self.sigma * self.norm3

    @property
    def exact(self) -> float:
        return cr_root(self.h, self.d, self.c)


def probes(h0: float, d0: float, norm3_0: float, conditions: str) -> Iterator[Probe]:
    """Points of every regime reachable from one direction's ``(h, d, ||g||^3)``.

    ``g`` scaled by ``s`` gives ``(s^2 h, s d, s^3 ||g||^3)``; ``sigma`` then sets the
    regime.  Cases 1 and 3 need the sign of ``h`` they name; case 2 needs ``h > 0`` in
    the printed conditions and takes either sign in the corrected ones.
    """
    if not (d0 < 0 and norm3_0 > 0 and h0 != 0):
        return
    for s in SCALES:
        h, d, n3 = s * s * h0, s * d0, s**3 * norm3_0
        if conditions == "printed":
            big = abs(h) / (PRINTED_FACTOR * abs(d))  # c with |h| = factor |d| c
            small = PRINTED_FACTOR * abs(h) / abs(d)  # c with |d| c = factor |h|
        else:
            big = h * h / (CORRECTED_FACTOR * abs(d))  # c with h^2 = factor |d| c
            small = CORRECTED_FACTOR * h * h / abs(d)
        if h > 0:
            yield Probe(1, conditions, h, d, n3, big / n3)
        else:
            yield Probe(3, conditions, h, d, n3, big / n3)
        if h > 0 or conditions == "corrected":
            yield Probe(2, conditions, h, d, n3, small / n3)


def representable(probe: Probe, dtype: str, margin: float = 1e6) -> bool:
    """Whether the probe's scalars and the intermediate ``h^2`` and ``|d| c`` stay well
    inside ``dtype``'s normal range (away from underflow and overflow), so that a probe
    tests the formula and not the floating-point range."""
    info = np.finfo(np.dtype(dtype))
    values = [
        probe.h,
        probe.d,
        probe.norm3,
        probe.sigma,
        probe.c,
        probe.h**2,
        abs(probe.d) * probe.c,
        probe.exact,
    ]
    lo, hi = float(info.tiny) * margin, float(info.max) / margin
    return all(lo <= abs(v) <= hi for v in values)


def _cases(which: str) -> list[tuple[object, str]]:
    """Eq 41's ``(approximation, condition)`` pairs as registered (``which`` is
    ``"printed"`` or ``"corrected"``), read through the registry's public API."""
    from derive.registry import get

    form = getattr(get("41"), which)
    return [(arg.expr, str(arg.cond)) for arg in form().args]


@cache
def approximations(which: str) -> dict[int, object]:
    """Eq 41's approximations from the registry, as NumPy functions of ``(h, d, c)``
    (``which`` is ``"printed"`` or ``"corrected"``).  They accept complex input, so the
    printed case 2 shows its imaginary value instead of NaN."""
    import sympy as sp

    out = {}
    for i, (expr, _) in enumerate(_cases(which)):
        symbols = {s.name: s for s in expr.free_symbols}
        args = tuple(symbols.get(name, sp.Symbol(name)) for name in ("h", "d", "c"))
        out[i + 1] = sp.lambdify(args, expr, "numpy")
    return out


def conditions_text(which: str) -> dict[int, str]:
    """Eq 41's conditions as registered (``which`` is ``"printed"`` or ``"corrected"``)."""
    return {i + 1: cond for i, (_, cond) in enumerate(_cases(which))}


def approximation_error(probe: Probe, which: str) -> float:
    """Relative error of Eq 41's approximation (printed or corrected) at ``probe``."""
    fn = approximations(which)[probe.case]
    value = complex(fn(complex(probe.h), complex(probe.d), complex(probe.c)))
    exact = probe.exact
    return abs(value - exact) / abs(exact)


def expansion_bound(case: int) -> float:
    """Size of the neglected terms of Eq 41's corrected expansions at
    :data:`CORRECTED_FACTOR` (the tolerance of the corrected approximations).

    With ``rho = h^2 / (|d| c)``: case 1 neglects ``~1 / (2 rho)``, case 2
    ``~1 / sqrt(2 / rho)`` (for ``rho = 1 / factor``), case 3 ``~1 / (4 rho^2)``.
    """
    f = CORRECTED_FACTOR
    return {1: 1.0 / f, 2: 1.0 / np.sqrt(f), 3: 1.0 / f**2 + 1e-13}[case]
