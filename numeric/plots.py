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

:func:`draw_runs` (``lowrank plot``) draws any number of run directories: the error
and the learning rate and, where the runs were evaluated (``--eval-every``), the test
accuracy and test loss, against the iteration or the wall time; one colour per method,
named from ``config.json``; with ``group="method"`` the runs of a method (its seeds) as
their mean with a min-max band; ``style="talk"`` with larger fonts and lines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numeric.metrics import moving_average, read_metrics
from numeric.runsets import Band, Group, band, group_runs, has_evaluations, load_run

__all__ = [
    "Drawing",
    "Series",
    "comparison_figure",
    "draw_runs",
    "error_limits",
    "plot_comparison",
    "plot_many",
    "plot_runs",
    "runs_figure",
]

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


@dataclass(frozen=True)
class Series:
    """One curve drawn by :func:`runs_figure`.

    Attributes
    ----------
    panel : str
        ``"error"``, ``"lr"``, ``"test_accuracy"`` or ``"test_loss"``.
    label : str
        Its legend text (the method, and the number of runs pooled).
    band : Band
        The points: ``band.x`` against ``band.mean``; with more than one run, the band
        from ``band.low`` to ``band.high`` (min to max over the runs) is shaded.
    """

    panel: str
    label: str
    band: Band


@dataclass(frozen=True)
class Drawing:
    """What :func:`draw_runs` wrote: the PNG ``path`` and the ``series`` drawn in it."""

    path: Path
    series: list[Series]


#: Panels of :func:`runs_figure`: (name, column, moving average?, y label, title).
PANELS = (
    (
        "error",
        "loss",
        True,
        "error (mini-batch cross-entropy)",
        "Error: moving average, period 100",
    ),
    ("lr", "lr_eff", True, "effective learning rate", "Learning rate: moving average, period 100"),
    ("test_accuracy", "test_accuracy", False, "test accuracy", "Test accuracy"),
    ("test_loss", "test_loss", False, "test loss (cross-entropy)", "Test loss"),
)

#: ``--style``: matplotlib settings, figure width (inches) and legend font size.
STYLES: dict[str, dict[str, Any]] = {
    "paper": {"rc": {}, "width": 12.0, "row": 4.5, "legend": 8, "line": 1.6},
    "talk": {
        "rc": {
            "font.size": 17,
            "axes.titlesize": 19,
            "axes.labelsize": 18,
            "xtick.labelsize": 15,
            "ytick.labelsize": 15,
            "legend.fontsize": 15,
            "axes.linewidth": 1.3,
        },
        "width": 15.0,
        "row": 5.6,
        "legend": 15,
        "line": 3.0,
    },
}

X_LABELS = {
    ("iteration", False): "iteration",
    ("iteration", True): "iteration",
    ("time", False): "wall time (s)",
    ("time", True): "wall time (s, mean over the runs)",
}


def runs_figure(
    groups: Sequence[Group], *, x: str = "iteration", style: str = "paper", title: str = ""
):
    """Error, learning rate and, where the runs were evaluated, test accuracy and test
    loss of each group, one colour per group (a ``Figure`` and the :class:`Series` drawn).

    A group of one run is drawn as its curve (the error also per iteration, faint); a
    group of several runs as the mean over them with the min-max band shaded.  Call it
    inside ``matplotlib.rc_context(STYLES[style]["rc"])``.
    """
    look = STYLES[style]
    runs = [r for g in groups for r in g.runs]
    panels = PANELS if has_evaluations(runs) else PANELS[:2]
    rows = (len(panels) + 1) // 2
    fig = _figure(figsize=(look["width"], look["row"] * rows), layout="constrained")
    axes = dict(zip((p[0] for p in panels), np.ravel(fig.subplots(rows, 2)), strict=True))
    pooled = any(len(g.runs) > 1 for g in groups)
    series: list[Series] = []
    traces, averages, rates = [], [], []
    for i, group in enumerate(groups):
        color = f"C{i % 10}"
        n = len(group.runs)
        label = group.label if n == 1 else f"{group.label} ({n} runs)"
        for name, column, smooth, _, _ in panels:
            b = band(group, column, x=x, smooth=smooth)
            if b.x.size == 0:
                continue
            ax = axes[name]
            series.append(Series(name, label, b))
            marker = "o" if name.startswith("test_") else None
            ax.plot(b.x, b.mean, color=color, linewidth=look["line"], marker=marker,
                    markersize=look["line"] * 2, label=label)  # fmt: skip
            if n > 1:
                ax.fill_between(b.x, b.low, b.high, color=color, alpha=0.2, linewidth=0)
            if name == "error":
                averages += [b.mean, b.low, b.high]
                if n == 1:  # the per-iteration error, faint
                    m = group.runs[0].metrics
                    xs = m["iteration"] if x == "iteration" else m["time_s"]
                    loss = np.asarray(m["loss"], float)
                    traces.append(loss)
                    ax.plot(xs, loss, color=color, alpha=0.2, linewidth=0.6)
            if name == "lr":
                rates += [b.low]
    ax_a = axes["error"]
    if traces:  # one legend entry for the faint per-iteration traces of all runs
        width = max(0.6, look["line"] / 2)  # visible in the legend at the talk's size
        ax_a.plot([], [], color="grey", alpha=0.4, linewidth=width, label="per iteration (faint)")
    if pooled:  # say what the bands are
        ax_a.fill_between([], [], [], color="grey", alpha=0.3, label="band: min to max over runs")
    ax_a.set_ylim(*error_limits(traces, averages))
    _plain_numbers(ax_a)
    all_rates = np.concatenate(rates) if rates else np.zeros(0)
    if np.any(all_rates > 0):
        axes["lr"].set_yscale("log")
    else:
        _plain_numbers(axes["lr"])
    if "test_accuracy" in axes:
        from matplotlib.ticker import PercentFormatter

        axes["test_accuracy"].yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        _plain_numbers(axes["test_loss"])
    for letter, (name, _, _, ylabel, heading) in zip("abcd", panels, strict=False):
        ax = axes[name]
        ax.set_xlabel(X_LABELS[x, pooled])
        ax.set_ylabel(ylabel)
        ax.set_title(f"({letter}) {heading}")
        ax.grid(alpha=0.3, which="both")
        if style == "paper":
            ax.legend(fontsize=look["legend"])
    if style != "paper":  # one legend for every panel, under them
        handles, texts = ax_a.get_legend_handles_labels()
        fig.legend(handles, texts, loc="outside lower center", ncols=min(len(texts), 3),
                   fontsize=look["legend"], frameon=False)  # fmt: skip
    if title:
        fig.suptitle(title)
    return fig, series


def draw_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    path: str | os.PathLike[str],
    *,
    group: str = "run",
    x: str = "iteration",
    style: str = "paper",
    title: str = "",
) -> Drawing:
    """Draw the runs in ``run_dirs`` into the PNG ``path`` (``lowrank plot``).

    Parameters
    ----------
    group : {"run", "method"}
        ``"method"``: runs of one method (differing in the seed) as their mean with a
        min-max band (:func:`numeric.runsets.group_runs`).
    x : {"iteration", "time"}
        Abscissa: the iteration or the wall time.
    style : {"paper", "talk"}
        ``"talk"``: larger fonts and lines, one legend under the panels.

    Returns
    -------
    Drawing
        The path and the curves drawn (legend texts and values).
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {sorted(STYLES)}, got {style!r}")
    from matplotlib import rc_context

    groups = group_runs([load_run(d) for d in run_dirs], by=group)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with rc_context(STYLES[style]["rc"]):
        fig, series = runs_figure(groups, x=x, style=style, title=title)
        fig.savefig(out, dpi=110)
    return Drawing(out, series)


def plot_many(
    run_dirs: Sequence[str | os.PathLike[str]],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    group: str = "run",
    x: str = "iteration",
    style: str = "paper",
) -> Path:
    """:func:`draw_runs`, returning the path only."""
    return draw_runs(run_dirs, path, title=title, group=group, x=x, style=style).path


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
