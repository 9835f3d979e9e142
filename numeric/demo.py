"""``lowrank demo``: derive, verify and train in one go, composed through entry points.

The demo runs (1) the derive layer's drift check, self-checks and equation table, (2)
the quick JAX verification report and (3) SGD against CR-SGD from the plateau start.
Steps 1 and 2 are the ``derive`` and ``verify`` commands those layers register
(:mod:`numeric.commands`); this module never imports them.  A step whose layer or extra
is not installed (a ``[train]``-only installation) is skipped with a message saying
what to install, and does not fail the demo.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from numeric.sizes import positive_int

__all__ = ["add_demo", "plateau_story", "run_demo"]

EXIT_INTERRUPTED = 130


def add_demo(sub) -> None:
    """Add the ``demo`` subcommand to ``lowrank``'s subparsers."""
    p = sub.add_parser(
        "demo",
        help="the main job: derive self-checks, quick verification, plateau training",
        description="(1) the derive layer's self-checks and equation table, (2) the quick "
        "JAX verification report, (3) SGD against CR-SGD from the plateau start on the "
        "embedded MNIST, with the two-panel plot. A step whose extra is not installed "
        "([derive] for 1, [verify] for 2) is skipped with a message and does not fail the "
        "demo.",
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument(
        "--iterations",
        type=positive_int,
        default=1500,
        help="iterations of each training run (default: 1500)",
    )
    p.add_argument("--skip-derive", action="store_true", help="skip step 1 (default: run it)")
    p.add_argument("--skip-verify", action="store_true", help="skip step 2 (default: run it)")
    p.add_argument("--skip-train", action="store_true", help="skip step 3 (default: run it)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: show them)")
    p.set_defaults(func=run_demo)


def _banner(text: str) -> None:
    print(f"\n{'=' * 78}\n{text}\n{'=' * 78}", flush=True)


def _step(name: str, fn: Callable[[], int | str]) -> int | str:
    """Run one step; an exception fails the step, not the demo."""
    try:
        return fn()
    except KeyboardInterrupt:
        raise
    except SystemExit as exc:  # a command's argument parser
        return exc.code if isinstance(exc.code, int) else 1
    except Exception:  # report and go on with the next step
        traceback.print_exc()
        print(f"{name}: failed (traceback above); continuing", flush=True)
        return 1


def _available(commands: dict, name: str):
    """The registered command, or None after saying why the step is skipped."""
    command = commands.get(name)
    if command is None:
        print(
            f"skipped: no `{name}` command is registered in this installation "
            f"(pip install '.[{name}]' registers it through the package's entry points)"
        )
        return None
    reason = command.unavailable()
    if reason is not None:
        print(f"skipped: {reason}")
        return None
    return command


def run_demo(args: argparse.Namespace, commands: dict) -> int:
    """Run the demo's steps; ``commands`` are the registered ones (name -> Plugin).

    Returns 2 at once, with one line, when ``--out`` cannot hold the outputs."""
    from numeric.outputs import OutputPathError, check_output_dir

    out = Path(args.out)
    try:  # before minutes of work, not after
        check_output_dir(out, "demo's outputs")
    except OutputPathError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    codes: dict[str, int | str] = {}

    def derive_step() -> int | str:
        derive = _available(commands, "derive")
        if derive is None:
            return "skipped"
        check_args = ["check", "--json", str(out / "derive-check.json")]
        if args.quiet:
            check_args.append("--quiet")
        # regenerate every kernel module in memory and compare with the checked-in code
        rc_generate = derive.run(["generate", "--check"])
        rc = derive.run(check_args)
        rc_table = derive.run(["table"])
        return max(rc_generate, rc, rc_table)

    def verify_step() -> int | str:
        verify = _available(commands, "verify")
        if verify is None:
            return "skipped"
        argv = ["report", "--quick", "--out", str(out / "verify")]
        if args.quiet:
            argv.append("--quiet")
        return verify.run(argv)

    try:
        if not args.skip_derive:
            _banner(
                "1/3  derive: regenerate and compare the kernels, self-check every equation, "
                "print the equation table"
            )
            codes["derive"] = _step("derive", derive_step)
        if not args.skip_verify:
            _banner("2/3  verify: quick report of the generated kernels against JAX")
            codes["verify"] = _step("verify", verify_step)
        if not args.skip_train:
            _banner(
                f"3/3  training: SGD vs CR-SGD from the plateau start, {args.iterations} iterations"
            )
            codes["train"] = _step("train", lambda: _train(out, args.iterations, not args.quiet))
    except KeyboardInterrupt:
        codes["interrupted"] = EXIT_INTERRUPTED

    _banner(f"demo finished in {time.perf_counter() - t0:.0f} s; outputs under {out}")
    for step, code in codes.items():
        print(f"  {step:<11} {'ok' if code == 0 else code}")
    numeric = [c for c in codes.values() if isinstance(c, int)]
    if EXIT_INTERRUPTED in numeric:
        return EXIT_INTERRUPTED
    return 1 if any(c != 0 for c in numeric) else 0


def _train(out: Path, iterations: int, progress: bool) -> int:
    from numeric.data import DatasetError
    from numeric.experiments import dataset_help, reproduce
    from numeric.training.evaluation import summary_line

    try:
        res = reproduce(
            "fig2", out / "train", iterations=iterations, progress=progress, overwrite=True
        )
    except DatasetError as exc:
        print(f"error: {exc}\n{dataset_help('mnist-embedded')}")
        return 2
    for run in (res.baseline, res.cr):
        if run is not None:
            print(summary_line(run.summary, run.run_dir))
    if res.status != "completed" or res.baseline is None or res.cr is None:
        return EXIT_INTERRUPTED
    for line in plateau_story(res.baseline.summary, res.cr.summary):
        print(line)
    print(f"plot: {res.plot}")
    return 0


def _left_at(summary: dict) -> int | None:
    return (summary.get("iters_to_loss_below") or {}).get("2.0")


def _percent(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def plateau_story(baseline: dict, cr: dict) -> list[str]:
    """What the training step showed, in three lines, from the two runs' summaries:
    where CR-SGD left the first plateau, its test accuracy, and whether it then sat on a
    second plateau (a collapsed last hidden layer, by the ``eff_rank`` it logged)."""
    left, base_left = _left_at(cr), _left_at(baseline)
    base = "SGD never did" if base_left is None else f"SGD at iteration {base_left}"
    done = cr.get("iterations_done")
    if left is None:
        first = f"CR-SGD did not leave the first plateau in {done} iterations ({base})."
    else:
        first = (
            f"CR-SGD left the first plateau at iteration {left} (its 100-iteration loss "
            f"average fell below 2.0; {base})."
        )
    acc = cr.get("test_accuracy")
    second = (
        f"CR-SGD's test accuracy after iteration {cr.get('test_iteration')}: {_percent(acc)} "
        f"(SGD: {_percent(baseline.get('test_accuracy'))})."
    )
    rank, logits = cr.get("eff_rank"), cr.get("eff_rank_logits")
    base_rank = baseline.get("eff_rank")
    ranks = (
        "no effective rank was logged"
        if rank is None
        else f"the effective rank of its last hidden layer on 512 test images is {rank:.1f} "
        f"(centred logits {'-' if logits is None else f'{logits:.1f}'}; SGD's, still on "
        f"the first plateau, {'-' if base_rank is None else f'{base_rank:.1f}'})"
    )
    if left is not None and acc is not None and acc < 0.5:
        third = (
            f"It then sits on a second plateau: {ranks}, so the network answers almost the "
            "same for every image. On the first plateau d^T H d is near zero, Eq 37 takes "
            "steps ~100x SGD's that amplify one activation direction; see docs/results.md, "
            '"Effective rank at the end of the runs".'
        )
    else:
        third = (
            f"Diagnostics: {ranks}. In other seeds CR-SGD collapses onto a second plateau "
            '(effective rank 1); see docs/results.md, "Effective rank at the end of the runs".'
        )
    return [first, second, third]
