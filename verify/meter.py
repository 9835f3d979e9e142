"""Measurements of one case of the layer checks (shared by :mod:`verify.layers` and
:mod:`verify.stacks`): float64 comparisons against a reference and erratum records."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from verify.cases import TOLERANCES
from verify.errata import ErratumMeasurement
from verify.measure import Measurement, compare, failed

__all__ = ["TOL", "_Meter", "_np", "_rel"]

TOL = TOLERANCES["float64"]


def _np(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


class _Meter:
    """Collects measurements and erratum measurements of one case."""

    def __init__(self, case: str):
        self.case = case
        self.ms: list[Measurement] = []
        self.errata: list[ErratumMeasurement] = []

    def m(
        self,
        equation: str,
        quantity: str,
        kernels: str,
        value: Callable[[], object],
        reference: object,
        per_sample: bool = False,
    ) -> None:
        try:
            ref = reference() if callable(reference) else reference
            got = value()
            self.ms.append(
                compare(
                    equation, quantity, got, ref, dtype="float64", case=self.case,
                    tolerance=TOL, kernels=kernels, per_sample=per_sample,
                )
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a kernel failure is a verdict
            self.ms.append(
                failed(equation, quantity, "float64", self.case, TOL, kernels,
                       f"{type(exc).__name__}: {exc}")
            )  # fmt: skip

    def e(
        self,
        equation: str,
        kind: str,
        quantity: str,
        printed: Callable[[], object] | None,
        corrected: Callable[[], object],
        reference: object,
        per_sample: bool = False,
        note: str = "",
    ) -> None:
        """An erratum measurement; ``printed=None``: not implementable as printed."""
        ref = reference() if callable(reference) else reference
        corr = _rel(corrected(), ref, per_sample)
        prt = None
        if printed is not None:
            try:
                prt = _rel(printed(), ref, per_sample)
            except Exception as exc:  # noqa: BLE001 - the printed form failing is the finding
                why = f"printed form not evaluable: {type(exc).__name__}: {exc}"[:200]
                note = f"{note}; {why}" if note else why
        self.errata.append(ErratumMeasurement(equation, kind, quantity, self.case, prt, corr, note))


def _rel(value, reference, per_sample: bool = False) -> float:
    val = _np(value)
    if not np.all(np.isfinite(val)):
        raise ValueError("not finite: the printed form reads outside an array's extent")
    m = compare("", "", val, reference, dtype="", case="", tolerance=0.0, per_sample=per_sample)
    if m.error:
        raise ValueError(m.error)
    return m.rel_error
