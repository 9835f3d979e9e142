"""Training runs: configuration, loop, run directory, checkpoints, resume, metrics.

A run directory holds

``config.json``
    The :class:`TrainConfig` with every default filled in.
``metrics.csv``
    One row per iteration (columns :data:`COLUMNS`), appended in chunks of
    ``flush_every`` rows and at every checkpoint, interruption and failure.
``summary.json``
    Status (``"running"``, ``"completed"``, ``"interrupted"``, ``"diverged"``,
    ``"failed"``) and the
    key numbers of the run (:func:`summarize`); rewritten at every checkpoint.
``checkpoints/ckpt-XXXXXX.npz``
    Weights, optimizer state, sampler position, step counter and the metric tails the
    moving averages need, after ``XXXXXX`` iterations; the newest ``keep`` are kept.

All files are written atomically (a temporary file renamed into place).

Reproducibility: the weights are drawn from ``np.random.default_rng(seed)`` and the
batches from a :class:`~numeric.data.BatchSampler` seeded with ``seed`` (a new
permutation every epoch, so the label-sorted embedded MNIST is shuffled); nothing else
is random.  A run interrupted at any point and resumed from its last checkpoint with
:func:`resume` therefore reproduces the uninterrupted run bit for bit (all columns but
the timings).  The rows after the checkpoint are discarded from ``metrics.csv`` on
resume and recomputed.

Interruption: the first Ctrl-C stops after the current iteration; a second one (or any
``KeyboardInterrupt``) stops at once.  Either way every completed iteration's metrics
are written, a checkpoint of the last completed iteration is saved and the summary
says ``"interrupted"``.  An exception inside the loop does the same with ``"failed"``
and is re-raised as :class:`TrainingFailed`.  A run whose loss or gradient stops being finite
(:class:`numeric.cr.Diverged`) ends with ``"diverged"``: its metrics hold every finite
iteration, and it is a result (not resumed by :func:`ensure_run`), not an error.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from numeric.cr import CR, FLAGS, Baseline, Diverged, Method, MethodState, StepInfo
from numeric.data import BatchSampler, Dataset, load_dataset
from numeric.layers import get_activation
from numeric.model import Network, init_bound
from numeric.models import model_arch, network_for
from numeric.optimizers import OPTIMIZERS, get_optimizer, state_from_arrays, state_to_arrays
from numeric.schedules import Constant, ExponentialDecay

__all__ = [
    "COLUMNS",
    "DEFAULT_LR",
    "DEFAULT_SIGMA",
    "LOSS_THRESHOLDS",
    "RunResult",
    "TrainConfig",
    "TrainingFailed",
    "build_method",
    "config_key",
    "ensure_run",
    "latest_checkpoint",
    "load_config",
    "load_training_data",
    "moving_average",
    "read_metrics",
    "resume",
    "summarize",
    "train",
]

#: The paper's initial learning rates per optimizer (Figures 1, 4, 5; Adam: TF default).
DEFAULT_LR = {"sgd": 0.01, "adagrad": 0.1, "adadelta": 1.0, "adam": 0.001}
#: The paper's sigma per optimizer (100 for SGD, 1000 for the adaptive ones).
DEFAULT_SIGMA = {"sgd": 100.0, "adagrad": 1000.0, "adadelta": 1000.0, "adam": 1000.0}
#: Loss levels whose first crossing (by the period-100 moving average) is recorded.
LOSS_THRESHOLDS = (2.0, 1.0)
#: Moving-average period of the paper's learning-rate plots.
PERIOD = 100

#: Columns of ``metrics.csv``.
COLUMNS = (
    "iteration",  # 0-based index of the step
    "loss",  # mini-batch F before the step
    "loss_ma100",  # trailing mean of loss over the last <= 100 iterations
    "alpha",  # step length along the optimizer's lr-free direction
    "lr",  # scheduled learning rate of the step
    "lr_eff",  # effective learning rate (numeric.cr)
    "lr_eff_ma100",  # trailing mean of lr_eff over the last <= 100 iterations
    "dgrad",  # d^T grad F
    "dhd",  # d^T H d (nan where not computed)
    "dnorm",  # ||d||
    "flag",  # "", "nondescent", "zero", "nonfinite"
    "step_ms",  # wall time of the step
    "time_s",  # wall time since the run started (summed over resumes)
)
_TIMING = ("step_ms", "time_s")


# ---------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run (saved as ``config.json``).

    Attributes
    ----------
    dataset : str
        ``"mnist-embedded"`` (default), ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"``
        (see :func:`numeric.data.load_dataset`); ``"mnist"`` without ``data_dir`` means
        the embedded subset.
    data_dir : str or None
        Directory with the dataset's files.
    hidden : tuple of int
        Hidden widths; the paper's networks are ``(128,) * 12``.
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
        Initial learning rate; None: :data:`DEFAULT_LR`.
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
    curvature : bool
        Record ``d^T H d`` for a base-optimizer run too.
    iterations : int
        Number of steps.
    checkpoint_every : int
        Steps between checkpoints.
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
    curvature: bool = False
    iterations: int = 3000
    checkpoint_every: int = 500
    dtype: str = "float64"
    model: str = "mlp"
    bias: bool | None = None
    arch: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", str(self.model).lower())
        object.__setattr__(self, "arch", model_arch(self.model, self.arch))
        object.__setattr__(self, "bias", (self.model != "mlp") if self.bias is None else self.bias)
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "optimizer", str(self.optimizer).lower())
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; choose from {sorted(OPTIMIZERS)}"
            )
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden widths must be positive, got {self.hidden}")
        object.__setattr__(self, "activation", str(self.activation).lower())
        get_activation(self.activation)
        init_bound(self.init)
        for name in ("seed", "batch_size", "iterations", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value:
                raise ValueError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.seed < 0 or self.batch_size < 1 or self.iterations < 0:
            raise ValueError("seed must be >= 0, batch_size >= 1 and iterations >= 0")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")
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
        """A copy with ``lr`` and ``sigma`` filled in from the per-optimizer defaults."""
        lr = DEFAULT_LR[self.optimizer] if self.lr is None else float(self.lr)
        sigma = DEFAULT_SIGMA[self.optimizer] if self.sigma is None else float(self.sigma)
        return replace(self, lr=lr, sigma=sigma)

    def label(self) -> str:
        """Short human-readable name, e.g. ``"SGD with CR"`` or ``"SGD with CR (tanh)"``."""
        names = {"sgd": "SGD", "adagrad": "Adagrad", "adadelta": "Adadelta", "adam": "Adam"}
        base = names[self.optimizer]
        if self.cr:
            extra = "" if self.averaging == "model" else f", {self.averaging}"
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
    """The :class:`~numeric.cr.Baseline` or :class:`~numeric.cr.CR` method of a config."""
    cfg = config.resolved()
    opt = get_optimizer(cfg.optimizer)
    schedule = (
        ExponentialDecay(cfg.lr, cfg.decay_steps, cfg.decay_rate) if cfg.decay else Constant(cfg.lr)
    )
    if cfg.cr:
        return CR(opt, cfg.sigma, averaging=cfg.averaging, nondescent=cfg.nondescent, lr=schedule)
    return Baseline(opt, schedule, curvature=cfg.curvature)


def load_training_data(config: TrainConfig) -> Dataset:
    """The training split named by ``config`` (raises ``DatasetError`` when absent)."""
    return load_dataset(config.dataset, config.data_dir, "train")


def load_config(run_dir: str | os.PathLike[str]) -> TrainConfig:
    """The :class:`TrainConfig` of a run directory."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a run directory (no config.json)")
    return TrainConfig.from_json(json.loads(path.read_text())["config"])


# ------------------------------------------------------------------------ file helpers


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_json(path: Path, obj: Any) -> None:
    _atomic_write(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


def _format_row(row: tuple) -> str:
    out = []
    for v in row:
        if isinstance(v, float):
            out.append(repr(v))
        else:
            out.append(str(v))
    return ",".join(out) + "\n"


def _parse_row(rec: list[str]) -> tuple:
    vals: list[Any] = []
    for name, text in zip(COLUMNS, rec, strict=True):
        if name == "iteration":
            vals.append(int(text))
        elif name == "flag":
            vals.append(text)
        else:
            vals.append(float(text))
    return tuple(vals)


def _read_rows(path: Path) -> list[tuple]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return []
        if tuple(header) != COLUMNS:
            raise ValueError(f"{path}: unexpected header {header}")
        rows = []
        for rec in reader:
            if len(rec) != len(COLUMNS):  # a torn last line from a hard kill
                break
            rows.append(_parse_row(rec))
        return rows


def read_metrics(run_dir: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The columns of a run's ``metrics.csv`` as arrays (``flag`` as strings).

    Returns
    -------
    dict
        :data:`COLUMNS` to arrays of shape ``(iterations,)``.
    """
    rows = _read_rows(Path(run_dir) / "metrics.csv")
    cols: dict[str, np.ndarray] = {}
    for i, name in enumerate(COLUMNS):
        values = [r[i] for r in rows]
        if name == "iteration":
            cols[name] = np.asarray(values, dtype=np.int64)
        elif name == "flag":
            cols[name] = np.asarray(values, dtype=str)
        else:
            cols[name] = np.asarray(values, dtype=np.float64)
    return cols


def moving_average(values: np.ndarray, period: int = PERIOD) -> np.ndarray:
    """Trailing mean over the last ``<= period`` values (as the ``*_ma100`` columns)."""
    v = np.asarray(values, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - period, 0)
    return (c[idx] - c[lo]) / (idx - lo)


# ---------------------------------------------------------------------------- summary


def summarize(rows: list[tuple], config: TrainConfig, status: str, **extra: Any) -> dict:
    """Key numbers of a run from its metric rows.

    Returns
    -------
    dict
        ``status``, ``label``, ``iterations_done``/``iterations_target``, final loss
        and its moving average, ``iters_to_loss_below`` (first iteration whose
        ``loss_ma100`` is below each of :data:`LOSS_THRESHOLDS`, or None), mean and
        median ``lr_eff``, ``flag_counts``, timings, plus ``extra``.
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
    out.update(extra)
    return _jsonable(out)


# ---------------------------------------------------------------------- checkpoints


def _ckpt_name(steps: int) -> str:
    return f"ckpt-{steps:06d}.npz"


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest readable checkpoint of a run directory, or None."""
    ckdir = Path(run_dir) / "checkpoints"
    if not ckdir.is_dir():
        return None
    for path in sorted(ckdir.glob("ckpt-*.npz"), reverse=True):
        try:
            with np.load(path, allow_pickle=False) as data:
                int(data["steps_done"])
            return path
        except (OSError, ValueError, KeyError, EOFError):
            continue
    return None


def config_key(config: TrainConfig) -> str:
    """Identity of a run's trajectory: the resolved config without its length.

    Two configs with equal keys produce the same iterates; only ``iterations`` (and
    ``checkpoint_every``) may differ between a run and its resumption.  The default
    ``activation="relu"`` is left out, so the key of a ReLU run equals the one stored in
    checkpoints written before configs had an activation (they still resume).
    """
    d = config.resolved().to_json()
    d.pop("iterations")
    d.pop("checkpoint_every")
    if d["activation"] == "relu":
        d.pop("activation")
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


def _save_checkpoint(run_dir: Path, snap: _Snapshot, config: TrainConfig, keep: int) -> Path:
    arrays: dict[str, np.ndarray] = {
        "steps_done": np.asarray(snap.steps, dtype=np.int64),
        "method_step": np.asarray(snap.state.step, dtype=np.int64),
        "elapsed": np.asarray(snap.elapsed, dtype=np.float64),
        "tail_loss": np.asarray(snap.tail_loss, dtype=np.float64),
        "tail_lr_eff": np.asarray(snap.tail_lr_eff, dtype=np.float64),
        "config_key": np.asarray(config_key(config)),
    }
    arrays.update(snap.network.to_arrays("net/"))
    arrays.update({f"opt/{k}": v for k, v in state_to_arrays(snap.state.opt).items()})
    arrays.update({f"sampler/{k}": np.asarray(v, dtype=np.int64) for k, v in snap.sampler.items()})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = run_dir / "checkpoints" / _ckpt_name(snap.steps)
    _atomic_write(path, buf.getvalue())
    old = sorted((run_dir / "checkpoints").glob("ckpt-*.npz"))
    for stale in old[:-keep] if keep > 0 else []:
        with contextlib.suppress(OSError):
            stale.unlink()
    return path


def _load_checkpoint(path: Path, config: TrainConfig) -> _Snapshot:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    if str(arrays["config_key"]) != config_key(config):
        raise ValueError(f"{path} was written by a run with a different configuration")
    net = Network.from_arrays(arrays, "net/")
    if net.activation != config.activation:
        raise ValueError(
            f"{path} holds a {net.activation} network, the configuration a {config.activation} one"
        )
    opt = state_from_arrays({k[4:]: v for k, v in arrays.items() if k.startswith("opt/")})
    sampler = {k[8:]: int(v) for k, v in arrays.items() if k.startswith("sampler/")}
    return _Snapshot(
        steps=int(arrays["steps_done"]),
        network=net,
        state=MethodState(int(arrays["method_step"]), opt),
        sampler=sampler,
        tail_loss=[float(v) for v in arrays["tail_loss"]],
        tail_lr_eff=[float(v) for v in arrays["tail_lr_eff"]],
        elapsed=float(arrays["elapsed"]),
    )


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
    """

    run_dir: Path
    status: str
    iterations_done: int
    summary: dict = field(repr=False)
    network: Network = field(repr=False)


class _StopFlag:
    """SIGINT handler: the first Ctrl-C asks the loop to stop, the second raises."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None
        self._installed = False

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            try:
                self._previous = signal.signal(signal.SIGINT, self._handle)
                self._installed = True
            except ValueError:
                self._installed = False
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this iteration (Ctrl-C again to stop at once)", flush=True)

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


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


_RUN_FILES = ("config.json", "metrics.csv", "summary.json")


def train(
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    dataset: Dataset | None = None,
    progress: bool = True,
    overwrite: bool = False,
    flush_every: int = 100,
    keep: int = 2,
    blas_threads: int | None = 1,
    callback: Callable[[int, StepInfo], None] | None = None,
) -> RunResult:
    """Train from scratch into a new run directory.

    Parameters
    ----------
    config : TrainConfig
    run_dir : path
        Created if needed; must not already hold a run unless ``overwrite``.
    dataset : Dataset, optional
        Training data; default :func:`load_training_data` (``config.dataset``).
    progress : bool
        Show a progress bar with the loss and ``alpha``.
    overwrite : bool
        Replace a previous run in ``run_dir`` (its config, metrics, summary and
        checkpoints are removed; nothing else is touched).
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

    Returns
    -------
    RunResult
        ``status`` ``"completed"``, ``"interrupted"`` (Ctrl-C) or ``"diverged"``.

    Raises
    ------
    FileExistsError
        ``run_dir`` already holds a run and ``overwrite`` is false.
    TrainingFailed
        An exception in the loop (its ``__cause__``), after the metrics, a checkpoint
        and a ``"failed"`` summary were written.
    """
    run = Path(run_dir)
    config = config.resolved()
    if (run / "config.json").exists() and not overwrite:
        raise FileExistsError(
            f"{run} already holds a run; resume it (`lowrank train --resume {run}`) or "
            "choose another directory"
        )
    data = load_training_data(config) if dataset is None else dataset
    net = network_for(config, data)  # before anything is written: a model that does not fit
    run.mkdir(parents=True, exist_ok=True)
    for name in _RUN_FILES:
        with contextlib.suppress(FileNotFoundError):
            (run / name).unlink()
    ckdir = run / "checkpoints"
    if ckdir.is_dir():
        for path in ckdir.glob("ckpt-*.npz"):
            path.unlink()
    _write_json(run / "config.json", {"config": config.to_json(), "dataset": repr(data)})
    method = build_method(config)
    sampler = BatchSampler(len(data), config.batch_size, config.seed)
    snap = _Snapshot(0, net, method.init(net), sampler.state_dict(), [], [], 0.0)
    return _run(
        config, run, data, method, snap, [], progress, flush_every, keep, blas_threads, callback
    )


def resume(
    run_dir: str | os.PathLike[str],
    *,
    iterations: int | None = None,
    dataset: Dataset | None = None,
    progress: bool = True,
    flush_every: int = 100,
    keep: int = 2,
    blas_threads: int | None = 1,
    callback: Callable[[int, StepInfo], None] | None = None,
) -> RunResult:
    """Continue a run from its newest checkpoint (or from scratch if it has none).

    Parameters
    ----------
    run_dir : path
        A directory written by :func:`train`.
    iterations : int, optional
        New total number of iterations (to extend a run); default the config's.
    dataset, progress, flush_every, keep, blas_threads, callback
        As for :func:`train`.

    Returns
    -------
    RunResult
        Identical (weights and metrics) to an uninterrupted run of the same config.
    """
    run = Path(run_dir)
    config = load_config(run).resolved()
    if iterations is not None and int(iterations) != config.iterations:
        config = replace(config, iterations=int(iterations))
        old = json.loads((run / "config.json").read_text())
        old["config"] = config.to_json()
        _write_json(run / "config.json", old)
    data = load_training_data(config) if dataset is None else dataset
    ckpt = latest_checkpoint(run)
    method = build_method(config)
    if ckpt is None:
        net = network_for(config, data)
        sampler = BatchSampler(len(data), config.batch_size, config.seed)
        snap = _Snapshot(0, net, method.init(net), sampler.state_dict(), [], [], 0.0)
    else:
        snap = _load_checkpoint(ckpt, config)
    if snap.steps > config.iterations:
        raise ValueError(
            f"{run} has a checkpoint after {snap.steps} iterations, more than the "
            f"requested {config.iterations}"
        )
    rows = [r for r in _read_rows(run / "metrics.csv") if r[0] < snap.steps]
    if len(rows) != snap.steps:
        rows = []  # metrics lost: keep the run consistent, the rows restart here
    _rewrite_metrics(run / "metrics.csv", rows)
    return _run(
        config, run, data, method, snap, rows, progress, flush_every, keep, blas_threads, callback
    )


def _rewrite_metrics(path: Path, rows: list[tuple]) -> None:
    text = ",".join(COLUMNS) + "\n" + "".join(_format_row(r) for r in rows)
    _atomic_write(path, text.encode())


def _run(
    config: TrainConfig,
    run: Path,
    data: Dataset,
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
        _rewrite_metrics(metrics_path, [])
    dtype = np.dtype(config.dtype)
    eye = np.eye(data.classes, dtype=dtype)
    x_all, labels_all = data.x, data.labels
    sampler = BatchSampler.from_state(snap.sampler)
    tail_loss = deque(snap.tail_loss, maxlen=PERIOD)
    tail_lr = deque(snap.tail_lr_eff, maxlen=PERIOD)
    committed = snap
    pending: list[tuple] = []
    status = "running"
    error: BaseException | None = None
    diverged: str | None = None
    _write_json(run / "summary.json", summarize(rows, config, status))

    def flush(upto: int) -> None:
        nonlocal pending
        keep_rows = [r for r in pending if r[0] < upto]
        if keep_rows:
            with metrics_path.open("a") as fh:
                fh.write("".join(_format_row(r) for r in keep_rows))
                fh.flush()
        pending = []

    def checkpoint(s: _Snapshot, state: str, **extra: Any) -> dict:
        flush(s.steps)
        path = _save_checkpoint(run, s, config, keep)
        done = [r for r in rows if r[0] < s.steps]
        summary = summarize(done, config, state, checkpoint=str(path.relative_to(run)), **extra)
        _write_json(run / "summary.json", summary)
        return summary

    bar = _Progress(progress, config.iterations, snap.steps, config.label())
    t0 = time.perf_counter()
    net, mstate = snap.network, snap.state
    # overflow on the way to a divergence is detected and recorded, not warned about
    errstate = np.errstate(over="ignore", invalid="ignore", divide="ignore")
    with _blas_threads(blas_threads), _StopFlag() as stop, errstate:
        try:
            first = True
            for it in range(snap.steps, config.iterations):
                if stop.requested:
                    status = "interrupted"
                    break
                ts = time.perf_counter()
                idx = sampler.next_indices()
                xb = x_all[idx].astype(dtype)
                yb = eye[labels_all[idx]]
                net, mstate, info = method.step(net, mstate, xb, yb, check=first)
                first = False
                tail_loss.append(info.loss)
                tail_lr.append(info.lr_eff)
                now = time.perf_counter()
                row = (
                    it,
                    info.loss,
                    math.fsum(tail_loss) / len(tail_loss),
                    info.alpha,
                    info.lr,
                    info.lr_eff,
                    math.fsum(tail_lr) / len(tail_lr),
                    info.dgrad,
                    info.dhd,
                    info.dnorm,
                    info.flag,
                    (now - ts) * 1e3,
                    snap.elapsed + (now - t0),
                )
                rows.append(row)
                pending.append(row)
                committed = _Snapshot(
                    it + 1,
                    net,
                    mstate,
                    sampler.state_dict(),
                    list(tail_loss),
                    list(tail_lr),
                    row[-1],
                )
                bar.update(info)
                if callback is not None:
                    callback(it, info)
                if len(pending) >= flush_every:
                    flush(committed.steps)
                if committed.steps % config.checkpoint_every == 0:
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
            rows[:] = [r for r in rows if r[0] < committed.steps]
            extra: dict[str, Any] = {}
            if diverged is not None:
                extra["diverged"] = diverged
            if error is not None:
                extra["error"] = f"{type(error).__name__}: {error}"
            summary = checkpoint(committed, status, **extra)
    if error is not None:
        if isinstance(error, Exception):
            raise TrainingFailed(
                f"{run}: {type(error).__name__}: {error} (after {committed.steps} iterations; "
                "metrics and a checkpoint were written)"
            ) from error
        raise error
    return RunResult(run, status, committed.steps, summary, committed.network)


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

    A new directory is trained from scratch; a completed (or diverged) run of the same
    config is reused; an interrupted one, or a shorter one, is resumed (extended) to
    ``config.iterations``.  A run of another config (or a longer one) is an error unless
    ``overwrite``.

    Parameters
    ----------
    config : TrainConfig
    run_dir : path
    dataset, progress, **kwargs
        Passed to :func:`train` / :func:`resume`.
    overwrite : bool
        Replace a run of a different config.

    Returns
    -------
    RunResult
    """
    run = Path(run_dir)
    config = config.resolved()
    if not (run / "config.json").exists():
        return train(config, run, dataset=dataset, progress=progress, **kwargs)
    existing = load_config(run).resolved()
    summary_path = run / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    done = int(summary.get("iterations_done", 0))
    same = config_key(existing) == config_key(config)
    if not same or done > config.iterations:
        if not overwrite:
            why = "a different configuration" if not same else f"{done} iterations"
            raise FileExistsError(
                f"{run} holds a run with {why}; pass overwrite (--overwrite) or another --out"
            )
        return train(config, run, dataset=dataset, progress=progress, overwrite=True, **kwargs)
    ckpt = latest_checkpoint(run)
    status = summary.get("status")
    finished = (status == "completed" and done == config.iterations) or status == "diverged"
    if finished and ckpt is not None:
        snap = _load_checkpoint(ckpt, config)
        if snap.steps == done:
            return RunResult(run, status, done, summary, snap.network)
    return resume(run, iterations=config.iterations, dataset=dataset, progress=progress, **kwargs)
