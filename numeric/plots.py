"""Two-panel figures in the style of the paper's Figures 1-5 (matplotlib, Agg, PNG).

Panel (a): the error (mini-batch training loss) of the base optimizer (blue) and of the
base optimizer with CR (red) against the iteration; each as the per-iteration values
(thin, faint, with their own legend entry) and their period-100 moving average (solid).
The error axis is clipped to the range of the moving averages and of the bulk of the
per-iteration values (:func:`error_limits`), so that a few loss spikes do not flatten
the curves; its tick labels are plain numbers (no offset such as ``1e-5+2.3025``).
Panel (b): the learning rate CR computed (red) with its period-100 moving average
(green), on a logarithmic axis (CR's rate spans orders of magnitude between the plateau
and normal descent); the base optimizer's scheduled rate is drawn dashed blue.

:func:`plot_many` draws any number of runs side by side (``lowrank plot``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from numeric.metrics import moving_average, read_metrics

__all__ = ["comparison_figure", "error_limits", "plot_comparison", "plot_many", "plot_runs"]

Metrics = Mapping[str, np.ndarray]


def _figure(**kwargs):
    """A matplotlib ``Figure`` drawn by the Agg canvas, without pyplot.

    Not touching pyplot leaves the user's backend alone (inline figures in Jupyter
    keep working) and needs no display.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "plots need matplotlib; install it with `pip install matplotlib` "
            "(or the package's `train` extra)"
        ) from exc
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def error_limits(
    traces: Sequence[np.ndarray], averages: Sequence[np.ndarray]
) -> tuple[float, float]:
    """Limits of the error axis.

    The axis runs from the lowest value (per iteration or averaged) to the 99th
    percentile of the per-iteration values or the 95th of the moving averages, whichever
    is higher, with a 5% margin: the rare spikes above (and the bumps they leave in the
    moving average) are cut off instead of flattening every curve.

    Returns
    -------
    (bottom, top) : tuple of float
    """
    raw = np.concatenate([np.ravel(np.asarray(t, float)) for t in traces] + [np.zeros(0)])
    ma = np.concatenate([np.ravel(np.asarray(a, float)) for a in averages] + [np.zeros(0)])
    raw, ma = raw[np.isfinite(raw)], ma[np.isfinite(ma)]
    if raw.size == 0 and ma.size == 0:
        return 0.0, 1.0
    highs = [np.percentile(ma, 95)] if ma.size else []
    lows = [ma.min()] if ma.size else []
    if raw.size:
        highs.append(np.percentile(raw, 99))
        lows.append(raw.min())
    top, bottom = float(max(highs)), float(min(lows))
    pad = 0.05 * (top - bottom) if top > bottom else max(1e-3, 1e-3 * abs(top))
    low = bottom - pad
    if bottom >= 0:
        low = max(0.0, low)
    return low, top + pad


def _plain_numbers(ax) -> None:
    """Tick labels as plain numbers: no offset (``1e-5+2.3025``), no scientific factor."""
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)


def comparison_figure(
    baseline: Metrics,
    cr: Metrics,
    *,
    title: str = "",
    baseline_label: str = "SGD",
    cr_label: str = "SGD with CR",
    extra: Sequence[tuple[str, Metrics]] = (),
):
    """The two-panel comparison as a matplotlib ``Figure`` (see :func:`plot_comparison`)."""
    fig = _figure(figsize=(12, 4.5), layout="constrained")
    ax_a, ax_b = fig.subplots(1, 2)
    traces: list[np.ndarray] = []
    averages: list[np.ndarray] = []

    def error_curve(m: Metrics, color: str, label: str) -> None:
        if len(m["iteration"]) == 0:
            return
        loss = np.asarray(m["loss"], float)
        ma = moving_average(loss)
        traces.append(loss)
        averages.append(ma)
        ax_a.plot(
            m["iteration"],
            loss,
            color=color,
            alpha=0.25,
            linewidth=0.6,
            label=f"{label} (per iteration)",
        )
        ax_a.plot(
            m["iteration"],
            ma,
            color=color,
            linewidth=1.6,
            label=f"{label} (moving average, period 100)",
        )

    error_curve(baseline, "tab:blue", baseline_label)
    error_curve(cr, "tab:red", cr_label)
    for (label, m), color in zip(extra, ("tab:orange", "tab:purple", "tab:brown"), strict=False):
        error_curve(m, color, label)
    ax_a.set_ylim(*error_limits(traces, averages))
    _plain_numbers(ax_a)
    ax_a.set_xlabel("iteration")
    ax_a.set_ylabel("error (mini-batch cross-entropy)")
    ax_a.set_title(f"(a) Error ({baseline_label} in blue, {cr_label} in red)")
    ax_a.legend(fontsize=8)
    ax_a.grid(alpha=0.3)

    if len(cr["iteration"]):
        lr = np.asarray(cr["lr_eff"], dtype=float)
        ax_b.plot(
            cr["iteration"], lr, color="tab:red", linewidth=0.6, alpha=0.7, label="calculated rate"
        )
        ax_b.plot(
            cr["iteration"],
            moving_average(lr),
            color="tab:green",
            linewidth=1.8,
            label="moving average, period 100",
        )
    if len(baseline["iteration"]):
        ax_b.plot(
            baseline["iteration"],
            baseline["lr"],
            color="tab:blue",
            linestyle="--",
            linewidth=1.0,
            label=f"{baseline_label} scheduled rate",
        )
    positive = np.concatenate([np.asarray(cr["lr_eff"], float), np.asarray(baseline["lr"], float)])
    if np.any(positive > 0):
        ax_b.set_yscale("log")
    else:
        _plain_numbers(ax_b)
    ax_b.set_xlabel("iteration")
    ax_b.set_ylabel("learning rate")
    ax_b.set_title("(b) Learning rate (CR in red, period-100 average in green)")
    ax_b.legend(fontsize=8)
    ax_b.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title)
    return fig


def plot_comparison(
    baseline: Metrics,
    cr: Metrics,
    path: str | os.PathLike[str],
    *,
    title: str = "",
    baseline_label: str = "SGD",
    cr_label: str = "SGD with CR",
    extra: Sequence[tuple[str, Metrics]] = (),
) -> Path:
    """Write the two-panel comparison figure.

    Parameters
    ----------
    baseline, cr : mapping
        Metric columns (as :func:`numeric.metrics.read_metrics` returns): at least
        ``iteration``, ``loss``, ``lr_eff``, ``lr``.
    path : path
        Output PNG file (parent directories are created).
    title : str
        Figure title (e.g. the paper's caption).
    baseline_label, cr_label : str
        Legend labels.
    extra : sequence of (label, metrics)
        Further CR runs to draw in panel (a) (e.g. other averaging options).

    Returns
    -------
    Path
        ``path``.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = comparison_figure(
        baseline, cr, title=title, baseline_label=baseline_label, cr_label=cr_label, extra=extra
    )
    fig.savefig(out, dpi=110)
    return out


def many_figure(runs: Sequence[tuple[str, Metrics]], *, title: str = ""):
    """Error and learning rate of several runs, one colour per run (a ``Figure``)."""
    fig = _figure(figsize=(12, 4.5), layout="constrained")
    ax_a, ax_b = fig.subplots(1, 2)
    colors = [f"C{i % 10}" for i in range(len(runs))]
    traces, averages, rates = [], [], []
    for (label, m), color in zip(runs, colors, strict=True):
        if len(m["iteration"]) == 0:
            continue
        loss = np.asarray(m["loss"], float)
        ma = moving_average(loss)
        traces.append(loss)
        averages.append(ma)
        ax_a.plot(m["iteration"], loss, color=color, alpha=0.2, linewidth=0.6)
        ax_a.plot(m["iteration"], ma, color=color, linewidth=1.6, label=label)
        lr = np.asarray(m["lr_eff"], float)
        rates.append(lr)
        ax_b.plot(m["iteration"], moving_average(lr), color=color, linewidth=1.4, label=label)
    if traces:  # one legend entry for the faint per-iteration traces of all runs
        ax_a.plot([], [], color="grey", alpha=0.4, linewidth=0.6, label="per iteration (faint)")
    ax_a.set_ylim(*error_limits(traces, averages))
    _plain_numbers(ax_a)
    ax_a.set_xlabel("iteration")
    ax_a.set_ylabel("error (mini-batch cross-entropy)")
    ax_a.set_title("(a) Error: moving average, period 100")
    ax_a.legend(fontsize=8)
    ax_a.grid(alpha=0.3)
    all_rates = np.concatenate(rates) if rates else np.zeros(0)
    if np.any(all_rates > 0):
        ax_b.set_yscale("log")
    else:
        _plain_numbers(ax_b)
    ax_b.set_xlabel("iteration")
    ax_b.set_ylabel("effective learning rate")
    ax_b.set_title("(b) Learning rate: moving average, period 100")
    ax_b.legend(fontsize=8)
    ax_b.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title)
    return fig


def _run_label(run_dir: Path) -> str:
    import json

    try:
        config = json.loads((run_dir / "config.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return run_dir.name
    name = (
        config.get("optimizer", "?").upper()
        if config.get("optimizer") == "sgd"
        else (str(config.get("optimizer", "?")).capitalize())
    )
    if config.get("cr"):
        name += " with CR"
    return f"{name} [{run_dir}]"


def plot_many(
    run_dirs: Sequence[str | os.PathLike[str]], path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Draw the runs in ``run_dirs`` side by side into the PNG ``path``
    (``lowrank plot RUN [RUN...]``)."""
    runs = [(_run_label(Path(d)), read_metrics(d)) for d in run_dirs]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    many_figure(runs, title=title).savefig(out, dpi=110)
    return out


def plot_runs(
    baseline_dir: str | os.PathLike[str],
    cr_dir: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    baseline_label: str = "SGD",
    cr_label: str = "SGD with CR",
) -> Path:
    """:func:`plot_comparison` of two run directories."""
    return plot_comparison(
        read_metrics(baseline_dir),
        read_metrics(cr_dir),
        path,
        title=title,
        baseline_label=baseline_label,
        cr_label=cr_label,
    )
