"""Command line: ``python -m verify report [--quick] [--backend cpu|gpu] [--out DIR]``.

Exit status: 0 when every corrected kernel passes, 1 when any fails (errata alone never
fail a run), 2 for usage errors and a missing JAX or JAX backend.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m verify",
        description="Check every generated kernel against JAX autodiff and measure the "
        "errata of the paper's printed equations.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="run the verification and write report.{md,html,json}")
    rep.add_argument("--quick", action="store_true", help="the small sweep (about 16 cases)")
    rep.add_argument(
        "--backend",
        choices=("cpu", "gpu"),
        default="cpu",
        help="where the JAX references run (gpu needs JAX's CUDA build)",
    )
    rep.add_argument(
        "--kernels-backend",
        choices=("numpy", "jax"),
        default="numpy",
        help="run the generated kernels and drivers on NumPy arrays or on JAX arrays "
        "(on the --backend device) (default numpy)",
    )
    rep.add_argument("--out", default="reports/verify", help="output folder")
    rep.add_argument("--seed", type=int, default=0, help="seed of the sweep")
    rep.add_argument(
        "--random-cases", type=int, default=120, help="random architectures in the full sweep"
    )
    rep.add_argument(
        "--reference-dtype",
        choices=("float64", "match"),
        default="float64",
        help="float64 references for all cases, or float32 ones for float32 cases",
    )
    rep.add_argument("--no-progress", action="store_true", help="no progress bar")
    rep.add_argument(
        "--no-layers",
        action="store_true",
        help="only the ReLU MLP of Appendix B.1 (skip general activations, conv, recurrent)",
    )
    return parser


def _report(args: argparse.Namespace) -> int:
    from verify.backend import BackendError, JaxMissingError, require_jax, select_backend

    try:
        require_jax()
        select_backend(args.backend)
    except JaxMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from verify import report
    from verify.cases import full_sweep, quick_sweep
    from verify.runner import run_verification

    if args.quick:
        cases, sweep = quick_sweep(args.seed), "quick"
    else:
        cases, sweep = full_sweep(args.seed, args.random_cases), "full"
    outcome = run_verification(
        cases,
        backend=args.backend,
        reference_dtype=args.reference_dtype,
        progress=not args.no_progress,
        seed=args.seed,
        sweep=sweep,
        layers=not args.no_layers,
        kernels_backend=args.kernels_backend,
    )
    report.write(outcome, args.out)
    failing = outcome.failed()
    print(
        f"{'PASS' if not failing else 'FAIL'}: {len(outcome.results) - len(failing)} of "
        f"{len(outcome.results)} checks pass over {len(cases)} cases in "
        f"{outcome.context['duration_s']:.1f} s; "
        f"{sum(e.measured for e in outcome.errata)} errata measured; "
        f"reports in {args.out}/report.{{md,html,json}}"
    )
    for r in failing:
        print(
            f"  FAIL Eq {r.equation}: {r.quantity} [{r.dtype}] max rel error "
            f"{r.max_rel_error:.2e} > {r.tolerance:.0e} ({r.worst_case})"
        )
    return 1 if failing else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on usage errors and --help
        return int(exc.code or 0)
    if args.command == "report":
        return _report(args)
    parser.error(f"unknown command {args.command}")  # pragma: no cover
    return 2  # pragma: no cover
