"""Starting, resuming and reusing training runs: :func:`train`, :func:`resume` and
:func:`ensure_run`.

Each checks what it is asked to do (the configuration, the directory, the data, the
checkpoint and ``metrics.csv``) before it writes anything, so a refused or failed start
leaves no half-made run behind, then takes the run's lock and hands the run to the loop
(:func:`numeric.training.loop.run_loop`).  The run directory and what it holds are
described in :mod:`numeric.training`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from numeric.architectures import network_for
from numeric.cr import Method
from numeric.data import BatchSampler, Dataset
from numeric.metrics import (
    MetricsFile,
    Reconciled,
    Row,
    format_row,
    header_line,
    reconcile,
    scan_metrics,
)
from numeric.sizes import hidden_phrase
from numeric.training.checkpoints import (
    Snapshot,
    latest_checkpoint,
    load_checkpoint,
    newest_checkpoint,
)
from numeric.training.config import TrainConfig, config_key, load_config
from numeric.training.data import (
    check_batch,
    check_same_data,
    config_record,
    device_count,
    run_data,
)
from numeric.training.loop import Callback, RunResult, run_loop
from numeric.training.methods import build_method
from numeric.training.progress import Log, stderr_log
from numeric.training.rundir import (
    atomic_write,
    clear_run_files,
    create_directory,
    directory_state,
    read_json,
    refuse_links,
    remove_temporaries,
    run_lock,
    write_json,
)

__all__ = ["ensure_run", "resume", "start_line", "train"]


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
    callback: Callback | None = None,
    log: Log | None = stderr_log,
) -> RunResult:
    """Train from scratch into a new run directory.

    Parameters
    ----------
    config : TrainConfig
    run_dir : path
        Created if needed.  It must be absent or empty; a directory holding a run, or
        anything else, is refused unless ``overwrite``.
    dataset : Dataset, optional
        Training data; default :func:`~numeric.training.data.load_training_data` (``config.dataset``), and
        then the test split too (:func:`~numeric.training.data.load_test_data`).
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
    ~numeric.training.rundir.RunDirError
        ``run_dir`` cannot be created or written (:class:`~numeric.training.rundir.RunLocked`: another process
        is writing it).
    DatasetError
        The data are missing or unreadable.
    ~numeric.training.loop.TrainingFailed
        An exception in the loop (its ``__cause__``), after the metrics, a checkpoint
        and a ``"failed"`` summary were written.
    """
    run = Path(run_dir)
    config = config.resolved()
    _refuse_existing(run, directory_state(run), overwrite)
    if run.is_dir():
        refuse_links(run)
    # everything is checked before anything is written: a refused run leaves no file
    data, test = run_data(config, dataset, test_dataset, log)
    check_batch(config, data)
    devices = device_count(config)
    method = build_method(config)
    net = network_for(config, data)  # a model that does not fit
    state = method.init(net)  # a rule not derived for this network (per-variable on a CNN)
    sampler = BatchSampler(len(data), config.batch_size, config.seed)
    if log is not None:
        log(start_line(config, run, devices))
    create_directory(run)
    with run_lock(run):
        _refuse_existing(run, directory_state(run), overwrite)  # again, under the lock
        refuse_links(run)
        remove_temporaries(run)
        if overwrite:
            clear_run_files(run)
        write_json(run / "config.json", config_record(config, data, test))
        atomic_write(run / "metrics.csv", header_line().encode())
        snap = Snapshot(0, net, state, sampler.state_dict(), [], [], 0.0)
        return run_loop(
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


def start_line(config: TrainConfig, run: Path, devices: int) -> str:
    """``"SGD with CR, 12 hidden layers of 128 -> runs/x"`` (and the JAX devices used)."""
    size = f", {hidden_phrase(config.hidden)}" if config.model == "mlp" else ""
    where = ""
    if config.backend == "jax":
        where = f" on {devices} JAX device{'s' if devices != 1 else ''}"
    return f"{config.label()}{size} -> {run}{where}"


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
    callback: Callback | None = None,
    log: Log | None = stderr_log,
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
    ~numeric.training.rundir.RunDirError
        Another process is writing the run (:class:`~numeric.training.rundir.RunLocked`), or ``config.json`` is
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
    callback: Callback | None,
    log: Log | None,
) -> RunResult:
    """:func:`resume` under the run's lock."""
    refuse_links(run)
    stale = remove_temporaries(run)
    if stale and log is not None:
        log(f"{run}: removed {len(stale)} temporary file(s) of an interrupted write")
    config_path = run / "config.json"
    stored = load_config(run).resolved()
    config = stored
    if iterations is not None and int(iterations) != config.iterations:
        config = replace(config, iterations=int(iterations))  # validated, not yet saved
    if devices is not None and int(devices) != config.devices:
        config = replace(config, devices=int(devices))
    data, test = run_data(config, dataset, test_dataset, log)
    if dataset is None:  # loaded by the config's name: the files must hold what they held
        check_same_data(read_json(config_path), data, test)
    check_batch(config, data)
    used = device_count(config)  # before the changed count is written into config.json
    method = build_method(config)
    snap, copy, source = _start_point(run, config, method, data, log)
    if snap.steps > config.iterations:
        raise ValueError(
            f"{run} has a checkpoint after {snap.steps} iterations, more than the "
            f"requested {config.iterations}; nothing was changed"
        )
    metrics_path = run / "metrics.csv"
    scanned = scan_metrics(metrics_path)
    fixed = reconcile(scanned, snap.steps, copy, source)
    # accepted: from here on the run directory is written
    _write_repairs(metrics_path, scanned, fixed, source, log)
    if log is not None:
        log(start_line(config, run, used))
    if config != stored:
        record = read_json(config_path)
        record["config"] = config.to_json()
        write_json(config_path, record)
    return run_loop(
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


def _start_point(
    run: Path, config: TrainConfig, method: Method, data: Dataset, log: Log | None
) -> tuple[Snapshot, list[Row] | None, str]:
    """Where a resumed run starts: the newest readable checkpoint, or the start of the
    run without one; with the checkpoint's copy of the metric rows and its name."""
    found = newest_checkpoint(run, config, log)
    if found is None:
        net = network_for(config, data)
        sampler = BatchSampler(len(data), config.batch_size, config.seed)
        snap = Snapshot(0, net, method.init(net), sampler.state_dict(), [], [], 0.0)
        return snap, [], "the start of the run (no checkpoint)"
    path, snap, copy = found
    return snap, copy, str(path.relative_to(run))


def _write_repairs(
    metrics_path: Path, scanned: MetricsFile, fixed: Reconciled, source: str, log: Log | None
) -> None:
    """Rewrite ``metrics.csv`` as :func:`~numeric.metrics.reconcile` found it must be
    (keeping a damaged file as ``metrics.csv.damaged``), and say what was repaired."""
    if fixed.damaged and scanned.exists:
        backup = _free_name(metrics_path.with_name("metrics.csv.damaged"))
        atomic_write(backup, metrics_path.read_bytes())
        fixed.repairs.append(f"the file as it was is kept as {backup.name}")
    if fixed.rewrite:
        text = header_line() + "".join(format_row(r) for r in fixed.rows)
        atomic_write(metrics_path, text.encode())
    if fixed.repairs and log is not None:
        log(f"{metrics_path}: repaired from {source}: " + "; ".join(fixed.repairs))


def _free_name(path: Path) -> Path:
    """``path``, or ``path.1``, ``path.2``, ... : the first that does not exist."""
    if not path.exists():
        return path
    n = 1
    while path.with_name(f"{path.name}.{n}").exists():
        n += 1
    return path.with_name(f"{path.name}.{n}")


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
            snap = load_checkpoint(ckpt, config)
            if snap.steps == done:
                return RunResult(run, str(status), done, summary, snap.network)
    return resume(run, iterations=config.iterations, dataset=dataset, progress=progress, **kwargs)
