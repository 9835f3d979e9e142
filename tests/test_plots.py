"""The two-panel figures: readable error axes and a legend entry for every trace."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402

from numeric.plots import error_limits, plot_comparison, plot_many  # noqa: E402


def metrics(loss, lr=0.02):
    n = len(loss)
    return {
        "iteration": np.arange(n),
        "loss": np.asarray(loss, float),
        "lr_eff": np.full(n, lr),
        "lr": np.full(n, lr),
    }


@pytest.fixture
def drawn(monkeypatch):
    """The figures plot functions save (captured instead of inspecting PNG pixels)."""
    figures = []
    real = Figure.savefig

    def savefig(self, *args, **kwargs):
        figures.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


def test_loss_spikes_do_not_stretch_the_error_axis(tmp_path, drawn):
    rng = np.random.default_rng(0)
    loss = 2.3 - 0.5 * np.linspace(0, 1, 3000) + 0.05 * rng.normal(size=3000)
    loss[[500, 2200]] = [40.0, 1e3]  # two spikes
    plot_comparison(metrics(loss), metrics(loss - 0.1), tmp_path / "p.png")
    bottom, top = drawn[-1].axes[0].get_ylim()
    assert top < 3.0 and bottom >= 0
    assert top >= np.percentile(loss, 99)


def test_error_axis_has_no_offset_notation(tmp_path, drawn):
    flat = np.log(10) + 1e-6 * np.sin(np.arange(300))  # on the plateau: tiny variations
    plot_comparison(metrics(flat), metrics(flat), tmp_path / "p.png")
    ax = drawn[-1].axes[0]
    drawn[-1].canvas.draw()
    assert ax.yaxis.get_major_formatter().get_offset() == ""
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels and all(
        text.replace("−", "-").replace(".", "").strip("-").isdigit() for text in labels
    )


def test_raw_loss_trace_has_a_legend_entry(tmp_path, drawn):
    loss = np.linspace(2.3, 1.0, 200)
    plot_comparison(metrics(loss), metrics(loss), tmp_path / "p.png", baseline_label="SGD")
    texts = [t.get_text() for t in drawn[-1].axes[0].get_legend().get_texts()]
    assert "SGD (per iteration)" in texts
    assert "SGD (moving average, period 100)" in texts


def test_plot_many_draws_every_run(tmp_path, drawn):
    from numeric.metrics import Row, format_row, header_line

    runs = []
    for k in range(3):
        d = tmp_path / f"r{k}"
        d.mkdir()
        rows = [
            Row(
                iteration=i,
                loss=2.3 - 0.001 * i * (k + 1),
                loss_ma100=2.3,
                alpha=0.02,
                lr=0.02,
                lr_eff=0.02,
                lr_eff_ma100=0.02,
                dgrad=-1.0,
                dhd=1.0,
                dnorm=1.0,
                flag="",
                step_ms=1.0,
                time_s=0.1 * i,
                test_loss=float("nan"),
                test_accuracy=float("nan"),
            )
            for i in range(120)
        ]
        (d / "metrics.csv").write_text(header_line() + "".join(format_row(r) for r in rows))
        runs.append(d)
    out = plot_many(runs, tmp_path / "all.png")
    assert out.stat().st_size > 10_000
    labels = [t.get_text() for t in drawn[-1].axes[0].get_legend().get_texts()]
    assert sum(str(r) in " ".join(labels) or r.name in " ".join(labels) for r in runs) == 3


def test_error_limits_hold_the_bulk_of_the_values():
    raw = np.concatenate([np.linspace(1.0, 2.0, 999), [500.0]])
    ma = np.linspace(1.2, 1.9, 1000)
    lo, hi = error_limits([raw], [ma])
    assert lo <= 1.0 and np.percentile(raw, 99) <= hi < 3.0
    assert error_limits([], []) == (0.0, 1.0)
    assert (
        error_limits([np.array([np.nan, 2.0])], [])[0]
        < 2.0
        < error_limits([np.array([2.0])], [])[1]
    )
