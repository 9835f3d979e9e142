"""verify: every generated kernel checked against JAX autodiff; verification reports.

Run ``python -m verify report --quick`` (or ``lowrank verify report --quick``); the full
sweep drops ``--quick``.  Reports: ``report.md``, ``report.html`` and ``report.json``
(schema: ``verify/report_schema.json``).  Exit status 1 when a corrected kernel fails,
2 without JAX or without the requested backend; errata alone never fail a run.

Modules, one job each:

* :mod:`verify.cases` - architectures and seeded sweeps; inputs kept off the ReLU kinks;
* :mod:`verify.reference` - an independent JAX network of Eqs 10-16 (padded to one
  compiled shape) and its autodiff derivatives; Eq 37's exact root by bisection;
* :mod:`verify.kernelrun` - the kernels' outputs for one case (module under test is a
  parameter);
* :mod:`verify.checks` - one comparison per equation and quantity;
* :mod:`verify.cr_limits` - Eqs 37 and 41 in the regimes Eq 41 states;
* :mod:`verify.errata` - printed forms against corrected ones on the same inputs;
* :mod:`verify.measure` - relative errors, float32 conditioning, aggregation;
* :mod:`verify.runner`, :mod:`verify.report`, :mod:`verify.cli`;
* :mod:`verify.mutation` - mutated copies of the kernels (a verifier must be able to fail).

Method in brief.  Relative error = max abs error / Frobenius norm of the reference block
(per sample for per-sample quantities); tolerance 1e-10 for float64 kernels and 1e-4 for
float32 ones, whose inputs are the float32-rounded arrays and whose reference is float64
on those same values (``--reference-dtype match``: a float32 reference); tolerances are
never widened.  The paper's Gauss-Newton forms with ``d2f/dp2`` (Eqs 34-36, Table 2,
C7) cancel on nearly equal logits and lose accuracy in float32: their float32
comparisons are numerical notes, while the factored forms the drivers use
(``d2f/dp2 = R^T R``, C15-C23) are verdicts in both dtypes.

JAX is imported only when a verification runs, so ``import verify`` works without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_verification"]


def run_verification(*args: Any, **kwargs: Any) -> Any:
    """See :func:`verify.runner.run_verification`."""
    from verify.runner import run_verification as run

    return run(*args, **kwargs)
