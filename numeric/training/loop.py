"""The training loop: iterations from a snapshot to the configured length, with what
happens between them (metric rows, evaluations, checkpoints, signals, failures).

:func:`run_loop` runs :class:`~numeric.training.iteration.Iteration` until the run is
complete, interrupted (:mod:`numeric.stopping`), diverged (:class:`numeric.cr.Diverged`)
or failed.  Metric rows are appended to ``metrics.csv`` every ``flush_every`` rows and at
every checkpoint; whatever ends the loop, the rows of every completed iteration are
written, a checkpoint of the last one is saved and ``summary.json`` says how it ended.
:func:`numeric.training.runs.train` and :func:`~numeric.training.runs.resume` check a
run before they hand it to the loop.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from numeric.cr import Diverged, Method, StepInfo
from numeric.data import BatchSampler, Dataset
from numeric.diagnostics import PROBE_ROWS, Collapse, collapse
from numeric.metrics import Row, format_row, header_line
from numeric.network import Network
from numeric.stepping import eval_network
from numeric.stopping import StopFlag
from numeric.training.checkpoints import Snapshot, save_checkpoint
from numeric.training.config import TrainConfig
from numeric.training.data import place
from numeric.training.evaluation import evaluate, summarize
from numeric.training.iteration import Iteration
from numeric.training.progress import Progress
from numeric.training.rundir import atomic_write, write_json

__all__ = ["Callback", "RunResult", "TrainingFailed", "blas_threads", "run_loop"]

#: ``callback(iteration, info)``, called after every iteration.
Callback = Callable[[int, StepInfo], None]


class TrainingFailed(RuntimeError):
    """An exception inside the training loop; the original is its ``__cause__``.

    Before it is raised the run directory receives every completed iteration's metrics,
    a checkpoint of the last one and a ``"failed"`` summary naming the error.
    """


@dataclass
class RunResult:
    """Outcome of :func:`~numeric.training.runs.train` / :func:`~numeric.training.runs.resume`.

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


@contextlib.contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """Limit BLAS to ``threads`` threads inside the block (threadpoolctl when installed;
    None: leave the setting alone)."""
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


class _Recorder:
    """The metric rows of a run and where they go: ``metrics.csv`` (appended in chunks),
    checkpoints and ``summary.json``.

    ``rows`` holds every row of the run so far (one per completed iteration, in order);
    ``pending`` the ones not yet appended to ``metrics.csv``.
    """

    def __init__(self, run: Path, config: TrainConfig, rows: list[Row], keep: int) -> None:
        self.run = run
        self.config = config
        self.rows = rows
        self.keep = keep
        self.pending: list[Row] = []

    def add(self, row: Row) -> None:
        self.rows.append(row)
        self.pending.append(row)

    def flush(self, upto: int) -> None:
        """Append the pending rows of iterations before ``upto``; drop the others."""
        keep_rows = [r for r in self.pending if r.iteration < upto]
        if keep_rows:
            with (self.run / "metrics.csv").open("a") as fh:
                fh.write("".join(format_row(r) for r in keep_rows))
                fh.flush()
        self.pending = []

    def checkpoint(self, snap: Snapshot, state: str, **extra: Any) -> dict:
        """Flush, save the checkpoint of ``snap`` and write the summary with ``state``.

        When the metrics or the checkpoint cannot be written (a full disk, a blocked
        ``checkpoints/``), the summary still says so (``"failed"``, the error) before the
        error propagates: it never stays ``"running"``.
        """
        done = self.rows[: snap.steps]
        try:
            self.flush(snap.steps)
            path = save_checkpoint(self.run, snap, done, self.config, self.keep)
        except OSError as exc:
            failed = summarize(done, self.config, "failed", error=f"not saved: {exc}")
            with contextlib.suppress(OSError):
                write_json(self.run / "summary.json", failed)
            raise
        summary = summarize(
            done, self.config, state, checkpoint=str(path.relative_to(self.run)), **extra
        )
        write_json(self.run / "summary.json", summary)
        return summary


class _Loop:
    """One pass of the loop over a run's remaining iterations (see :func:`run_loop`)."""

    def __init__(
        self,
        config: TrainConfig,
        run: Path,
        data: Dataset,
        test: Dataset | None,
        method: Method,
        snap: Snapshot,
        recorder: _Recorder,
    ) -> None:
        self.config = config
        self.run = run
        self.test = test
        self.start = snap
        self.committed = snap
        self.recorder = recorder
        self.sampler = BatchSampler.from_state(snap.sampler)
        net, transfer = place(config, snap.network)
        self.iteration = Iteration(
            method,
            net,
            snap.state,
            data.x,
            data.labels,
            self.sampler,
            snap.tail_loss,
            snap.tail_lr_eff,
            transfer,
        )
        self.every = config.eval_every if test is not None else 0
        self.status = "running"
        self.error: BaseException | None = None
        self.diverged: str | None = None
        self.t0 = 0.0

    def iterate(self, stop: StopFlag, bar: Progress, callback: Callback | None, flush_every: int):
        """Run the iterations; ``status`` says how they ended unless an exception does."""
        config, recorder = self.config, self.recorder
        for it in range(self.start.steps, config.iterations):
            if stop.requested:
                self.status = "interrupted"
                return
            info = self.step(it)
            bar.update(info)
            if callback is not None:
                callback(it, info)
            if len(recorder.pending) >= flush_every:
                recorder.flush(self.committed.steps)
            if self.committed.steps % config.checkpoint_every == 0:
                with stop.deferred():
                    recorder.checkpoint(self.committed, "running")
        self.status = "completed"

    def step(self, it: int) -> StepInfo:
        """Iteration ``it``: the step, its evaluation when due, its row and snapshot."""
        iteration = self.iteration
        info, mean_loss, mean_lr, seconds = iteration()
        now = time.perf_counter()
        test_loss = test_accuracy = math.nan
        ranks = Collapse(math.nan, math.nan)
        due = self.every and ((it + 1) % self.every == 0 or it + 1 == self.config.iterations)
        if due and self.test is not None:
            net = eval_network(iteration.method, iteration.net, iteration.state)
            test_loss, test_accuracy = evaluate(net, self.test)
            ranks = collapse(net, self.test.x[:PROBE_ROWS])
        row = Row(
            iteration=it,
            loss=info.loss,
            loss_ma100=mean_loss,
            alpha=info.alpha,
            lr=info.lr,
            lr_eff=info.lr_eff,
            lr_eff_ma100=mean_lr,
            dgrad=info.dgrad,
            dhd=info.dhd,
            dnorm=info.dnorm,
            flag=info.flag,
            step_ms=seconds * 1e3,
            time_s=self.start.elapsed + (now - self.t0),
            test_loss=test_loss,
            test_accuracy=test_accuracy,
            eff_rank=ranks.eff_rank,
            eff_rank_logits=ranks.eff_rank_logits,
        )
        self.recorder.add(row)
        self.committed = Snapshot(
            it + 1,
            iteration.net,
            iteration.state,
            self.sampler.state_dict(),
            iteration.tail_loss,
            iteration.tail_lr,
            row.time_s,
        )
        return info

    def extra(self, stop: StopFlag) -> dict[str, Any]:
        """What the final summary adds to the numbers: the error, divergence or signal."""
        extra: dict[str, Any] = {}
        if self.diverged is not None:
            extra["diverged"] = self.diverged
        if self.error is not None:
            extra["error"] = f"{type(self.error).__name__}: {self.error}"
        if self.status == "interrupted" and stop.signal_name:
            extra["signal"] = stop.signal_name
        return extra

    def result(self, summary: dict, stop: StopFlag) -> RunResult:
        """The run's outcome, or the exception that ended it."""
        error, committed = self.error, self.committed
        if error is not None:
            if isinstance(error, Exception):
                raise TrainingFailed(
                    f"{self.run}: {type(error).__name__}: {error} (after {committed.steps} "
                    "iterations; metrics and a checkpoint were written)"
                ) from error
            raise error
        signal_name = stop.signal_name if self.status == "interrupted" else ""
        network = committed.network
        if self.config.backend == "jax":
            from numeric import jax_backend as jb

            network = jb.to_numpy(network)
        return RunResult(self.run, self.status, committed.steps, summary, network, signal_name)


def run_loop(
    config: TrainConfig,
    run: Path,
    data: Dataset,
    test: Dataset | None,
    method: Method,
    snap: Snapshot,
    rows: list[Row],
    progress: bool,
    flush_every: int,
    keep: int,
    threads: int | None,
    callback: Callback | None,
) -> RunResult:
    """Iterate a run from ``snap`` (its rows so far ``rows``) to ``config.iterations``.

    Parameters are those of :func:`numeric.training.runs.train` (``threads`` is its
    ``blas_threads``); ``run`` is locked and holds the run's ``config.json``.

    Returns
    -------
    RunResult
        ``status`` ``"completed"``, ``"interrupted"`` or ``"diverged"``.

    Raises
    ------
    TrainingFailed
        An exception in the loop (its ``__cause__``), after the metrics, a checkpoint
        and a ``"failed"`` summary were written; a ``BaseException`` that is not an
        ``Exception`` is re-raised as it is, after the same records.
    """
    metrics_path = run / "metrics.csv"
    if not metrics_path.exists():
        atomic_write(metrics_path, header_line().encode())
    recorder = _Recorder(run, config, rows, keep)
    loop = _Loop(config, run, data, test, method, snap, recorder)
    write_json(run / "summary.json", summarize(rows, config, loop.status))
    bar = Progress(progress, config.iterations, snap.steps, config.label())
    loop.t0 = time.perf_counter()
    # overflow on the way to a divergence is detected and recorded, not warned about
    errstate = np.errstate(over="ignore", invalid="ignore", divide="ignore")
    with blas_threads(threads), StopFlag() as stop, errstate:
        try:
            loop.iterate(stop, bar, callback, flush_every)
        except KeyboardInterrupt:
            loop.status = "interrupted"
        except Diverged as exc:
            loop.status = "diverged"
            loop.diverged = str(exc)
        except BaseException as exc:  # record, then re-raise below
            loop.status = "failed"
            loop.error = exc
        finally:
            bar.close()
            rows[:] = rows[: loop.committed.steps]
            extra = loop.extra(stop)
            with stop.deferred(then_raise=False):  # no signal leaves it half-written
                summary = recorder.checkpoint(loop.committed, loop.status, **extra)
    return loop.result(summary, stop)
