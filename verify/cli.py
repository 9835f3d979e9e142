"""Command line: ``python -m verify report [--quick] [--backend cpu|gpu] [--out DIR]``.

Also ``lowrank verify ...``, registered through the entry point of :func:`register`.
Exit status: 0 when every corrected kernel passes, 1 when any fails (errata alone never
fail a run), 2 for usage errors (an output folder that cannot be written is refused
before the verification runs) and a missing JAX or JAX backend.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main", "build_parser", "register"]


def build_parser(prog: str = "python -m verify") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Check every generated kernel against JAX autodiff and measure the "
        "errata of the paper's printed equations.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="run the verification and write report.{md,html,json}")
    rep.add_argument(
        "--quick",
        action="store_true",
        help="the small sweep, about 16 cases (default: the full sweep)",
    )
    rep.add_argument(
        "--backend",
        choices=("cpu", "gpu"),
        default="cpu",
        help="where the JAX references run; gpu needs JAX's CUDA build (default: cpu)",
    )
    rep.add_argument(
        "--kernels-backend",
        choices=("numpy", "jax"),
        default="numpy",
        help="run the generated kernels and drivers on NumPy arrays or on JAX arrays "
        "(on the --backend device) (default: numpy)",
    )
    rep.add_argument(
        "--out", default="reports/verify", help="output folder (default: reports/verify)"
    )
    rep.add_argument("--seed", type=_nonnegative, default=0, help="seed of the sweep (default: 0)")
    rep.add_argument(
        "--random-cases",
        type=_nonnegative,
        default=120,
        help="random architectures in the full sweep (default: 120)",
    )
    rep.add_argument(
        "--reference-dtype",
        choices=("float64", "match"),
        default="float64",
        help="float64 references for all cases, or float32 ones for float32 cases "
        "(default: float64)",
    )
    rep.add_argument(
        "--jobs",
        type=_positive,
        default=min(2, os.cpu_count() or 1),
        help="worker processes for the layer groups, which run beside the sweep's cases "
        "(default: 2, or 1 on one core)",
    )
    rep.add_argument("--quiet", action="store_true", help="no progress bar (default: show one)")
    rep.add_argument(
        "--no-layers",
        action="store_true",
        help="only the ReLU MLP of Appendix B.1, without general activations, conv and "
        "recurrent layers (default: all of them)",
    )
    return parser


def _nonnegative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = _nonnegative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _report(args: argparse.Namespace) -> int:
    from numeric.outputs import OutputPathError, check_output_dir
    from verify.backend import (
        BackendError,
        JaxMissingError,
        quick_compile,
        require_jax,
        select_backend,
    )

    quick_compile()  # before JAX starts its backend
    try:  # before the verification runs: its result must have somewhere to go
        check_output_dir(args.out, "reports")
    except OutputPathError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
        progress=not args.quiet,
        seed=args.seed,
        sweep=sweep,
        layers=not args.no_layers,
        kernels_backend=args.kernels_backend,
        jobs=args.jobs,
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


def register() -> dict:
    """The ``lowrank verify`` command (entry point in the group ``lowrank.commands``).

    Returns a plain dict (see ``numeric.commands``); JAX is needed only when a
    verification runs.
    """
    return {
        "help": "the JAX verification of the kernels (needs the [verify] extra)",
        "main": lambda argv: main(argv, prog="lowrank verify"),
        "requires": ("jax",),
        "extra": "verify",
    }


def main(argv: list[str] | None = None, prog: str = "python -m verify") -> int:
    """Entry point; returns the exit status."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on usage errors and --help
        return int(exc.code or 0)
    if args.command == "report":
        return _report(args)
    parser.error(f"unknown command {args.command}")  # pragma: no cover
    return 2  # pragma: no cover
