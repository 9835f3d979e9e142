"""What a run achieved: the loss and accuracy on the test split (:func:`evaluate`) and the
key numbers of its metric rows (:func:`summarize`, the content of ``summary.json``;
:func:`summary_line` prints them)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from numeric.cr import FLAGS
from numeric.data import Dataset
from numeric.metrics import Row
from numeric.network import Network
from numeric.training.config import TrainConfig

__all__ = ["EVAL_CHUNK", "LOSS_THRESHOLDS", "evaluate", "summarize", "summary_line"]

#: Loss levels whose first crossing (by the period-100 moving average) is recorded.
LOSS_THRESHOLDS = (2.0, 1.0)
#: Test rows evaluated per forward pass.
EVAL_CHUNK = 1000


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


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


def summarize(rows: Sequence[Row], config: TrainConfig, status: str, **extra: Any) -> dict:
    """Key numbers of a run from its metric rows.

    Returns
    -------
    dict
        ``status``, ``label``, ``iterations_done``/``iterations_target``, final loss
        and its moving average, ``iters_to_loss_below`` (first iteration whose
        ``loss_ma100`` is below each of :data:`LOSS_THRESHOLDS`, or None), mean and
        median ``lr_eff``, ``flag_counts``, timings, the last evaluation on the test
        split (``test_loss``, ``test_accuracy``, ``test_iteration``, and the effective
        ranks ``eff_rank``, ``eff_rank_logits`` of :mod:`numeric.diagnostics`; None
        without one),
        plus ``extra``.
    """
    n = len(rows)
    out: dict[str, Any] = {
        "status": status,
        "label": config.label(),
        "iterations_done": n,
        "iterations_target": config.iterations,
    }
    if n:
        loss_ma = np.fromiter((r.loss_ma100 for r in rows), float, n)
        lr_eff = np.fromiter((r.lr_eff for r in rows), float, n)
        step_ms = np.fromiter((r.step_ms for r in rows), float, n)
        crossings = {}
        for t in LOSS_THRESHOLDS:
            below = np.flatnonzero(loss_ma < t)
            crossings[f"{t:.1f}"] = int(below[0]) if below.size else None
        counts = {f: 0 for f in FLAGS if f}
        for r in rows:
            if r.flag:
                counts[r.flag] = counts.get(r.flag, 0) + 1
        out.update(
            final_loss=rows[-1].loss,
            final_loss_ma100=rows[-1].loss_ma100,
            iters_to_loss_below=crossings,
            lr_eff_mean=float(lr_eff.mean()),
            lr_eff_median=float(np.median(lr_eff)),
            flag_counts=counts,
            mean_step_ms=float(step_ms.mean()),
            elapsed_s=rows[-1].time_s,
        )
        evaluated = [r for r in rows if math.isfinite(r.test_loss)]
        last = evaluated[-1] if evaluated else None
        out.update(
            test_loss=None if last is None else last.test_loss,
            test_accuracy=None if last is None else last.test_accuracy,
            test_iteration=None if last is None else last.iteration,
            eff_rank=None if last is None else last.eff_rank,
            eff_rank_logits=None if last is None else last.eff_rank_logits,
        )
    out.update(extra)
    return _jsonable(out)


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
    if s.get("eff_rank") is not None:
        logits = s.get("eff_rank_logits")
        parts.append(
            f"effective rank {s['eff_rank']:.1f} (last hidden layer), "
            f"{'-' if logits is None else f'{logits:.1f}'} (centred logits)"
        )
    if s.get("lr_eff_mean") is not None:
        parts.append(f"mean lr {s['lr_eff_mean']:.3g}")
    flags = {k: v for k, v in (s.get("flag_counts") or {}).items() if v}
    if flags:
        parts.append("flagged steps " + ", ".join(f"{k} {v}" for k, v in flags.items()))
    return "; ".join(parts) + f"  [{run_dir}]"
