"""Training runs: configuration, the loop, checkpoints, resume.

A run directory (see :mod:`numeric.rundir` for how it is written) holds

``config.json``
    ``config``: the :class:`TrainConfig` with every default filled in; ``data``: the
    name, split, size and files of the training and test data the run loaded.
``metrics.csv``
    One row per iteration (columns :data:`numeric.metrics.COLUMNS`), appended in chunks
    of ``flush_every`` rows and at every checkpoint, interruption and failure.  The
    test columns are filled every ``eval_every`` iterations and after the last one.
``summary.json``
    Status (``"running"``, ``"completed"``, ``"interrupted"``, ``"diverged"``,
    ``"failed"``) and the key numbers of the run (:func:`summarize`); rewritten at
    every checkpoint.
``checkpoints/ckpt-XXXXXX.npz``
    Weights, optimizer state, sampler position, step counter, the metric tails the
    moving averages need and a copy of every metric row so far, after ``XXXXXX``
    iterations; the newest ``keep`` are kept.
``.lock``
    Held by the one process that writes the run; a second one is refused.

``config.json``, ``summary.json`` and the checkpoints are replaced atomically.  Nothing
is written before a run is accepted: the configuration, the output directory and the
data are checked first, so a refused or failed start leaves no half-made run behind.

Reproducibility: the weights are drawn from ``np.random.default_rng(seed)`` and the
batches from a :class:`~numeric.data.BatchSampler` seeded with ``seed`` (a new
permutation every epoch, so the label-sorted embedded MNIST is shuffled); nothing else
is random.  A run interrupted at any point and resumed from its last checkpoint with
:func:`resume` therefore reproduces the uninterrupted run bit for bit (all columns but
the timings).  The rows after the checkpoint are recomputed on resume; the rows before
it are checked against the checkpoint's copy and repaired from it when one is missing,
repeated or torn (:func:`numeric.metrics.reconcile`), never deleted.

Interruption: the first Ctrl-C or SIGTERM stops after the current iteration; a second one
(or any ``KeyboardInterrupt``) stops at once (:mod:`numeric.stopping`).  Either way every
completed iteration's metrics are written, a checkpoint of the last completed iteration
is saved and the summary says ``"interrupted"``.  An exception inside the loop does the
same with ``"failed"`` and is re-raised as :class:`TrainingFailed`.  A run whose loss or
gradient stops being finite (:class:`numeric.cr.Diverged`) ends with ``"diverged"``: its
metrics hold every finite iteration, and it is a result (not resumed by
:func:`ensure_run`), not an error.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from numeric.cr import CR, FLAGS, VARIANTS, Baseline, Diverged, Method, MethodState, StepInfo
from numeric.data import BatchSampler, Dataset, load_dataset
from numeric.layers import get_activation
from numeric.loop import Iteration
from numeric.metrics import (
    COLUMNS,
    arrays_to_rows,
    format_row,
    header_line,
    moving_average,
    read_metrics,
    reconcile,
    rows_to_arrays,
    scan_metrics,
)
from numeric.model import Network, init_bound
from numeric.models import model_arch, network_for
from numeric.optimizers import (
    OPTAX_OPTIMIZERS,
    OPTIMIZERS,
    get_optimizer,
    state_from_arrays,
    state_to_arrays,
)
from numeric.rundir import (
    CHECKPOINT_PATTERN,
    RunDirError,
    RunLocked,
    atomic_write,
    clear_run_files,
    create_directory,
    directory_state,
    read_json,
    run_lock,
    write_json,
)
from numeric.schedules import Constant, ExponentialDecay
from numeric.stepping import eval_network
from numeric.stopping import StopFlag

__all__ = [
    "COLUMNS",
    "DEFAULT_LR",
    "DEFAULT_SIGMA",
    "LOSS_THRESHOLDS",
    "PLATEAU_SGD_LR",
    "RunDirError",
    "RunLocked",
    "RunResult",
    "TrainConfig",
    "TrainingFailed",
    "build_method",
    "config_key",
    "default_lr",
    "ensure_run",
    "evaluate",
    "latest_checkpoint",
    "load_config",
    "load_test_data",
    "load_training_data",
    "moving_average",
    "read_metrics",
    "resume",
    "summarize",
    "summary_line",
    "train",
]

#: The paper's initial learning rates per optimizer (Figures 1, 4, 5; Adam: TF default).
DEFAULT_LR = {"sgd": 0.01, "adagrad": 0.1, "adadelta": 1.0, "adam": 0.001}
#: optax's learning-rate-free methods take their own defaults (1.0 for most of them)
OPTAX_LR = {"schedule_free_adamw": 0.0025, "sophia": 0.001}
#: SGD's initial rate from the plateau start (Figure 2, the plateau experiment).
PLATEAU_SGD_LR = 0.02
#: The paper's sigma per optimizer (100 for SGD, 1000 for the adaptive ones).
DEFAULT_SIGMA = {"sgd": 100.0, "adagrad": 1000.0, "adadelta": 1000.0, "adam": 1000.0}
#: Loss levels whose first crossing (by the period-100 moving average) is recorded.
LOSS_THRESHOLDS = (2.0, 1.0)
#: Test rows evaluated per forward pass.
EVAL_CHUNK = 1000

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_lr(optimizer: str, init: str | float = "plateau") -> float:
    """The paper's initial learning rate for ``optimizer`` from the start ``init``.

    SGD from the plateau start uses Figure 2's 0.02 (the plateau experiment), SGD from
    any other start Figure 1's 0.01; the adaptive optimizers use :data:`DEFAULT_LR`
    (Figures 4 and 5 start on the plateau with those rates).
    """
    optimizer = str(optimizer).lower()
    if optimizer == "sgd" and isinstance(init, str) and init.strip().lower() == "plateau":
        return PLATEAU_SGD_LR
    if optimizer in OPTAX_OPTIMIZERS:
        return OPTAX_LR.get(optimizer, 1.0)
    return DEFAULT_LR[optimizer]


# ---------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run (saved as ``config.json``).

    Attributes
    ----------
    dataset : str
        ``"mnist-embedded"`` (default), ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"``
        (see :func:`numeric.data.load_dataset`; each name is that dataset, never another).
    data_dir : str or None
        Directory with the dataset's files (None: the dataset's standard location).
    hidden : tuple of int
        Hidden widths; the paper's networks are ``(128,) * 12`` (12 layers of 128).
    activation : str
        Hidden activation, a name of :func:`numeric.layers.activation_names`:
        ``"relu"`` (the paper's, default), ``"tanh"``, ``"sigmoid"``, ``"softplus"``.
        CR's ``d^T H d`` then includes the B.3 term of the activation's ``A''``.
    init : str or float
        ``"plateau"`` (uniform in +-0.1), ``"normal"`` (+-0.2) or a bound.
    seed : int
        Seed of the initial weights and of the batch order.
    batch_size : int
        Mini-batch size (the paper: 32).
    optimizer : str
        ``"sgd"``, ``"adagrad"``, ``"adadelta"`` or ``"adam"`` (TF1 defaults).
    lr : float or None
        Initial learning rate; None: :func:`default_lr` (the paper's rate for the
        optimizer and start: SGD 0.02 from the plateau start as in Figure 2, else
        :data:`DEFAULT_LR`).
    decay : bool
        Exponential decay ``lr * decay_rate ** (step / decay_steps)`` (TF1
        ``exponential_decay``, not staircase).  Under CR it only affects flagged steps.
    decay_rate, decay_steps : float
        0.95 per 100 iterations (Appendix A).
    cr : bool
        Wrap the optimizer with cubic regularization (:class:`numeric.cr.CR`).
    sigma : float or None
        CR's cubic weight; None: :data:`DEFAULT_SIGMA`.
    averaging : str
        ``"model"``, ``"mean-alpha"`` or ``"alpha-g"`` (:mod:`numeric.cr`).
    nondescent : str
        ``"base"`` or ``"skip"`` (:mod:`numeric.cr`).
    cr_variant : str
        CR's step-length rule (:mod:`numeric.variants`): ``"paper"`` (Eq 37, default),
        ``"adaptive"``, ``"scale-invariant"``, ``"per-layer"`` or ``"per-variable"``.
    cr_every : int
        Compute CR's step length every ``cr_every`` steps and reuse it in between.
    curvature : bool
        Record ``d^T H d`` for a base-optimizer run too.
    iterations : int
        Number of steps.
    checkpoint_every : int
        Steps between checkpoints.
    eval_every : int
        Steps between evaluations on the test split (and after the last step); 0: never.
    dtype : str
        ``"float64"`` (default) or ``"float32"``.
    model : str
        ``"mlp"`` (the paper's network, default), ``"cnn"`` or ``"rnn"``
        (:mod:`numeric.models`); ``hidden`` sizes the MLP only.
    bias : bool or None
        Biases on every layer; None: the model's default (none for the MLP, on for the
        CNN and the RNN).
    arch : dict
        Sizes of the CNN or RNN (:data:`numeric.models.DEFAULTS`; missing ones default).
    backend : str
        ``"numpy"`` (default) or ``"jax"``: the same kernels and drivers under
        ``jax.jit`` (:mod:`numeric.jax_backend`), on the CPU or a GPU.
    devices : int
        JAX backend: split each batch over this many local devices (0: all of them).
        Results do not depend on it beyond rounding.
    """

    dataset: str = "mnist-embedded"
    data_dir: str | None = None
    hidden: tuple[int, ...] = (128,) * 12
    activation: str = "relu"
    init: str | float = "plateau"
    seed: int = 0
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float | None = None
    decay: bool = True
    decay_rate: float = 0.95
    decay_steps: float = 100.0
    cr: bool = False
    sigma: float | None = None
    averaging: str = "model"
    nondescent: str = "base"
    cr_variant: str = "paper"
    cr_every: int = 1
    curvature: bool = False
    iterations: int = 3000
    checkpoint_every: int = 500
    eval_every: int = 500
    dtype: str = "float64"
    model: str = "mlp"
    bias: bool | None = None
    arch: dict = field(default_factory=dict)
    backend: str = "numpy"
    devices: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", str(self.model).lower())
        object.__setattr__(self, "arch", model_arch(self.model, self.arch))
        object.__setattr__(self, "bias", (self.model != "mlp") if self.bias is None else self.bias)
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "optimizer", str(self.optimizer).lower())
        object.__setattr__(self, "backend", str(self.backend).lower())
        if self.backend not in ("numpy", "jax"):
            raise ValueError(f"backend must be 'numpy' or 'jax', got {self.backend!r}")
        if self.optimizer in OPTAX_OPTIMIZERS:
            if self.backend != "jax":
                raise ValueError(
                    f"{self.optimizer} is optax's: it runs on the JAX backend (--backend jax)"
                )
            if self.cr or self.curvature:
                raise ValueError(
                    f"CR and --curvature wrap this project's optimizers, not {self.optimizer}"
                )
        elif self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; choose from "
                f"{sorted(OPTIMIZERS)} or, with the JAX backend, {list(OPTAX_OPTIMIZERS)}"
            )
        if isinstance(self.devices, bool) or int(self.devices) != self.devices:
            raise ValueError(f"devices must be an integer, got {self.devices!r}")
        object.__setattr__(self, "devices", int(self.devices))
        if self.devices < 0 or (self.devices > 1 and self.backend != "jax"):
            raise ValueError("devices must be >= 0, and more than 1 needs the JAX backend")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden widths must be positive, got {self.hidden}")
        object.__setattr__(self, "activation", str(self.activation).lower())
        get_activation(self.activation)
        init_bound(self.init)
        if self.cr_variant not in VARIANTS:
            raise ValueError(f"cr_variant must be one of {VARIANTS}, got {self.cr_variant!r}")
        for name in (
            "seed", "batch_size", "iterations", "checkpoint_every", "eval_every", "cr_every",
        ):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value:
                raise ValueError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.seed < 0 or self.batch_size < 1 or self.iterations < 0:
            raise ValueError("seed must be >= 0, batch_size >= 1 and iterations >= 0")
        if self.cr_every < 1:
            raise ValueError(f"cr_every must be >= 1, got {self.cr_every}")
        if (self.cr_variant != "paper" or self.cr_every != 1) and not self.cr:
            raise ValueError("cr_variant and cr_every choose CR's step length; they need cr")
        if self.averaging != "model" and (self.cr_variant != "paper" or self.cr_every != 1):
            raise ValueError(
                f"averaging={self.averaging!r} is defined for the paper's CR only "
                "(cr_variant='paper', cr_every=1)"
            )
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")
        if self.eval_every < 0:
            raise ValueError("eval_every must be >= 0 (0: no evaluation)")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr >= 0):
            raise ValueError(f"lr must be finite and >= 0, got {self.lr!r}")
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be positive, got {self.sigma!r}")
        if self.averaging != "model" and (self.model != "mlp" or self.bias):
            raise ValueError(
                f"averaging={self.averaging!r} needs per-sample curvature, implemented for the "
                "bias-free mlp only; use averaging='model'"
            )

    def resolved(self) -> TrainConfig:
        """A copy with ``lr`` and ``sigma`` filled in from the paper's defaults."""
        lr = default_lr(self.optimizer, self.init) if self.lr is None else float(self.lr)
        sigma = DEFAULT_SIGMA.get(self.optimizer, 0.0) if self.sigma is None else float(self.sigma)
        return replace(self, lr=lr, sigma=sigma or None)

    def label(self) -> str:
        """Short human-readable name, e.g. ``"SGD with CR"`` or ``"SGD with CR (tanh)"``."""
        names = {"sgd": "SGD", "adagrad": "Adagrad", "adadelta": "Adadelta", "adam": "Adam"}
        base = names.get(self.optimizer, self.optimizer)
        if self.cr:
            extra = "" if self.averaging == "model" else f", {self.averaging}"
            extra += "" if self.cr_variant == "paper" else f", {self.cr_variant}"
            extra += "" if self.cr_every == 1 else f", every {self.cr_every}"
            base = f"{base} with CR{extra}"
        if self.model != "mlp":
            base = f"{base}, {self.model}"
        return base if self.activation == "relu" else f"{base} ({self.activation})"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_json` (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}")
        return cls(**data)


def build_method(config: TrainConfig) -> Method:
    """The :class:`~numeric.cr.Baseline` or :class:`~numeric.cr.CR` method of a config
    (or an optax method, :class:`numeric.optax.OptaxMethod`, on the JAX backend)."""
    cfg = config.resolved()
    if cfg.optimizer in OPTAX_OPTIMIZERS:
        from numeric import jax_backend as jb
        from numeric import optax as nopt

        if cfg.dtype == "float64":  # before any state is made: optax makes it in JAX's dtype
            jb.enable_x64()
        return nopt.baseline(cfg.optimizer, cfg.lr)
    opt = get_optimizer(cfg.optimizer)
    schedule = (
        ExponentialDecay(cfg.lr, cfg.decay_steps, cfg.decay_rate) if cfg.decay else Constant(cfg.lr)
    )
    if cfg.cr:
        return CR(
            opt,
            cfg.sigma,
            averaging=cfg.averaging,
            nondescent=cfg.nondescent,
            lr=schedule,
            variant=cfg.cr_variant,
            every=cfg.cr_every,
        )
    return Baseline(opt, schedule, curvature=cfg.curvature)


def load_training_data(config: TrainConfig) -> Dataset:
    """The training split named by ``config`` (raises ``DatasetError`` when absent)."""
    return load_dataset(config.dataset, config.data_dir, "train")


def load_test_data(config: TrainConfig) -> Dataset:
    """The test split named by ``config`` (raises ``DatasetError`` when absent)."""
    return load_dataset(config.dataset, config.data_dir, "test")


def _data_line(data: Dataset) -> str:
    where = ", ".join(data.files) if data.files else data.source
    return f"{data.split} data: {data.name}, {len(data):,} images, from {where}"


def _datasets(
    config: TrainConfig, dataset: Dataset | None, test_dataset: Dataset | None, log: Log | None
) -> tuple[Dataset, Dataset | None]:
    """The training and test data of a run: given, or loaded by the config's name.

    Given training data without test data means no evaluation.  Both are checked before
    anything is written.
    """
    if dataset is None:
        dataset = load_training_data(config)
        if test_dataset is None and config.eval_every > 0:
            test_dataset = load_test_data(config)
        if log is not None:
            for d in (dataset, test_dataset):
                if d is not None:
                    log(_data_line(d))
    if len(dataset) == 0:
        raise ValueError(f"{dataset.source}: the training data hold no images")
    if test_dataset is not None:
        if len(test_dataset) == 0:
            raise ValueError(f"{test_dataset.source}: the test data hold no images")
        if (test_dataset.dim, test_dataset.classes) != (dataset.dim, dataset.classes):
            raise ValueError(
                f"test data ({test_dataset.dim} inputs, {test_dataset.classes} classes) do "
                f"not match the training data ({dataset.dim}, {dataset.classes})"
            )
    return dataset, test_dataset


def _config_record(config: TrainConfig, data: Dataset, test: Dataset | None) -> dict[str, Any]:
    return {
        "config": config.to_json(),
        "data": {"train": data.describe(), "test": None if test is None else test.describe()},
        "dataset": repr(data),
    }


def load_config(run_dir: str | os.PathLike[str]) -> TrainConfig:
    """The :class:`TrainConfig` of a run directory.

    Raises
    ------
    FileNotFoundError
        No ``config.json``.
    RunDirError
        ``config.json`` is unreadable, not JSON, or not a run configuration (the message
        names the file).
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a run directory (no config.json)")
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise RunDirError(f"{path}: not a run configuration (no 'config' object)")
    try:
        return TrainConfig.from_json(record["config"])
    except (TypeError, ValueError) as exc:
        raise RunDirError(f"{path}: invalid configuration ({exc})") from exc


# ---------------------------------------------------------------------------- summary


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


def summarize(rows: list[tuple], config: TrainConfig, status: str, **extra: Any) -> dict:
    """Key numbers of a run from its metric rows.

    Returns
    -------
    dict
        ``status``, ``label``, ``iterations_done``/``iterations_target``, final loss
        and its moving average, ``iters_to_loss_below`` (first iteration whose
        ``loss_ma100`` is below each of :data:`LOSS_THRESHOLDS`, or None), mean and
        median ``lr_eff``, ``flag_counts``, timings, the last evaluation on the test
        split (``test_loss``, ``test_accuracy``, ``test_iteration``; None without one),
        plus ``extra``.
    """
    col = {name: i for i, name in enumerate(COLUMNS)}
    n = len(rows)
    out: dict[str, Any] = {
        "status": status,
        "label": config.label(),
        "iterations_done": n,
        "iterations_target": config.iterations,
    }
    if n:
        loss_ma = np.fromiter((r[col["loss_ma100"]] for r in rows), float, n)
        lr_eff = np.fromiter((r[col["lr_eff"]] for r in rows), float, n)
        step_ms = np.fromiter((r[col["step_ms"]] for r in rows), float, n)
        crossings = {}
        for t in LOSS_THRESHOLDS:
            below = np.flatnonzero(loss_ma < t)
            crossings[f"{t:.1f}"] = int(below[0]) if below.size else None
        counts = {f: 0 for f in FLAGS if f}
        for r in rows:
            if r[col["flag"]]:
                counts[r[col["flag"]]] = counts.get(r[col["flag"]], 0) + 1
        out.update(
            final_loss=rows[-1][col["loss"]],
            final_loss_ma100=rows[-1][col["loss_ma100"]],
            iters_to_loss_below=crossings,
            lr_eff_mean=float(lr_eff.mean()),
            lr_eff_median=float(np.median(lr_eff)),
            flag_counts=counts,
            mean_step_ms=float(step_ms.mean()),
            elapsed_s=rows[-1][col["time_s"]],
        )
        evaluated = [r for r in rows if math.isfinite(r[col["test_loss"]])]
        last = evaluated[-1] if evaluated else None
        out.update(
            test_loss=None if last is None else last[col["test_loss"]],
            test_accuracy=None if last is None else last[col["test_accuracy"]],
            test_iteration=None if last is None else last[col["iteration"]],
        )
    out.update(extra)
    return _jsonable(out)


# ---------------------------------------------------------------------- checkpoints


def _ckpt_name(steps: int) -> str:
    return f"ckpt-{steps:06d}.npz"


def _checkpoint_paths(run: Path) -> list[Path]:
    """The run's checkpoints, newest first."""
    ckdir = run / "checkpoints"
    try:
        names = [n for n in os.listdir(ckdir) if CHECKPOINT_PATTERN.fullmatch(n)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [ckdir / n for n in sorted(names, key=lambda n: int(n[5:-4]), reverse=True)]


#: What reading a damaged, truncated or foreign ``.npz`` can raise.
_UNREADABLE = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    zipfile.BadZipFile,
    zlib.error,
)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of a checkpoint (reading them all checks every CRC)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: np.array(data[k]) for k in data.files}
    int(arrays["steps_done"])
    return arrays


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest checkpoint of a run directory that reads completely, or None."""
    for path in _checkpoint_paths(Path(run_dir)):
        try:
            _read_arrays(path)
        except _UNREADABLE:
            continue
        return path
    return None


def config_key(config: TrainConfig) -> str:
    """Identity of a run's trajectory: the resolved config without its length.

    Two configs with equal keys produce the same iterates; only ``iterations``,
    ``checkpoint_every``, ``eval_every`` and ``devices`` (data parallelism changes results
    by rounding only) may differ between a run and its resumption.  The default ``activation="relu"`` is left out, so the key of a ReLU run
    equals the one stored in checkpoints written before configs had an activation (they
    still resume).
    """
    d = config.resolved().to_json()
    for name in ("iterations", "checkpoint_every", "eval_every", "devices"):
        d.pop(name)
    if d["backend"] == "numpy":  # keys as before backends
        d.pop("backend")
    if d["activation"] == "relu":
        d.pop("activation")
    if d["cr_variant"] == "paper" and d["cr_every"] == 1:  # the paper's CR: keys as before
        d.pop("cr_variant")
        d.pop("cr_every")
    if d["model"] == "mlp" and not d["bias"]:  # the paper's network: keys as before
        for key in ("model", "bias", "arch"):
            d.pop(key)
    return json.dumps(d, sort_keys=True)


@dataclass
class _Snapshot:
    """The state after ``steps`` completed iterations."""

    steps: int
    network: Network
    state: MethodState
    sampler: dict[str, int]
    tail_loss: list[float]
    tail_lr_eff: list[float]
    elapsed: float


def _save_checkpoint(
    run_dir: Path, snap: _Snapshot, rows: list[tuple], config: TrainConfig, keep: int
) -> Path:
    arrays: dict[str, np.ndarray] = {
        "steps_done": np.asarray(snap.steps, dtype=np.int64),
        "method_step": np.asarray(snap.state.step, dtype=np.int64),
        "elapsed": np.asarray(snap.elapsed, dtype=np.float64),
        "tail_loss": np.asarray(snap.tail_loss, dtype=np.float64),
        "tail_lr_eff": np.asarray(snap.tail_lr_eff, dtype=np.float64),
        "config_key": np.asarray(config_key(config)),
    }
    arrays.update(snap.network.to_arrays("net/"))
    arrays.update({f"opt/{k}": v for k, v in _opt_to_arrays(snap.state.opt).items()})
    arrays.update({f"sampler/{k}": np.asarray(v, dtype=np.int64) for k, v in snap.sampler.items()})
    arrays.update({f"metrics/{k}": v for k, v in rows_to_arrays(rows[: snap.steps]).items()})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    path = run_dir / "checkpoints" / _ckpt_name(snap.steps)
    atomic_write(path, buf.getvalue())
    for stale in _checkpoint_paths(run_dir)[keep:] if keep > 0 else []:
        if stale != path:
            stale.unlink(missing_ok=True)
    return path


def _place(config: TrainConfig, net: Network) -> tuple[Network, Callable | None]:
    """The network on the run's backend, and how each batch gets there."""
    if config.backend != "jax":
        return net, None
    try:
        from numeric import jax_backend as jb
    except ImportError as exc:
        raise RunDirError(
            "--backend jax needs JAX: pip install 'lowrank-derivatives[jax]' "
            f"(or '.[jax]' in a source checkout); missing module: {exc.name}"
        ) from None
    if config.dtype == "float64":
        jb.enable_x64()
    sharding = jb.batch_sharding(config.devices or None)
    placed = jb.replicate(jb.to_jax(net), sharding)

    def transfer(x, y):
        return jb.device_array(x, sharding), jb.device_array(y, sharding)

    return placed, transfer


def _opt_to_arrays(opt) -> dict[str, np.ndarray]:
    if isinstance(opt, dict):  # this project's optimizers
        return state_to_arrays(opt)
    from numeric import optax as nopt  # an optax state: only with the JAX backend

    return nopt.state_to_arrays(opt)


def _opt_from_arrays(arrays: dict, config: TrainConfig, net: Network):
    if config.optimizer in OPTAX_OPTIMIZERS:
        from numeric import optax as nopt

        return nopt.state_from_arrays(arrays, build_method(config).init(net).opt)
    return state_from_arrays(arrays)


def _snapshot(
    arrays: dict[str, np.ndarray], config: TrainConfig, path: Path
) -> tuple[_Snapshot, list[tuple] | None]:
    """The state in a checkpoint and its copy of the metric rows (None if it has none)."""
    if str(arrays["config_key"]) != config_key(config):
        raise ValueError(f"{path} was written by a run with a different configuration")
    net = Network.from_arrays(arrays, "net/")
    if net.activation != config.activation:
        raise ValueError(
            f"{path} holds a {net.activation} network, the configuration a {config.activation} one"
        )
    opt = _opt_from_arrays(
        {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}, config, net
    )
    sampler = {k[8:]: int(v) for k, v in arrays.items() if k.startswith("sampler/")}
    snap = _Snapshot(
        steps=int(arrays["steps_done"]),
        network=net,
        state=MethodState(int(arrays["method_step"]), opt),
        sampler=sampler,
        tail_loss=[float(v) for v in arrays["tail_loss"]],
        tail_lr_eff=[float(v) for v in arrays["tail_lr_eff"]],
        elapsed=float(arrays["elapsed"]),
    )
    copy = None
    if "metrics/iteration" in arrays:
        cols = {name: arrays.get(f"metrics/{name}") for name in COLUMNS}
        n = len(cols["iteration"])
        for name, col in cols.items():  # a copy written before the test columns
            if col is None:
                cols[name] = np.full(n, np.nan)
        copy = arrays_to_rows(cols)  # type: ignore[arg-type]
        if len(copy) != snap.steps:
            raise ValueError(f"{path}: holds {len(copy)} metric rows for {snap.steps} steps")
    return snap, copy


def _newest_checkpoint(
    run: Path, config: TrainConfig, log: Log | None
) -> tuple[Path, _Snapshot, list[tuple] | None] | None:
    """The newest checkpoint that reads completely; unreadable newer ones are skipped
    (and said so): a truncated file falls back to the one before it."""
    for path in _checkpoint_paths(run):
        try:
            arrays = _read_arrays(path)
        except _UNREADABLE as exc:
            if log is not None:
                log(f"{path}: unreadable ({type(exc).__name__}: {exc}); using an older checkpoint")
            continue
        snap, copy = _snapshot(arrays, config, path)
        return path, snap, copy
    return None


def _load_checkpoint(path: Path, config: TrainConfig) -> _Snapshot:
    return _snapshot(_read_arrays(path), config, path)[0]


# ------------------------------------------------------------------------------ loop


class TrainingFailed(RuntimeError):
    """An exception inside the training loop; the original is its ``__cause__``.

    Before it is raised the run directory receives every completed iteration's metrics,
    a checkpoint of the last one and a ``"failed"`` summary naming the error.
    """


@dataclass
class RunResult:
    """Outcome of :func:`train` / :func:`resume`.

    Attributes
    ----------
    run_dir : Path
    status : str
        ``"completed"``, ``"interrupted"`` or ``"diverged"`` (failures raise).
    iterations_done : int
    summary : dict
        The content of ``summary.json``.
    network : Network
        Weights after the last completed iteration.
    signal : str
        ``"SIGINT"`` or ``"SIGTERM"`` when a signal stopped the run, else ``""``.
    """

    run_dir: Path
    status: str
    iterations_done: int
    summary: dict = field(repr=False)
    network: Network = field(repr=False)
    signal: str = ""


def evaluate(net: Network, data: Dataset, chunk: int = EVAL_CHUNK) -> tuple[float, float]:
    """Mean loss and accuracy of ``net`` on every row of ``data``.

    Returns
    -------
    loss, accuracy : float
        ``F`` over all ``N`` rows (Eq 16) and the fraction classified correctly.
    """
    n = len(data)
    loss = correct = 0.0
    for start in range(0, n, chunk):
        x = data.x[start : start + chunk].astype(net.dtype)
        labels = data.labels[start : start + chunk]
        loss += net.loss(x, labels) * len(labels)
        correct += net.accuracy(x, labels) * len(labels)
    return loss / n, correct / n


@contextlib.contextmanager
def _blas_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=int(threads), user_api="blas"):
        yield


class _Progress:
    def __init__(self, enabled: bool, total: int, initial: int, desc: str) -> None:
        self.bar = None
        self.pending = 0
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self.bar = tqdm(
                total=total, initial=initial, desc=desc, unit="it", mininterval=0.5, leave=True
            )

    def update(self, info: StepInfo) -> None:
        if self.bar is None:
            return
        self.pending += 1
        if self.pending >= 25:
            self.bar.set_postfix_str(f"loss={info.loss:.4f} alpha={info.alpha:.3g}", refresh=False)
            self.bar.update(self.pending)
            self.pending = 0

    def close(self) -> None:
        if self.bar is not None:
            if self.pending:
                self.bar.update(self.pending)
            self.bar.close()


def train(
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    dataset: Dataset | None = None,
    test_dataset: Dataset | None = None,
    progress: bool = True,
    overwrite: bool = False,
    flush_every: int = 100,
    keep: int = 2,
    blas_threads: int | None = 1,
    callback: Callable[[int, StepInfo], None] | None = None,
    log: Log | None = _stderr,
) -> RunResult:
    """Train from scratch into a new run directory.

    Parameters
    ----------
    config : TrainConfig
    run_dir : path
        Created if needed.  It must be absent or empty; a directory holding a run, or
        anything else, is refused unless ``overwrite``.
    dataset : Dataset, optional
        Training data; default :func:`load_training_data` (``config.dataset``), and
        then the test split too (:func:`load_test_data`).
    test_dataset : Dataset, optional
        Data of the evaluations every ``config.eval_every`` iterations; with a given
        ``dataset`` and no ``test_dataset`` there is no evaluation.
    progress : bool
        Show a progress bar with the loss and ``alpha``.
    overwrite : bool
        Write the run into a directory that holds a run or other files: the files a run
        writes (config, metrics, summary, ``checkpoints/ckpt-*.npz``) are replaced,
        nothing else is touched.
    flush_every : int
        Rows buffered before ``metrics.csv`` is appended to.
    keep : int
        Checkpoints kept.
    blas_threads : int or None
        BLAS threads during the run (default 1, the fastest for the paper's small
        matrices, and fixed so that results do not depend on the machine); None leaves
        the setting alone.
    callback : callable, optional
        ``callback(iteration, info)`` after every iteration.
    log : callable or None
        Receives one-line notes (the data loaded, repairs); default: standard error.

    Returns
    -------
    RunResult
        ``status`` ``"completed"``, ``"interrupted"`` (Ctrl-C, SIGTERM) or
        ``"diverged"``.

    Raises
    ------
    FileExistsError
        ``run_dir`` holds a run or other files and ``overwrite`` is false.
    RunDirError
        ``run_dir`` cannot be created or written (:class:`RunLocked`: another process
        is writing it).
    DatasetError
        The data are missing or unreadable.
    TrainingFailed
        An exception in the loop (its ``__cause__``), after the metrics, a checkpoint
        and a ``"failed"`` summary were written.
    """
    run = Path(run_dir)
    config = config.resolved()
    _refuse_existing(run, directory_state(run), overwrite)
    data, test = _datasets(config, dataset, test_dataset, log)
    method = build_method(config)
    net = network_for(config, data)  # before anything is written: a model that does not fit
    sampler = BatchSampler(len(data), config.batch_size, config.seed)
    create_directory(run)
    with run_lock(run):
        _refuse_existing(run, directory_state(run), overwrite)  # again, under the lock
        if overwrite:
            clear_run_files(run)
        write_json(run / "config.json", _config_record(config, data, test))
        atomic_write(run / "metrics.csv", header_line().encode())
        snap = _Snapshot(0, net, method.init(net), sampler.state_dict(), [], [], 0.0)
        return _run(
            config,
            run,
            data,
            test,
            method,
            snap,
            [],
            progress,
            flush_every,
            keep,
            blas_threads,
            callback,
        )


def _refuse_existing(run: Path, state: str, overwrite: bool) -> None:
    if overwrite or state in ("absent", "empty"):
        return
    if state == "run":
        raise FileExistsError(
            f"{run} already holds a run; resume it (`lowrank train --resume {run}`), "
            "choose another directory, or pass --overwrite to replace it"
        )
    shown = sorted(p.name for p in run.iterdir() if p.name != ".lock")
    listing = ", ".join(shown[:4]) + (", ..." if len(shown) > 4 else "")
    raise FileExistsError(
        f"{run} is not empty ({listing}) and holds no run; choose another directory, or "
        "pass --overwrite to write the run there (the files a run writes are replaced, "
        "others are left alone)"
    )


def resume(
    run_dir: str | os.PathLike[str],
    *,
    iterations: int | None = None,
    dataset: Dataset | None = None,
    test_dataset: Dataset | None = None,
    progress: bool = True,
    flush_every: int = 100,
    keep: int = 2,
    blas_threads: int | None = 1,
    callback: Callable[[int, StepInfo], None] | None = None,
    log: Log | None = _stderr,
    devices: int | None = None,
) -> RunResult:
    """Continue a run from its newest readable checkpoint (or from scratch without one).

    Before anything is written the saved configuration, the requested length, the data,
    the checkpoint and ``metrics.csv`` are checked; a refusal changes nothing.  Rows of
    ``metrics.csv`` before the checkpoint that are missing, repeated or torn are restored
    from the checkpoint's copy (said on ``log``; the damaged file is kept as
    ``metrics.csv.damaged``); a recorded row that differs from the copy is a refusal.

    Parameters
    ----------
    run_dir : path
        A directory written by :func:`train`.
    iterations : int, optional
        New total number of iterations (to extend a run); default the config's.
    devices : int, optional
        JAX backend: another number of devices to split the batch over (0: all).
    dataset, test_dataset, progress, flush_every, keep, blas_threads, callback, log
        As for :func:`train`.

    Returns
    -------
    RunResult
        Identical (weights and metrics) to an uninterrupted run of the same config.

    Raises
    ------
    FileNotFoundError
        ``run_dir`` holds no run.
    RunDirError
        Another process is writing the run (:class:`RunLocked`), or ``config.json`` is
        unreadable.
    ValueError
        The run cannot continue as asked (a checkpoint past ``iterations``, a checkpoint
        of another configuration, metric rows that contradict the checkpoint).
    """
    run = Path(run_dir)
    if directory_state(run) != "run":
        raise FileNotFoundError(f"{run}: not a run directory (no config.json)")
    with run_lock(run):
        return _resume_locked(
            run,
            iterations,
            devices,
            dataset,
            test_dataset,
            progress,
            flush_every,
            keep,
            blas_threads,
            callback,
            log,
        )


def _resume_locked(
    run: Path,
    iterations: int | None,
    devices: int | None,
    dataset: Dataset | None,
    test_dataset: Dataset | None,
    progress: bool,
    flush_every: int,
    keep: int,
    blas_threads: int | None,
    callback: Callable[[int, StepInfo], None] | None,
    log: Log | None,
) -> RunResult:
    config_path = run / "config.json"
    stored = load_config(run).resolved()
    config = stored
    if iterations is not None and int(iterations) != config.iterations:
        config = replace(config, iterations=int(iterations))  # validated, not yet saved
    if devices is not None and int(devices) != config.devices:
        config = replace(config, devices=int(devices))
    data, test = _datasets(config, dataset, test_dataset, log)
    method = build_method(config)
    found = _newest_checkpoint(run, config, log)
    if found is None:
        net = network_for(config, data)
        sampler = BatchSampler(len(data), config.batch_size, config.seed)
        snap = _Snapshot(0, net, method.init(net), sampler.state_dict(), [], [], 0.0)
        copy: list[tuple] | None = []
        source = "the start of the run (no checkpoint)"
    else:
        path, snap, copy = found
        source = str(path.relative_to(run))
    if snap.steps > config.iterations:
        raise ValueError(
            f"{run} has a checkpoint after {snap.steps} iterations, more than the "
            f"requested {config.iterations}; nothing was changed"
        )
    metrics_path = run / "metrics.csv"
    scanned = scan_metrics(metrics_path)
    fixed = reconcile(scanned, snap.steps, copy, source)
    # accepted: from here on the run directory is written
    if fixed.damaged and scanned.exists:
        backup = _free_name(run / "metrics.csv.damaged")
        atomic_write(backup, metrics_path.read_bytes())
        fixed.repairs.append(f"the file as it was is kept as {backup.name}")
    if fixed.rewrite:
        text = header_line() + "".join(format_row(r) for r in fixed.rows)
        atomic_write(metrics_path, text.encode())
    if fixed.repairs and log is not None:
        log(f"{metrics_path}: repaired from {source}: " + "; ".join(fixed.repairs))
    if config != stored:
        record = read_json(config_path)
        record["config"] = config.to_json()
        write_json(config_path, record)
    return _run(
        config,
        run,
        data,
        test,
        method,
        snap,
        fixed.rows,
        progress,
        flush_every,
        keep,
        blas_threads,
        callback,
    )


def _free_name(path: Path) -> Path:
    if not path.exists():
        return path
    n = 1
    while path.with_name(f"{path.name}.{n}").exists():
        n += 1
    return path.with_name(f"{path.name}.{n}")


def _run(
    config: TrainConfig,
    run: Path,
    data: Dataset,
    test: Dataset | None,
    method: Method,
    snap: _Snapshot,
    rows: list[tuple],
    progress: bool,
    flush_every: int,
    keep: int,
    blas_threads: int | None,
    callback: Callable[[int, StepInfo], None] | None,
) -> RunResult:
    metrics_path = run / "metrics.csv"
    if not metrics_path.exists():
        atomic_write(metrics_path, header_line().encode())
    sampler = BatchSampler.from_state(snap.sampler)
    net, transfer = _place(config, snap.network)
    iteration = Iteration(
        method,
        net,
        snap.state,
        data.x,
        data.labels,
        sampler,
        snap.tail_loss,
        snap.tail_lr_eff,
        transfer,
    )
    every = config.eval_every if test is not None else 0
    committed = snap
    pending: list[tuple] = []
    status = "running"
    error: BaseException | None = None
    diverged: str | None = None
    write_json(run / "summary.json", summarize(rows, config, status))

    def flush(upto: int) -> None:
        nonlocal pending
        keep_rows = [r for r in pending if r[0] < upto]
        if keep_rows:
            with metrics_path.open("a") as fh:
                fh.write("".join(format_row(r) for r in keep_rows))
                fh.flush()
        pending = []

    def checkpoint(s: _Snapshot, state: str, **extra: Any) -> dict:
        flush(s.steps)
        done = rows[: s.steps]
        path = _save_checkpoint(run, s, done, config, keep)
        summary = summarize(done, config, state, checkpoint=str(path.relative_to(run)), **extra)
        write_json(run / "summary.json", summary)
        return summary

    bar = _Progress(progress, config.iterations, snap.steps, config.label())
    t0 = time.perf_counter()
    # overflow on the way to a divergence is detected and recorded, not warned about
    errstate = np.errstate(over="ignore", invalid="ignore", divide="ignore")
    with _blas_threads(blas_threads), StopFlag() as stop, errstate:
        try:
            for it in range(snap.steps, config.iterations):
                if stop.requested:
                    status = "interrupted"
                    break
                info, mean_loss, mean_lr, seconds = iteration()
                now = time.perf_counter()
                test_loss = test_accuracy = math.nan
                if every and ((it + 1) % every == 0 or it + 1 == config.iterations):
                    test_loss, test_accuracy = evaluate(
                        eval_network(iteration.method, iteration.net, iteration.state),
                        test,  # type: ignore[arg-type]
                    )
                row = (
                    it,
                    info.loss,
                    mean_loss,
                    info.alpha,
                    info.lr,
                    info.lr_eff,
                    mean_lr,
                    info.dgrad,
                    info.dhd,
                    info.dnorm,
                    info.flag,
                    seconds * 1e3,
                    snap.elapsed + (now - t0),
                    test_loss,
                    test_accuracy,
                )
                rows.append(row)
                pending.append(row)
                committed = _Snapshot(
                    it + 1,
                    iteration.net,
                    iteration.state,
                    sampler.state_dict(),
                    iteration.tail_loss,
                    iteration.tail_lr,
                    row[12],
                )
                bar.update(info)
                if callback is not None:
                    callback(it, info)
                if len(pending) >= flush_every:
                    flush(committed.steps)
                if committed.steps % config.checkpoint_every == 0:
                    with stop.deferred():
                        checkpoint(committed, "running")
            else:
                status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
        except Diverged as exc:
            status = "diverged"
            diverged = str(exc)
        except BaseException as exc:  # record, then re-raise below
            status = "failed"
            error = exc
        finally:
            bar.close()
            rows[:] = rows[: committed.steps]
            extra: dict[str, Any] = {}
            if diverged is not None:
                extra["diverged"] = diverged
            if error is not None:
                extra["error"] = f"{type(error).__name__}: {error}"
            if status == "interrupted" and stop.signal_name:
                extra["signal"] = stop.signal_name
            with stop.deferred(then_raise=False):  # no signal leaves it half-written
                summary = checkpoint(committed, status, **extra)
    if error is not None:
        if isinstance(error, Exception):
            raise TrainingFailed(
                f"{run}: {type(error).__name__}: {error} (after {committed.steps} iterations; "
                "metrics and a checkpoint were written)"
            ) from error
        raise error
    signal_name = stop.signal_name if status == "interrupted" else ""
    network = committed.network
    if config.backend == "jax":
        from numeric import jax_backend as jb

        network = jb.to_numpy(network)
    return RunResult(run, status, committed.steps, summary, network, signal_name)


def ensure_run(
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    dataset: Dataset | None = None,
    progress: bool = True,
    overwrite: bool = False,
    **kwargs: Any,
) -> RunResult:
    """Make ``run_dir`` hold a completed run of ``config``, doing only what is missing.

    A new (or empty) directory is trained from scratch; a completed (or diverged) run of
    the same config is reused; an interrupted one, or a shorter one, is resumed
    (extended) to ``config.iterations``.  A run of another config (or a longer one), or
    a directory holding other files, is an error unless ``overwrite``.

    Parameters
    ----------
    config : TrainConfig
    run_dir : path
    dataset, progress, **kwargs
        Passed to :func:`train` / :func:`resume` (e.g. ``test_dataset``).
    overwrite : bool
        Replace a run of a different config.

    Returns
    -------
    RunResult
    """
    run = Path(run_dir)
    config = config.resolved()
    if directory_state(run) != "run":
        return train(config, run, dataset=dataset, progress=progress, overwrite=overwrite, **kwargs)
    existing = load_config(run).resolved()
    summary_path = run / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else {}
    done = int(summary.get("iterations_done", 0))
    same = config_key(existing) == config_key(config)
    if not same or done > config.iterations:
        if not overwrite:
            why = "a different configuration" if not same else f"{done} iterations"
            raise FileExistsError(
                f"{run} holds a run with {why}; pass overwrite (--overwrite) or another --out"
            )
        return train(config, run, dataset=dataset, progress=progress, overwrite=True, **kwargs)
    status = summary.get("status")
    finished = (status == "completed" and done == config.iterations) or status == "diverged"
    if finished:
        ckpt = latest_checkpoint(run)
        if ckpt is not None:
            snap = _load_checkpoint(ckpt, config)
            if snap.steps == done:
                return RunResult(run, status, done, summary, snap.network)
    return resume(run, iterations=config.iterations, dataset=dataset, progress=progress, **kwargs)


def summary_line(s: dict, run_dir: Path) -> str:
    """One line with the key numbers of a run's summary."""
    cross = s.get("iters_to_loss_below") or {}
    parts = [
        f"{s.get('label', '')}: {s.get('status')} after {s.get('iterations_done')} iterations",
        f"loss (average of the last 100) {s.get('final_loss_ma100', float('nan')):.4f}",
    ]
    parts += [f"below {t} at {v if v is not None else '-'}" for t, v in cross.items()]
    if s.get("test_accuracy") is not None:
        parts.append(
            f"test accuracy {100 * s['test_accuracy']:.2f}% (loss {s['test_loss']:.4f}) "
            f"after iteration {s['test_iteration']}"
        )
    if s.get("lr_eff_mean") is not None:
        parts.append(f"mean lr {s['lr_eff_mean']:.3g}")
    flags = {k: v for k, v in (s.get("flag_counts") or {}).items() if v}
    if flags:
        parts.append("flagged steps " + ", ".join(f"{k} {v}" for k, v in flags.items()))
    return "; ".join(parts) + f"  [{run_dir}]"
