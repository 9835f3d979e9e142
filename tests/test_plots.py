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


# ------------------------------------------------------------- lowrank plot on real runs

TINY_RUN = ["--hidden", "2x8", "--iterations", "20", "--eval-every", "5", "--quiet"]
#: run name -> extra `lowrank train` flags
RUNS = {
    "sgd1": ["--seed", "1"],
    "sgd2": ["--seed", "2"],
    "sgd3": ["--seed", "3"],
    "cr1": ["--cr", "--seed", "1"],
    "cr2": ["--cr", "--seed", "2"],
    "cr1000": ["--cr", "--sigma", "1000", "--seed", "1"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny runs trained by `lowrank train`: SGD with 3 seeds, CR with 2 and one CR run
    with another sigma (name -> run directory)."""
    from numeric.cli import main

    root = tmp_path_factory.mktemp("plotted-runs")
    out = {}
    for name, flags in RUNS.items():
        out[name] = root / name
        assert main(["train", *TINY_RUN, *flags, "--out", str(out[name])]) == 0
    return out


def read_csv(run) -> dict[str, list[str]]:
    """metrics.csv as text columns (read with the csv module, not numeric.metrics)."""
    import csv

    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [r[k] for r in rows] for k in rows[0]}


def trailing_mean(values: np.ndarray, period: int = 100) -> np.ndarray:
    return np.array([values[max(0, i - period + 1) : i + 1].mean() for i in range(len(values))])


def expected(runs, column: str, smooth: bool):
    """(iterations, times, values) with values of shape (runs, points) at the iterations
    where every run has ``column``."""
    tables = [read_csv(r) for r in runs]
    per_run = []
    for t in tables:
        keep = [i for i, v in enumerate(t[column]) if v != ""]
        values = np.array([float(v) if v else np.nan for v in t[column]])
        if smooth:
            values = trailing_mean(values)
        per_run.append({int(t["iteration"][i]): (values[i], float(t["time_s"][i])) for i in keep})
    common = sorted(set.intersection(*(set(p) for p in per_run)))
    values = np.array([[p[i][0] for i in common] for p in per_run])
    times = np.array([[p[i][1] for i in common] for p in per_run])
    return np.array(common), times, values


def legend_texts(fig) -> list[str]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for lg in legends for t in lg.get_texts()]


def test_grouped_runs_are_the_mean_and_min_max_band_of_their_seeds(trained, tmp_path, drawn):
    from numeric.plots import draw_runs

    names = ["sgd1", "sgd2", "sgd3", "cr1", "cr2"]
    drawing = draw_runs([trained[n] for n in names], tmp_path / "g.png", group="method")
    assert drawing.path.stat().st_size > 10_000
    by = {(s.panel, s.label): s for s in drawing.series}
    labels = {s.label for s in drawing.series}
    assert labels == {"SGD (3 runs)", "SGD with CR (2 runs)"}
    assert {s.panel for s in drawing.series} == {"error", "lr", "test_accuracy", "test_loss"}
    members = {"SGD (3 runs)": names[:3], "SGD with CR (2 runs)": names[3:]}
    panels = {"error": ("loss", True), "lr": ("lr_eff", True),
              "test_accuracy": ("test_accuracy", False), "test_loss": ("test_loss", False)}  # fmt: skip
    for (panel, label), s in by.items():
        column, smooth = panels[panel]
        its, _, values = expected([trained[n] for n in members[label]], column, smooth)
        if column.startswith("test_"):
            assert list(its) == [4, 9, 14, 19]  # --eval-every 5 over 20 iterations
        else:
            assert list(its) == list(range(20))
        np.testing.assert_array_equal(s.band.iteration, its)
        np.testing.assert_array_equal(s.band.x, its)
        np.testing.assert_allclose(s.band.mean, values.mean(axis=0), rtol=1e-12)
        # the moving averages are summed in another order here: equal up to rounding
        np.testing.assert_allclose(s.band.low, values.min(axis=0), rtol=1e-12)
        np.testing.assert_allclose(s.band.high, values.max(axis=0), rtol=1e-12)
        assert s.band.runs == len(members[label])
    # the seeds differ, so the bands have a width (the runs are deterministic), but for
    # SGD's learning rate: its schedule is the same for every seed
    for (panel, label), s in by.items():
        wide = bool(np.any(s.band.high > s.band.low))
        assert wide == ((panel, label) != ("lr", "SGD (3 runs)"))
    # what was drawn is what was returned: the mean line of each series in its panel
    fig = drawn[-1]
    titles = {ax.get_title(): ax for ax in fig.axes}
    ax_of = {p: next(ax for t, ax in titles.items() if h in t) for p, h in
             [("error", "Error"), ("lr", "Learning rate"), ("test_accuracy", "Test accuracy"),
              ("test_loss", "Test loss")]}  # fmt: skip
    for (panel, label), s in by.items():
        (line,) = [ln for ln in ax_of[panel].get_lines() if ln.get_label() == label]
        np.testing.assert_array_equal(line.get_ydata(), s.band.mean)
        bands = [c for c in ax_of[panel].collections if c.get_label().startswith("_")]
        assert len(bands) == 2  # one band per group (the labelled one is the legend's)
        shaded = np.concatenate([b.get_paths()[0].vertices[:, 1] for b in bands])
        assert np.isclose(shaded, s.band.low.min()).any()
        assert np.isclose(shaded, s.band.high.max()).any()
    texts = legend_texts(fig)
    assert "band: min to max over runs" in texts
    assert not any(str(tmp_path) in t or "plotted-runs" in t for t in texts)
    for ax in fig.axes:
        assert ax.get_xlabel() == "iteration" and ax.get_ylabel()


def test_runs_are_named_by_method_and_the_setting_that_tells_them_apart(trained, tmp_path):
    from numeric.plots import draw_runs

    one = draw_runs([trained[n] for n in ("sgd1", "sgd2", "cr1")], tmp_path / "r.png")
    assert {s.label for s in one.series} == {"SGD, seed 1", "SGD, seed 2", "SGD with CR"}
    two = draw_runs(
        [trained[n] for n in ("cr1", "cr2", "cr1000", "sgd1")], tmp_path / "s.png", group="method"
    )
    assert {s.label for s in two.series} == {
        "SGD with CR, sigma 100 (2 runs)",
        "SGD with CR, sigma 1000",
        "SGD",
    }


def test_time_axis_is_the_mean_wall_time_of_the_runs(trained, tmp_path):
    from numeric.plots import draw_runs

    runs = [trained[n] for n in ("sgd1", "sgd2", "sgd3")]
    drawing = draw_runs(runs, tmp_path / "t.png", group="method", x="time")
    for s in drawing.series:
        column = {"error": "loss", "lr": "lr_eff"}.get(s.panel, s.panel)
        its, times, _ = expected(runs, column, smooth=False)
        np.testing.assert_array_equal(s.band.iteration, its)
        np.testing.assert_allclose(s.band.x, times.mean(axis=0), rtol=1e-12)
        assert np.all(np.diff(s.band.x) > 0)


def test_lowrank_plot_talk_style(trained, tmp_path, drawn, capsys):
    from numeric.cli import main

    out = tmp_path / "talk.png"
    runs = [str(trained[n]) for n in ("sgd1", "sgd2", "sgd3", "cr1", "cr2")]
    argv = ["plot", *runs, "--group", "method", "--x", "time", "--style", "talk"]
    assert main([*argv, "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000 and str(out) in capsys.readouterr().out
    talk = drawn[-1]
    assert main(["plot", *runs, "--out", str(tmp_path / "paper.png")]) == 0
    paper = drawn[-1]
    assert len(talk.axes) == len(paper.axes) == 4
    assert len(talk.legends) == 1 and not any(ax.get_legend() for ax in talk.axes)
    assert legend_texts(talk) == [
        "SGD (3 runs)",
        "SGD with CR (2 runs)",
        "band: min to max over runs",
    ]
    for t_ax, p_ax in zip(talk.axes, paper.axes, strict=True):
        assert t_ax.title.get_fontsize() > p_ax.title.get_fontsize()
        assert t_ax.xaxis.label.get_fontsize() >= 15
        assert t_ax.xaxis.get_ticklabels()[0].get_fontsize() >= 14
        assert t_ax.get_xlabel() == "wall time (s, mean over the runs)"
        assert max(ln.get_linewidth() for ln in t_ax.get_lines()) > max(
            ln.get_linewidth() for ln in p_ax.get_lines()
        )
    with pytest.raises(SystemExit) as exc:
        main(["plot", *runs, "--style", "poster"])
    assert exc.value.code == 2 and "'paper', 'talk'" in capsys.readouterr().err
