"""The ``lowrank`` command line.

::

    lowrank train --optimizer sgd --cr --sigma 100 --init plateau --iterations 3000 --out runs/x
    lowrank train --cr --activation tanh ...   # relu (default), tanh, sigmoid, softplus
    lowrank train --model cnn --cr ...         # mlp (default), cnn, rnn
    lowrank train --resume runs/x [--iterations 5000]
    lowrank reproduce fig2 [--out runs/fig2] [--iterations 3000]
    lowrank reproduce results [--iterations 5000 --seeds 3 --jobs 2]
    lowrank reproduce cnn [--iterations 1500 --seeds 3]   # also rnn
    lowrank demo [--out runs/demo]
    lowrank bench ...        # numeric.bench
    lowrank derive ...       # python -m derive ...  (needs the [derive] extra)
    lowrank verify ...       # python -m verify ...  (needs the [verify] extra)

Exit codes: 0 success, 1 failure, 2 usage or missing data, 130 interrupted (the run
directory then holds a checkpoint; continue with ``--resume`` or by repeating the
``reproduce`` command).

The ``derive``, ``verify`` and ``bench`` commands are resolved by name when called, so
the numeric layer imports neither SymPy nor JAX.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]

_FORWARDED = {
    "derive": ("derive.cli", "the equations' self-checks and code generation"),
    "verify": ("verify.cli", "the JAX verification of the kernels"),
    "bench": ("numeric.bench", "timings of the CR step"),
}
_EXTRA_MODULES = {"sympy": "derive", "jax": "verify", "jaxlib": "verify", "jsonschema": "verify"}
EXIT_INTERRUPTED = 130


class CommandUnavailable(RuntimeError):
    """A forwarded command's module (or the extra it needs) is not installed."""


def _load_forwarded(command: str):
    module_name, what = _FORWARDED[command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        need = _EXTRA_MODULES.get(missing)
        if need is not None:
            raise CommandUnavailable(
                f"`lowrank {command}` ({what}) needs the [{need}] extra: "
                f"pip install '.[{need}]'  (missing module: {exc.name})"
            ) from exc
        raise CommandUnavailable(
            f"`lowrank {command}` ({what}) is not available in this installation "
            f"(missing module: {exc.name})"
        ) from exc
    return module


def _forward(command: str, rest: Sequence[str]) -> int:
    try:
        module = _load_forwarded(command)
    except CommandUnavailable as exc:
        print(exc, file=sys.stderr)
        return 2
    code = module.main(list(rest))
    return int(code or 0)


# ------------------------------------------------------------------------------ train


def _hidden(args: argparse.Namespace) -> tuple[int, ...] | None:
    if args.hidden:
        text = args.hidden.lower().replace(" ", "")
        try:
            if "x" in text:  # WIDTHxLAYERS
                width, layers = (int(v) for v in text.split("x"))
                return (width,) * layers
            return tuple(int(h) for h in text.split(",") if h)
        except ValueError:
            raise SystemExit(
                f"--hidden takes widths like 256,128,64 or WIDTHxLAYERS like 128x12, "
                f"got {args.hidden!r}"
            ) from None
    if args.layers is None and args.width is None:
        return None
    return (args.width or 128,) * (args.layers or 12)


_CONFIG_FLAGS = (
    "dataset",
    "data_dir",
    "optimizer",
    "lr",
    "cr",
    "sigma",
    "averaging",
    "nondescent",
    "init",
    "seed",
    "batch_size",
    "decay",
    "curvature",
    "dtype",
    "hidden",
    "layers",
    "width",
    "activation",
    "model",
    "bias",
    "channels",
    "kernel",
    "stride",
    "dense",
    "rnn_width",
)


def _int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise SystemExit(f"{flag} takes comma-separated sizes like 8,16, got {text!r}") from None


def _arch(args: argparse.Namespace) -> dict:
    """CNN/RNN sizes given on the command line (numeric.models.DEFAULTS fills the rest)."""
    given = {
        "channels": _int_list(args.channels, "--channels"),
        "kernel": args.kernel,
        "stride": args.stride,
        "dense": _int_list(args.dense, "--dense"),
        "width": args.rnn_width,
    }
    return {k: v for k, v in given.items() if v is not None}


def _add_train(sub) -> None:
    from numeric.layers import activation_names

    p = sub.add_parser(
        "train",
        help="train one network (optionally with CR) into a run directory",
        description="Train the network of Eqs 10-16 (ReLU, or another activation with "
        "--activation) with a base optimizer, optionally wrapped with cubic regularization "
        "(CR). Defaults follow the paper: ReLU, 12 hidden layers of 128, batch 32, TF1 "
        "optimizer defaults, decay 0.95 per 100 iterations. --model cnn trains two 3 x 3 "
        "conv layers of 8 and 16 channels with stride 2 (28 -> 13 -> 6), a dense layer of 64 "
        "and the softmax; --model rnn a recurrent layer of 64 units reading a 28 x 28 image "
        "as 28 steps of 28 pixels, then the softmax readout (both with biases).",
    )
    p.add_argument(
        "--out", help="run directory (default runs/<optimizer>[-cr]-<init>[-<activation>])"
    )
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    p.add_argument("--dataset", help="mnist-embedded (default), mnist, fashion-mnist, cifar10")
    p.add_argument("--data-dir", help="directory with the dataset's files")
    p.add_argument("--optimizer", choices=["sgd", "adagrad", "adadelta", "adam"])
    p.add_argument(
        "--lr",
        type=float,
        help="initial learning rate (default per optimizer: "
        "sgd 0.01, adagrad 0.1, adadelta 1.0, adam 0.001)",
    )
    p.add_argument("--cr", action="store_true", default=None, help="wrap with CR (Eq 37)")
    p.add_argument("--sigma", type=float, help="CR's cubic weight (default 100 for sgd, else 1000)")
    p.add_argument(
        "--averaging",
        choices=["model", "mean-alpha", "alpha-g"],
        help="CR's mini-batch averaging (default model; the others need sgd)",
    )
    p.add_argument(
        "--nondescent",
        choices=["base", "skip"],
        help="CR step for a non-descent direction: the optimizer's own (default) or none",
    )
    p.add_argument("--init", help="plateau (+-0.1, default), normal (+-0.2) or a bound")
    p.add_argument("--layers", type=int, help="hidden layers (default 12)")
    p.add_argument("--width", type=int, help="hidden width (default 128)")
    p.add_argument(
        "--hidden",
        help="hidden widths, e.g. 256,128,64 or 128x12 (overrides --layers/--width)",
    )
    p.add_argument(
        "--activation",
        choices=activation_names(),
        help="hidden activation (default relu, the paper's)",
    )
    p.add_argument(
        "--model",
        choices=["mlp", "cnn", "rnn"],
        help="mlp: the paper's network (default); cnn: conv layers, dense layers, softmax; "
        "rnn: a recurrent layer reading the image row by row, then the softmax readout",
    )
    p.add_argument(
        "--bias",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="biases on every layer (default: off for mlp, the paper's; on for cnn and rnn)",
    )
    p.add_argument("--channels", help="cnn: conv channels, one per conv layer (default 8,16)")
    p.add_argument("--kernel", type=int, help="cnn: kernel size K for K x K kernels (default 3)")
    p.add_argument("--stride", type=int, help="cnn: stride of every conv layer (default 2)")
    p.add_argument(
        "--dense",
        help="cnn/rnn: dense layers before the softmax, e.g. 64 (default cnn 64, rnn none)",
    )
    p.add_argument("--rnn-width", type=int, help="rnn: recurrent units (default 64)")
    p.add_argument("--seed", type=int, help="seed of the weights and the batches (default 0)")
    p.add_argument("--batch-size", type=int, help="mini-batch size (default 32)")
    p.add_argument(
        "--no-decay",
        dest="decay",
        action="store_false",
        default=None,
        help="constant learning rate",
    )
    p.add_argument(
        "--curvature",
        action="store_true",
        default=None,
        help="record d^T H d for a run without CR too",
    )
    p.add_argument("--dtype", choices=["float64", "float32"])
    p.add_argument("--iterations", type=int, help="number of iterations (default 3000)")
    p.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints (500)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from numeric.data import DatasetError
    from numeric.experiments import dataset_help
    from numeric.training import TrainConfig, TrainingFailed, resume, train

    hidden = _hidden(args)
    try:
        if args.resume:
            given = [f for f in _CONFIG_FLAGS if getattr(args, f, None) is not None]
            if given or args.out:
                flags = ", ".join(
                    "--" + f.replace("_", "-") for f in given + (["out"] if args.out else [])
                )
                print(f"--resume continues the saved configuration; drop {flags}", file=sys.stderr)
                return 2
            result = resume(
                args.resume,
                iterations=args.iterations,
                progress=not args.quiet,
                blas_threads=args.threads,
            )
        else:
            if (args.model or "mlp") != "mlp" and hidden is not None:
                print(
                    "--hidden/--layers/--width size the mlp; for cnn and rnn use --channels, "
                    "--kernel, --stride, --dense, --rnn-width",
                    file=sys.stderr,
                )
                return 2
            values = {
                "dataset": args.dataset,
                "data_dir": args.data_dir,
                "optimizer": args.optimizer,
                "lr": args.lr,
                "cr": args.cr,
                "sigma": args.sigma,
                "averaging": args.averaging,
                "nondescent": args.nondescent,
                "init": args.init,
                "seed": args.seed,
                "batch_size": args.batch_size,
                "decay": args.decay,
                "curvature": args.curvature,
                "dtype": args.dtype,
                "hidden": hidden,
                "activation": args.activation,
                "model": args.model,
                "bias": args.bias,
                "arch": _arch(args) or None,
                "iterations": args.iterations,
                "checkpoint_every": args.checkpoint_every,
            }
            config = TrainConfig(**{k: v for k, v in values.items() if v is not None})
            act = "" if config.activation == "relu" else f"-{config.activation}"
            act += "" if config.model == "mlp" else f"-{config.model}"
            out = args.out or (
                f"runs/{config.optimizer}{'-cr' if config.cr else ''}-{config.init}{act}"
            )
            print(f"{config.label()} -> {out}", flush=True)
            result = train(
                config,
                out,
                progress=not args.quiet,
                overwrite=args.overwrite,
                blas_threads=args.threads,
            )
    except TrainingFailed as exc:
        print(f"training failed: {exc}", file=sys.stderr)
        return 1
    except DatasetError as exc:
        name = args.dataset or "mnist-embedded"
        print(f"error: {exc}\n{dataset_help(name)}", file=sys.stderr)
        return 2
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = result.summary
    print(_summary_line(s, result.run_dir))
    if result.status == "interrupted":
        print(f"interrupted; continue with: lowrank train --resume {result.run_dir}")
        return EXIT_INTERRUPTED
    if result.status == "diverged":
        print(f"diverged: {s.get('diverged')}; the metrics keep every finite iteration")
        return 1
    return 0


def _summary_line(s: dict, run_dir: Path) -> str:
    cross = s.get("iters_to_loss_below") or {}
    parts = [
        f"{s.get('label', '')}: {s.get('status')} after {s.get('iterations_done')} iterations",
        f"loss (average of the last 100) {s.get('final_loss_ma100', float('nan')):.4f}",
    ]
    parts += [f"below {t} at {v if v is not None else '-'}" for t, v in cross.items()]
    if s.get("lr_eff_mean") is not None:
        parts.append(f"mean lr {s['lr_eff_mean']:.3g}")
    flags = {k: v for k, v in (s.get("flag_counts") or {}).items() if v}
    if flags:
        parts.append("flagged steps " + ", ".join(f"{k} {v}" for k, v in flags.items()))
    return "; ".join(parts) + f"  [{run_dir}]"


# -------------------------------------------------------------------------- reproduce


def _add_reproduce(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="the paper's figures (fig1..fig5), or docs/results.md (results, cnn, rnn)",
        description="Run a figure's baseline and CR runs side by side (reusing or resuming "
        "runs already in --out) and draw its two-panel plot. 'all' runs fig1..fig5; "
        "'results' regenerates docs/results.md (see `lowrank reproduce results --help`); "
        "'cnn' and 'rnn' its CNN and RNN sections (`lowrank reproduce cnn --help`).",
    )
    p.add_argument("target", help="fig1, fig2, fig3, fig4, fig5, all, results, cnn or rnn")
    p.add_argument("--out", help="output directory (default runs/<figure>)")
    p.add_argument("--iterations", type=int, help="iterations per run (default 3000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", help="override the figure's dataset (e.g. mnist with --data-dir)")
    p.add_argument("--data-dir", help="directory with the dataset's files (CIFAR-10 for fig3)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace runs of a different configuration in --out",
    )
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_reproduce)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from numeric.data import DatasetError
    from numeric.experiments import FIGURES, reproduce
    from numeric.training import TrainingFailed

    names = list(FIGURES) if args.target == "all" else [args.target]
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        print(
            f"unknown target {args.target!r}; choose from {', '.join(FIGURES)}, all, results",
            file=sys.stderr,
        )
        return 2
    code = 0
    for name in names:
        out = Path(args.out) / name if (args.out and len(names) > 1) else args.out
        try:
            res = reproduce(
                name,
                out,
                iterations=args.iterations,
                seed=args.seed,
                dataset=args.dataset,
                data_dir=args.data_dir,
                progress=not args.quiet,
                overwrite=args.overwrite,
                blas_threads=args.threads,
            )
        except DatasetError as exc:
            print(f"{name}: skipped: {exc}", file=sys.stderr)
            code = max(code, 2)
            continue
        except FileExistsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except TrainingFailed as exc:
            print(f"{name}: training failed: {exc}", file=sys.stderr)
            return 1
        for run in (res.baseline, res.cr):
            if run is not None:
                print(_summary_line(run.summary, run.run_dir))
        if res.status != "completed":
            print(f"{name}: interrupted; repeat the command to continue", file=sys.stderr)
            return EXIT_INTERRUPTED
        print(f"{name}: plot {res.plot}")
    return code


# ------------------------------------------------------------------------------- demo


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job: derive self-checks, quick verification, plateau training",
        description="(1) the derive layer's self-checks and equation table, (2) the quick "
        "JAX verification report (skipped when JAX is absent), (3) SGD against CR-SGD from "
        "the plateau start on the embedded MNIST, with the two-panel plot.",
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument(
        "--iterations",
        type=int,
        default=1500,
        help="iterations of each training run (default 1500)",
    )
    p.add_argument("--skip-derive", action="store_true")
    p.add_argument("--skip-verify", action="store_true")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)


def _banner(text: str) -> None:
    print(f"\n{'=' * 78}\n{text}\n{'=' * 78}", flush=True)


def _demo_step(name: str, fn) -> int | str:
    """Run one step of the demo; an exception fails the step, not the demo."""
    try:
        return fn()
    except KeyboardInterrupt:
        raise
    except Exception:  # report and go on with the next step
        traceback.print_exc()
        print(f"{name}: failed (traceback above); continuing", flush=True)
        return 1


def _cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    codes: dict[str, int | str] = {}

    def derive_step() -> int | str:
        try:
            derive_cli = _load_forwarded("derive")
        except CommandUnavailable as exc:
            print(exc)
            return 2
        check_args = ["check", "--json", str(out / "derive-check.json")]
        if args.quiet:
            check_args.append("--quiet")
        # regenerate every kernel module in memory and compare with the checked-in code
        rc_generate = int(derive_cli.main(["generate", "--check"]) or 0)
        rc = int(derive_cli.main(check_args) or 0)
        rc_table = int(derive_cli.main(["table"]) or 0)
        return max(rc_generate, rc, rc_table)

    def verify_step() -> int | str:
        try:
            verify_cli = _load_forwarded("verify")
        except CommandUnavailable as exc:
            print(f"skipped: {exc}")
            return "skipped"
        return int(verify_cli.main(["report", "--quick", "--out", str(out / "verify")]) or 0)

    try:
        if not args.skip_derive:
            _banner(
                "1/3  derive: regenerate and compare the kernels, self-check every equation, "
                "print the equation table"
            )
            codes["derive"] = _demo_step("derive", derive_step)
        if not args.skip_verify:
            _banner("2/3  verify: quick report of the generated kernels against JAX")
            codes["verify"] = _demo_step("verify", verify_step)
        if not args.skip_train:
            _banner(
                f"3/3  training: SGD vs CR-SGD from the plateau start, {args.iterations} iterations"
            )
            codes["train"] = _demo_step(
                "train", lambda: _demo_train(out, args.iterations, not args.quiet)
            )
    except KeyboardInterrupt:
        codes["interrupted"] = EXIT_INTERRUPTED

    _banner(f"demo finished in {time.perf_counter() - t0:.0f} s; outputs under {out}")
    for step, code in codes.items():
        print(f"  {step:<11} {'ok' if code == 0 else code}")
    numeric = [c for c in codes.values() if isinstance(c, int)]
    if EXIT_INTERRUPTED in numeric:
        return EXIT_INTERRUPTED
    return 1 if any(c != 0 for c in numeric) else 0


def _demo_train(out: Path, iterations: int, progress: bool) -> int:
    from numeric.data import DatasetError
    from numeric.experiments import dataset_help, reproduce

    try:
        res = reproduce(
            "fig2", out / "train", iterations=iterations, progress=progress, overwrite=True
        )
    except DatasetError as exc:
        print(f"error: {exc}\n{dataset_help('mnist-embedded')}")
        return 2
    for run in (res.baseline, res.cr):
        if run is not None:
            print(_summary_line(run.summary, run.run_dir))
    if res.status != "completed":
        return EXIT_INTERRUPTED
    print(f"plot: {res.plot}")
    return 0


# ------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lowrank`` (forwarded commands take any arguments)."""
    parser = argparse.ArgumentParser(
        prog="lowrank",
        description="Low-rank derivatives of deep networks: CR training, the paper's "
        "experiments, and the derive/verify layers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)
    _add_train(sub)
    _add_reproduce(sub)
    for name, (_, what) in _FORWARDED.items():
        sub.add_parser(name, help=f"{what} (arguments are passed on)", add_help=False)
    _add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lowrank`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _FORWARDED:
        return _forward(argv[0], argv[1:])
    if argv[:1] == ["reproduce"] and argv[1:2] in (["cnn"], ["rnn"]):
        from numeric.model_results import main as models_main

        try:
            return models_main(argv[2:], model=argv[1], prog=f"lowrank reproduce {argv[1]}")
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    if argv[:2] == ["reproduce", "results"]:
        from numeric.results import main as results_main

        try:
            return results_main(argv[2:], prog="lowrank reproduce results")
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
