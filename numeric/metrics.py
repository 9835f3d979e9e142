"""The per-iteration metrics of a run: columns, ``metrics.csv`` and its repair on resume.

``metrics.csv`` is append-only: one row per iteration, columns :data:`COLUMNS`.  Every
checkpoint also holds a copy of all rows before it (:func:`rows_to_arrays`), so that on
resume the file can be checked against the checkpoint and repaired from it
(:func:`reconcile`): a missing, duplicated or torn row is restored from the copy; a
recorded row that differs from the copy is never replaced (the run is refused).  Rows
after the checkpoint are recomputed, bit for bit but for the timings, and replaced.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "COLUMNS",
    "LEGACY_COLUMNS",
    "PERIOD",
    "PRE_DIAGNOSTIC_COLUMNS",
    "MetricsFile",
    "Reconciled",
    "Row",
    "arrays_to_rows",
    "format_row",
    "header_line",
    "moving_average",
    "read_metrics",
    "reconcile",
    "rows_to_arrays",
    "scan_metrics",
]

#: Moving-average period of the paper's learning-rate plots.
PERIOD = 100


class Row(NamedTuple):
    """One row of ``metrics.csv``: the metrics of one iteration (fields :data:`COLUMNS`)."""

    iteration: int  # 0-based index of the step
    loss: float  # mini-batch F before the step
    loss_ma100: float  # trailing mean of loss over the last <= 100 iterations
    alpha: float  # step length along the optimizer's lr-free direction
    lr: float  # scheduled learning rate of the step
    lr_eff: float  # effective learning rate (numeric.cr)
    lr_eff_ma100: float  # trailing mean of lr_eff over the last <= 100 iterations
    dgrad: float  # d^T grad F
    dhd: float  # d^T H d (nan where not computed)
    dnorm: float  # ||d||
    flag: str  # "", "nondescent", "zero", "nonfinite"
    step_ms: float  # wall time of the step
    time_s: float  # wall time since the run started (summed over resumes)
    test_loss: float  # loss on the test split after the step (empty where not evaluated)
    test_accuracy: float  # accuracy on the test split after the step (empty likewise)
    # effective ranks on the probe batch (numeric.diagnostics), at evaluation rows only;
    # files written before they were logged lack them (read back as NaN)
    eff_rank: float = math.nan  # of the last hidden layer's activations
    eff_rank_logits: float = math.nan  # of the centred logits


#: Columns of ``metrics.csv``: the fields of :class:`Row`, in order.
COLUMNS: tuple[str, ...] = Row._fields
#: Columns of files written before runs were evaluated on a test split.
LEGACY_COLUMNS = COLUMNS[:13]
#: Columns of files written before the effective ranks were logged.
PRE_DIAGNOSTIC_COLUMNS = COLUMNS[:15]
#: Columns left empty where a row is not an evaluation row.
_EVAL_COLUMNS = ("test_loss", "test_accuracy", "eff_rank", "eff_rank_logits")
_FLOAT_COLUMNS = tuple(c for c in COLUMNS if c not in ("iteration", "flag"))


def header_line() -> str:
    """The first line of ``metrics.csv``."""
    return ",".join(COLUMNS) + "\n"


def format_row(row: Row) -> str:
    """One CSV line; floats as ``repr`` (exact round trip), NaN evaluation columns empty."""
    out = []
    for name, v in zip(COLUMNS, row, strict=True):
        if name in _EVAL_COLUMNS and isinstance(v, float) and math.isnan(v):
            out.append("")
        elif isinstance(v, float):
            out.append(repr(v))
        else:
            out.append(str(v))
    return ",".join(out) + "\n"


def _parse_row(rec: list[str], columns: Sequence[str]) -> Row:
    values = dict(zip(columns, rec, strict=True))
    row: dict[str, Any] = {}
    for name in COLUMNS:
        text = values.get(name, "")
        if name == "iteration":
            row[name] = int(text)
        elif name == "flag":
            row[name] = text
        elif text == "" and name in _EVAL_COLUMNS:
            row[name] = math.nan
        else:
            row[name] = float(text)
    return Row(**row)


@dataclass
class MetricsFile:
    """What :func:`scan_metrics` found in a ``metrics.csv``.

    Attributes
    ----------
    rows : list of Row
        Every complete, parseable row in file order (older rows padded with NaN).
    legacy : bool
        The header is an older one (:data:`LEGACY_COLUMNS`, no test columns, or
        :data:`PRE_DIAGNOSTIC_COLUMNS`, no effective ranks); the missing columns read
        as NaN and a resumed run rewrites the file with the current header.
    bad_lines : list of int
        Line numbers (1-based) that could not be parsed, e.g. a torn last line.
    exists : bool
    """

    rows: list[Row] = field(default_factory=list)
    legacy: bool = False
    bad_lines: list[int] = field(default_factory=list)
    exists: bool = True


def _decode_lines(raw: bytes) -> list[str | None]:
    """The lines of ``raw`` (ends kept), each decoded as UTF-8; None for a line that is not."""
    out: list[str | None] = []
    for line in raw.splitlines(keepends=True):
        try:
            out.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(None)
    return out


def scan_metrics(path: Path) -> MetricsFile:
    """Read ``metrics.csv`` leniently: keep every good row, note every bad line.

    A line that is not UTF-8 text is a bad line like a torn one.

    Raises
    ------
    ValueError
        The file cannot be read, or its header is not one this version writes (not a
        metrics file of a run); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        return MetricsFile(exists=False)
    out = MetricsFile()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    lines = _decode_lines(raw)
    if not lines:
        return out
    if lines[0] is None:
        raise ValueError(f"{path}: not a metrics file (its first line is not UTF-8 text)")
    header = next(csv.reader([lines[0]]))
    if tuple(header) == COLUMNS:
        columns: Sequence[str] = COLUMNS
    elif tuple(header) in (LEGACY_COLUMNS, PRE_DIAGNOSTIC_COLUMNS):
        columns, out.legacy = tuple(header), True
    else:
        raise ValueError(f"{path}: unexpected header {header}")
    for number, line in enumerate(lines[1:], start=2):
        if line is None or not line.endswith("\n"):  # torn, or bytes that are not text
            out.bad_lines.append(number)
            continue
        try:
            out.rows.append(_parse_row(next(csv.reader([line])), columns))
        except (ValueError, TypeError, StopIteration):  # wrong field count, an edited line
            out.bad_lines.append(number)
    return out


def read_metrics(run_dir: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The columns of a run's ``metrics.csv`` as arrays (``flag`` as strings).

    Unparseable lines (a torn last line after a hard kill) are skipped.

    Returns
    -------
    dict
        :data:`COLUMNS` to arrays of shape ``(iterations,)``.
    """
    rows = scan_metrics(Path(run_dir) / "metrics.csv").rows
    return rows_to_arrays(rows)


def rows_to_arrays(rows: Sequence[Row]) -> dict[str, np.ndarray]:
    """Rows to one array per column (int64 iteration, str flag, float64 others)."""
    cols: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        values = [getattr(r, name) for r in rows]
        if name == "iteration":
            cols[name] = np.asarray(values, dtype=np.int64)
        elif name == "flag":
            cols[name] = np.asarray(values, dtype=str) if values else np.zeros(0, dtype="<U1")
        else:
            cols[name] = np.asarray(values, dtype=np.float64)
    return cols


def arrays_to_rows(cols: dict[str, np.ndarray]) -> list[Row]:
    """Inverse of :func:`rows_to_arrays` (Python ints, floats and strs)."""
    n = len(cols["iteration"])
    out = []
    for b in range(n):
        row: dict[str, Any] = {}
        for name in COLUMNS:
            v = cols[name][b]
            if name == "iteration":
                row[name] = int(v)
            elif name == "flag":
                row[name] = str(v)
            else:
                row[name] = float(v)
        out.append(Row(**row))
    return out


def moving_average(values: np.ndarray, period: int = PERIOD) -> np.ndarray:
    """Trailing mean over the last ``<= period`` values (as the ``*_ma100`` columns)."""
    v = np.asarray(values, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - period, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def _same(a: Row, b: Row) -> bool:
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) and isinstance(y, float):
            if not (x == y or (math.isnan(x) and math.isnan(y))):
                return False
        elif x != y:
            return False
    return True


def _span(values: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"`` (at most 6 ranges shown)."""
    parts: list[str] = []
    vals = sorted(values)
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        parts.append(str(vals[i]) if i == j else f"{vals[i]}-{vals[j]}")
        i = j + 1
    return ", ".join(parts[:6]) + (f" and {len(parts) - 6} more" if len(parts) > 6 else "")


@dataclass
class Reconciled:
    """Outcome of :func:`reconcile`.

    Attributes
    ----------
    rows : list of Row
        Exactly one row per iteration ``0 .. steps - 1``, in order.
    repairs : list of str
        What was wrong with the file and restored (empty: the file was intact).
    dropped_after : int
        Rows after the checkpoint (they will be recomputed).
    rewrite : bool
        The file must be rewritten (repairs, rows after the checkpoint, or a legacy
        header).
    damaged : bool
        Rows before the checkpoint were missing, repeated or out of order (keep a copy
        of the file as it was before rewriting it).
    """

    rows: list[Row]
    repairs: list[str]
    dropped_after: int
    rewrite: bool
    damaged: bool


def reconcile(found: MetricsFile, steps: int, copy: list[Row] | None, source: str) -> Reconciled:
    """Check the rows of ``metrics.csv`` before a checkpoint against the checkpoint.

    Parameters
    ----------
    found : MetricsFile
        The file as :func:`scan_metrics` read it.
    steps : int
        Iterations completed at the checkpoint; rows ``0 .. steps - 1`` must be kept.
    copy : list of Row or None
        The checkpoint's copy of those rows (None for checkpoints written before
        checkpoints held one: then only exact duplicates and bad lines after the
        checkpoint can be repaired).
    source : str
        Name of the checkpoint for messages.

    Returns
    -------
    Reconciled

    Raises
    ------
    ValueError
        A recorded row differs from the checkpoint's copy, or (without a copy) rows are
        missing or conflicting; the message says which iterations.  Nothing is changed.
    """
    by_it: dict[int, list[Row]] = {}
    for r in found.rows:
        by_it.setdefault(r.iteration, []).append(r)
    missing, duplicated, conflicting = [], [], []
    for i in range(steps):
        have = by_it.get(i, [])
        if not have:
            missing.append(i)
            continue
        ref = copy[i] if copy is not None else have[0]
        if any(not _same(h, ref) for h in have):
            conflicting.append(i)
        elif len(have) > 1:
            duplicated.append(i)
    later = sum(1 for r in found.rows if r.iteration >= steps)
    in_order = [r.iteration for r in found.rows if r.iteration < steps] == list(range(steps))
    if conflicting:
        what = (
            "differ from the copy in" if copy is not None else "appear twice with different values"
        )
        raise ValueError(
            f"metrics.csv: the rows of iterations {_span(conflicting)} {what} "
            f"{source}; nothing was changed (move metrics.csv aside to rebuild it from the "
            "checkpoint, or start a new run)"
        )
    if missing and copy is None:
        raise ValueError(
            f"metrics.csv lacks the rows of iterations {_span(missing)}, and {source} was "
            "written before checkpoints kept a copy of the metrics; nothing was changed "
            "(restore metrics.csv, or start a new run)"
        )
    repairs = []
    if not found.exists:
        if steps:
            repairs.append(f"metrics.csv was missing; restored its {steps} rows")
        missing = []
    if missing:
        repairs.append(f"restored the missing rows of iterations {_span(missing)}")
    if duplicated:
        repairs.append(f"removed repeated rows of iterations {_span(duplicated)}")
    if not in_order and not (missing or duplicated):
        repairs.append("put the rows back in iteration order")
    damaged = bool(repairs)  # rows before the checkpoint were not exactly once, in order
    if found.bad_lines:
        lines = ", ".join(str(n) for n in found.bad_lines[:5])
        repairs.append(f"dropped {len(found.bad_lines)} unreadable line(s) (line {lines})")
    rows = list(copy) if copy is not None else [by_it[i][0] for i in range(steps)]
    rewrite = bool(repairs) or later > 0 or found.legacy
    return Reconciled(rows, repairs, later, rewrite, damaged)
