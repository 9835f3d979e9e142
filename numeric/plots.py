"""Two-panel figures in the style of the paper's Figures 1-5 (matplotlib, Agg, PNG).

Panel (a): the error (mini-batch training loss) of the base optimizer (blue) and of the
base optimizer with CR (red) against the iteration; each as the per-iteration values
(thin, faint) and their period-100 moving average (solid).
Panel (b): the learning rate CR computed (red) with its period-100 moving average
(green), on a logarithmic axis (CR's rate spans orders of magnitude between the plateau
and normal descent); the base optimizer's scheduled rate is drawn dashed blue.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from numeric.training import moving_average, read_metrics

__all__ = ["plot_comparison", "plot_runs"]

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
        Metric columns (as :func:`numeric.training.read_metrics` returns): at least
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
    fig = _figure(figsize=(12, 4.5), layout="constrained")
    ax_a, ax_b = fig.subplots(1, 2)

    def error_curve(m: Metrics, color: str, label: str) -> None:
        if len(m["iteration"]) == 0:
            return
        ax_a.plot(m["iteration"], m["loss"], color=color, alpha=0.25, linewidth=0.6)
        ax_a.plot(
            m["iteration"],
            moving_average(m["loss"]),
            color=color,
            linewidth=1.6,
            label=f"{label} (moving average, period 100)",
        )

    error_curve(baseline, "tab:blue", baseline_label)
    error_curve(cr, "tab:red", cr_label)
    for (label, m), color in zip(extra, ("tab:orange", "tab:purple", "tab:brown"), strict=False):
        error_curve(m, color, label)
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
    ax_b.set_xlabel("iteration")
    ax_b.set_ylabel("learning rate")
    ax_b.set_title("(b) Learning rate (CR in red, period-100 average in green)")
    ax_b.legend(fontsize=8)
    ax_b.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title)
    fig.savefig(out, dpi=110)
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
