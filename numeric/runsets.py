"""Run directories as methods: readable labels, runs pooled by method, mean and band.

A run directory holds ``config.json`` (a :class:`numeric.training.TrainConfig`) and
``metrics.csv`` (:data:`numeric.metrics.COLUMNS`).  :func:`group_runs` pools runs into
:class:`Group` s: one per run (``by="run"``) or one per method (``by="method"``: runs that
differ only in their seed, or in bookkeeping such as the iteration count).  Each group is
named by :meth:`TrainConfig.label` (the project's one name table), with the settings that
tell apart groups of the same name appended (``"SGD with CR, sigma 1000"``,
``"SGD, seed 2"``).  :func:`band` gives a group's mean curve and its min-max band over
the runs, on the iterations every run of the group recorded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np

from numeric.metrics import moving_average, read_metrics
from numeric.sizes import describe_hidden
from numeric.training.config import TrainConfig, load_config

__all__ = ["Band", "Group", "Run", "band", "group_runs", "has_evaluations", "load_run"]

#: Settings that do not change what a run computes (never part of a method).
BOOKKEEPING = ("data_dir", "iterations", "checkpoint_every", "eval_every", "devices")
#: Settings that only matter under CR (ignored for runs without it).
CR_ONLY = ("sigma", "averaging", "nondescent", "cr_variant", "cr_every")


@dataclass(frozen=True)
class Run:
    """One run directory.

    Attributes
    ----------
    path : Path
    config : TrainConfig or None
        None where ``config.json`` is missing or unreadable (the run is then named by
        its directory).
    metrics : dict
        :data:`numeric.metrics.COLUMNS` to arrays of shape ``(rows,)``.
    """

    path: Path
    config: TrainConfig | None
    metrics: dict[str, np.ndarray]


@dataclass(frozen=True)
class Group:
    """Runs drawn as one curve: ``label`` names the method, ``runs`` has length >= 1."""

    label: str
    runs: tuple[Run, ...]


@dataclass(frozen=True)
class Band:
    """A group's curve: ``mean``, ``low`` (min) and ``high`` (max) over its runs at ``x``.

    All arrays have shape ``(points,)``; ``iteration`` holds the iterations of the points
    (common to every run), ``x`` the iteration or the mean wall time at it; ``runs`` is
    the number of runs pooled.
    """

    iteration: np.ndarray
    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    runs: int


def load_run(path: str | os.PathLike[str]) -> Run:
    """The config (None if missing or unreadable) and metrics of a run directory."""
    path = Path(path)
    try:
        config: TrainConfig | None = load_config(path).resolved()
    except (OSError, ValueError):  # RunDirError is a ValueError
        config = None
    return Run(path, config, read_metrics(path))


def _settings(config: TrainConfig, by: str) -> dict[str, Any]:
    """What makes a method: the resolved config without bookkeeping (and seed by method)."""
    drop = set(BOOKKEEPING) | (set() if config.cr else set(CR_ONLY))
    if by == "method":
        drop.add("seed")
    return {k: v for k, v in config.to_json().items() if k not in drop}


def _phrase(name: str, value: Any) -> str:
    """One setting in words: ``sigma 1000``, ``hidden 2x8``, ``cr variant adaptive``."""
    if name == "hidden":
        return f"hidden {describe_hidden(value)}"
    if isinstance(value, float):
        value = f"{value:g}"
    return f"{name.replace('_', ' ')} {value}"


def _key(settings: dict[str, Any]) -> str:
    return repr(sorted(settings.items(), key=lambda kv: kv[0]))


def group_runs(runs: Sequence[Run], by: str = "run") -> list[Group]:
    """Pool ``runs`` into groups, in the order of their first run.

    Parameters
    ----------
    runs : sequence of Run
    by : {"run", "method"}
        ``"run"``: one group per run; ``"method"``: runs of the same settings but for the
        seed (and bookkeeping) in one group.

    Returns
    -------
    list of Group
        Labels are unique: groups whose :meth:`TrainConfig.label` coincides get the
        settings that differ between them appended; runs without a config are named by
        their directory.
    """
    if by not in ("run", "method"):
        raise ValueError(f"by must be 'run' or 'method', got {by!r}")
    keyed: dict[str, list[Run]] = {}
    settings: dict[str, dict[str, Any]] = {}
    for i, run in enumerate(runs):
        if run.config is None:
            key = f"path {i} {run.path}"
            settings[key] = {}
        else:
            s = _settings(run.config, by)
            key = _key(s) if by == "method" else f"{i} {_key(s)}"
            settings[key] = s
        keyed.setdefault(key, []).append(run)
    names = {
        k: (rs[0].config.label() if rs[0].config else rs[0].path.name) for k, rs in keyed.items()
    }
    labels = {}
    for key, name in names.items():
        same = [k for k, n in names.items() if n == name and settings[k]]
        if len(same) < 2 or not settings[key]:
            labels[key] = name
            continue
        differ = [f for f in settings[key] if len({repr(settings[k].get(f)) for k in same}) > 1]
        words = ", ".join(_phrase(f, settings[key][f]) for f in differ)
        labels[key] = f"{name}, {words}" if words else f"{name} [{keyed[key][0].path.name}]"
    return [Group(labels[k], tuple(rs)) for k, rs in keyed.items()]


def has_evaluations(runs: Sequence[Run]) -> bool:
    """Whether any run has an evaluation row (a finite ``test_accuracy``)."""
    return any(np.isfinite(r.metrics["test_accuracy"]).any() for r in runs)


def band(group: Group, column: str, *, x: str = "iteration", smooth: bool = False) -> Band:
    """Mean and min-max band of ``column`` over the runs of ``group``.

    Parameters
    ----------
    column : str
        A float column of :data:`numeric.metrics.COLUMNS`; rows where it is NaN (the
        test columns between evaluations) are left out.
    x : {"iteration", "time"}
        The abscissa: the iteration, or the wall time ``time_s`` at it (the mean over
        the runs).
    smooth : bool
        Take each run's trailing moving average (period 100,
        :func:`numeric.metrics.moving_average`) before pooling.

    Returns
    -------
    Band
        On the iterations every run recorded (a finite value at); empty if none.
    """
    if x not in ("iteration", "time"):
        raise ValueError(f"x must be 'iteration' or 'time', got {x!r}")
    per_run = []
    for run in group.runs:
        m = run.metrics
        values = np.asarray(m[column], float)
        if smooth:
            values = moving_average(values)
        keep = np.isfinite(values)
        its, first = np.unique(np.asarray(m["iteration"])[keep], return_index=True)
        per_run.append((its, values[keep][first], np.asarray(m["time_s"], float)[keep][first]))
    common = reduce(np.intersect1d, [p[0] for p in per_run])
    rows = [np.searchsorted(its, common) for its, _, _ in per_run]
    ys = np.stack([v[r] for (_, v, _), r in zip(per_run, rows, strict=True)])
    times = np.stack([t[r] for (_, _, t), r in zip(per_run, rows, strict=True)])
    xs = common.astype(float) if x == "iteration" else times.mean(axis=0)
    if common.size == 0:
        empty = np.zeros(0)
        return Band(common, empty, empty, empty, empty, len(per_run))
    return Band(common, xs, ys.mean(axis=0), ys.min(axis=0), ys.max(axis=0), len(per_run))
