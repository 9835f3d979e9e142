"""Error measurements and their aggregation into per-quantity results.

Relative error of one comparison = max abs error / max(norm of the reference block,
tiny), the norm being the Frobenius norm of the block (the absolute value for a scalar).
Per-sample quantities are compared sample by sample (each sample's block against its
own norm).  A result aggregates the maximum over cases of one (equation, quantity,
dtype).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "TINY",
    "Measurement",
    "Result",
    "compare",
    "failed",
    "guarded",
    "aggregate",
]

TINY = float(np.finfo(np.float64).tiny)


@dataclass
class Measurement:
    """One comparison of a kernel with its reference on one case."""

    equation: str
    quantity: str
    dtype: str
    case: str
    abs_error: float
    rel_error: float
    tolerance: float
    kernels: str = ""
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.rel_error <= self.tolerance


def _as_array(value: object) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def compare(
    equation: str,
    quantity: str,
    value: object,
    reference: object,
    *,
    dtype: str,
    case: str,
    tolerance: float,
    kernels: str = "",
    per_sample: bool = False,
    scale: object = None,
) -> Measurement:
    """Compare a kernel output with its reference.

    Parameters
    ----------
    value, reference : array-like
        Same shape required (no broadcasting); the reference is float64.
    per_sample : bool
        The leading axis is the batch: relative errors are per sample, each against
        the norm of that sample's reference block.
    scale : float or array of shape (batch,), optional
        Use this size instead of the reference's norm (for scalars that are
        contractions, whose value may cancel: see :mod:`verify.checks`).
    """
    ref = _as_array(reference)
    try:
        val = _as_array(value)
    except (TypeError, ValueError) as exc:
        return failed(equation, quantity, dtype, case, tolerance, kernels, f"not an array: {exc}")
    if val.shape != ref.shape:
        return failed(
            equation,
            quantity,
            dtype,
            case,
            tolerance,
            kernels,
            f"shape {val.shape} differs from the reference's {ref.shape}",
        )
    diff = np.abs(val - ref)
    if not np.all(np.isfinite(val)):
        return Measurement(
            equation,
            quantity,
            dtype,
            case,
            math.inf,
            math.inf,
            tolerance,
            kernels,
            "non-finite kernel output",
        )
    if per_sample and ref.ndim >= 1 and ref.shape[0] > 0:
        axes = tuple(range(1, ref.ndim))
        err_b = diff.max(axis=axes) if axes else diff
        norm_b = np.sqrt((ref**2).sum(axis=axes)) if axes else np.abs(ref)
        if scale is not None:
            norm_b = np.broadcast_to(np.asarray(scale, dtype=np.float64), norm_b.shape)
        rel = float(np.max(err_b / np.maximum(norm_b, TINY)))
    else:
        norm = float(np.sqrt(np.sum(ref**2))) if scale is None else float(scale)
        rel = float(diff.max(initial=0.0) / max(norm, TINY))
    return Measurement(
        equation, quantity, dtype, case, float(diff.max(initial=0.0)), rel, tolerance, kernels
    )


def failed(
    equation: str,
    quantity: str,
    dtype: str,
    case: str,
    tolerance: float,
    kernels: str,
    message: str,
) -> Measurement:
    """A comparison that could not be made (the kernel raised, or a shape is wrong)."""
    return Measurement(
        equation, quantity, dtype, case, math.inf, math.inf, tolerance, kernels, message
    )


def guarded(
    equation: str, quantity: str, dtype: str, case: str, tolerance: float, kernels: str
) -> Callable[[Callable[[], Measurement]], Measurement]:
    """Run a comparison, turning an exception of the kernel into a failed measurement."""

    def run(thunk: Callable[[], Measurement]) -> Measurement:
        try:
            return thunk()
        except Exception as exc:  # noqa: BLE001 - any kernel failure is a verdict
            return failed(
                equation,
                quantity,
                dtype,
                case,
                tolerance,
                kernels,
                f"{type(exc).__name__}: {exc}",
            )

    return run


@dataclass
class Result:
    """Aggregate of one (equation, quantity, dtype) over cases.

    ``tolerance`` is the stated one (the same for every comparison of a result).
    """

    equation: str
    quantity: str
    dtype: str
    tolerance: float
    kernels: str = ""
    comparisons: int = 0
    failures: int = 0
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    worst_case: str = ""
    messages: list[str] = field(default_factory=list)
    case_names: set[str] = field(default_factory=set)

    @property
    def cases(self) -> int:
        return len(self.case_names)

    @property
    def status(self) -> str:
        return "pass" if self.failures == 0 and self.comparisons > 0 else "fail"

    def add(self, m: Measurement) -> None:
        self.comparisons += 1
        self.case_names.add(m.case)
        if not m.passed:
            self.failures += 1
            if m.error and len(self.messages) < 3:
                self.messages.append(f"{m.case}: {m.error}")
        rel = m.rel_error if not math.isnan(m.rel_error) else math.inf
        if rel >= self.max_rel_error:
            self.max_rel_error = rel
            self.worst_case = m.case
        self.max_abs_error = max(
            self.max_abs_error, m.abs_error if not math.isnan(m.abs_error) else math.inf
        )


def _order(equation: str) -> tuple:
    head = equation.split("-")[0].split(".")[0]
    digits = "".join(ch for ch in head if ch.isdigit())
    return (0 if head[:1].isdigit() else 1, int(digits) if digits else 0, equation)


def aggregate(measurements: Iterable[Measurement]) -> list[Result]:
    """Group measurements by (equation, quantity, dtype), in paper order."""
    results: dict[tuple[str, str, str], Result] = {}
    for m in measurements:
        key = (m.equation, m.quantity, m.dtype)
        if key not in results:
            results[key] = Result(m.equation, m.quantity, m.dtype, m.tolerance, m.kernels)
        results[key].add(m)
    return sorted(results.values(), key=lambda r: _order(r.equation))
