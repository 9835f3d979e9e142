"""Checkpoints of a run: ``checkpoints/ckpt-XXXXXX.npz`` after ``XXXXXX`` iterations.

A checkpoint holds a :class:`Snapshot` (weights ``net/*``, optimizer state ``opt/*``,
sampler position ``sampler/*``, step counters, the metric tails the moving averages need,
the elapsed time) and a copy of every metric row so far (``metrics/<column>``), plus the
:func:`~numeric.training.config.config_key` of the run that wrote it.  Files are
written atomically and the newest ``keep`` are kept; reading one reads every array, so
a truncated or damaged file is found (and skipped for an older one) before it is used.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numeric.cr import MethodState
from numeric.metrics import COLUMNS, Row, arrays_to_rows, rows_to_arrays
from numeric.network import Network
from numeric.optimizers import OPTAX_OPTIMIZERS, state_from_arrays, state_to_arrays
from numeric.training.config import TrainConfig, config_key
from numeric.training.methods import build_method
from numeric.training.progress import Log
from numeric.training.rundir import CHECKPOINT_PATTERN, atomic_write

__all__ = [
    "Snapshot",
    "latest_checkpoint",
    "load_checkpoint",
    "newest_checkpoint",
    "save_checkpoint",
]


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


@dataclass
class Snapshot:
    """The state after ``steps`` completed iterations (what a checkpoint holds).

    ``tail_loss`` and ``tail_lr_eff`` are the last <= 100 values the moving averages of
    the next rows need; ``elapsed`` the seconds of every iteration so far.
    """

    steps: int
    network: Network
    state: MethodState
    sampler: dict[str, int]
    tail_loss: Sequence[float]
    tail_lr_eff: Sequence[float]
    elapsed: float


def save_checkpoint(
    run_dir: Path, snap: Snapshot, rows: list[Row], config: TrainConfig, keep: int
) -> Path:
    """Write ``snap`` and the first ``snap.steps`` of ``rows`` as the checkpoint after
    ``snap.steps`` iterations; delete all but the newest ``keep`` (0: keep all)."""
    # Any: savez's stub reads **kwds as allow_pickle too
    arrays: dict[str, Any] = {
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
) -> tuple[Snapshot, list[Row] | None]:
    """The state in a checkpoint and its copy of the metric rows (None if it has none)."""
    if str(arrays["config_key"]) != config_key(config):
        raise ValueError(f"{path} was written by a run with a different configuration")
    net = Network.from_arrays(arrays, "net/")
    if net.activation not in (config.activation, "identity"):  # identity: no activation
        raise ValueError(
            f"{path} holds a {net.activation} network, the configuration a {config.activation} one"
        )
    opt = _opt_from_arrays(
        {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}, config, net
    )
    sampler = {k[8:]: int(v) for k, v in arrays.items() if k.startswith("sampler/")}
    snap = Snapshot(
        steps=int(arrays["steps_done"]),
        network=net,
        state=MethodState(int(arrays["method_step"]), opt),
        sampler=sampler,
        tail_loss=[float(v) for v in arrays["tail_loss"]],
        tail_lr_eff=[float(v) for v in arrays["tail_lr_eff"]],
        elapsed=float(arrays["elapsed"]),
    )
    copy: list[Row] | None = None
    if "metrics/iteration" in arrays:
        n = len(arrays["metrics/iteration"])
        cols: dict[str, np.ndarray] = {}
        for name in COLUMNS:  # a copy written before the test columns lacks them
            col = arrays.get(f"metrics/{name}")
            cols[name] = np.full(n, np.nan) if col is None else col
        copy = arrays_to_rows(cols)
        if len(copy) != snap.steps:
            raise ValueError(f"{path}: holds {len(copy)} metric rows for {snap.steps} steps")
    return snap, copy


def newest_checkpoint(
    run: Path, config: TrainConfig, log: Log | None
) -> tuple[Path, Snapshot, list[Row] | None] | None:
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


def load_checkpoint(path: Path, config: TrainConfig) -> Snapshot:
    """The state in the checkpoint ``path`` of a run of ``config``."""
    return _snapshot(_read_arrays(path), config, path)[0]
