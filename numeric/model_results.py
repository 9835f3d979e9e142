"""``lowrank reproduce cnn`` and ``lowrank reproduce rnn``: SGD against CR-SGD and Adam
against Adam+CR on the CNN and the RNN of :mod:`numeric.architectures`, written as a section of
``docs/results.md``.

Runs (batch 32, float64, decay 0.95 per 100 iterations for the base optimizers, one run
per seed; the baseline and its CR run share the initial weights and the batches):

* plateau start (weights uniform in +-0.1, biases zero): SGD (lr 0.02) and Adam (lr 0.001),
  each alone and with CR (sigma 100 and 1000, the values of the MLP results);
* normal start (+-0.2): SGD (lr 0.02) alone and with CR;

on the embedded MNIST subset (4,000 images for training, a fixed held-out 1,000 for the
test accuracy) and, when its files are present, Fashion-MNIST (60,000 / 10,000).  Run
directories go under ``--out`` and are reused or resumed on a repeated command.  The
section of ``docs/results.md`` between this model's markers is replaced; the rest of the
page is left alone (and ``lowrank reproduce results`` keeps these sections).

Usage::

    lowrank reproduce cnn --iterations 1500 --seeds 3
    python -m numeric.model_results rnn --iterations 1500 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from numeric.data import Dataset, DatasetError, load_dataset
from numeric.metrics import read_metrics
from numeric.provenance import versions
from numeric.training.config import TrainConfig
from numeric.training.loop import TrainingFailed
from numeric.training.runs import ensure_run

__all__ = ["Job", "keep_sections", "main", "plan", "render", "splits", "update_doc"]

#: (key, optimizer, lr, sigma)
METHODS = (
    ("sgd", "sgd", 0.02, 100.0),
    ("sgd-cr", "sgd", 0.02, 100.0),
    ("adam", "adam", 0.001, 1000.0),
    ("adam-cr", "adam", 0.001, 1000.0),
)
NAMES = {
    "sgd": "SGD (lr 0.02)",
    "sgd-cr": "SGD + CR (sigma 100)",
    "adam": "Adam (lr 0.001)",
    "adam-cr": "Adam + CR (sigma 1000)",
}
THRESHOLDS = (2.0, 1.0, 0.5)
DATASETS = ("mnist-embedded", "fashion-mnist")
HELD_OUT = 1000  # embedded MNIST images kept for the test accuracy
SETTLE = 100  # iterations after leaving the plateau before "after it" starts


@dataclass(frozen=True)
class Job:
    """One run: dataset, start, method key, seed and its config."""

    dataset: str
    start: str
    key: str
    seed: int
    config: TrainConfig

    @property
    def dirname(self) -> str:
        return f"{self.dataset}/{self.start}/{self.key}/seed{self.seed}"


def plan(model: str, datasets: Sequence[str], iterations: int, seeds: Sequence[int]) -> list[Job]:
    """Every run of the ``model`` section."""
    jobs = []
    for dataset in datasets:
        for start in ("plateau", "normal"):
            for key, opt, lr, sigma in METHODS:
                if start == "normal" and opt != "sgd":
                    continue
                for seed in seeds:
                    cfg = TrainConfig(
                        dataset=dataset, model=model, optimizer=opt, lr=lr, sigma=sigma,
                        cr=key.endswith("-cr"), init=start, seed=seed, iterations=iterations,
                    )  # fmt: skip
                    jobs.append(Job(dataset, start, key, seed, cfg))
    return jobs


def splits(name: str, data_dir: str | None = None) -> tuple[Dataset, Dataset]:
    """Training and test data: Fashion-MNIST's own splits; the embedded MNIST subset less
    a fixed, class-mixed held-out part of :data:`HELD_OUT` images."""
    if name == "mnist-embedded":
        data = load_dataset(name, data_dir, "train")
        order = np.random.default_rng(20240611).permutation(len(data))
        return data.subset(np.sort(order[HELD_OUT:])), data.subset(
            np.sort(order[:HELD_OUT]), "test"
        )
    return load_dataset(name, data_dir, "train"), load_dataset(name, data_dir, "test")


def available(names: Sequence[str], data_dir: str | None = None) -> list[str]:
    """The datasets whose files are present (the embedded subset always is)."""
    out = []
    for name in names:
        try:
            load_dataset(name, data_dir, "test" if name != "mnist-embedded" else "train")
        except (DatasetError, FileNotFoundError, ValueError):
            continue
        out.append(name)
    return out


def _accuracy(network, test: Dataset, chunk: int = 1000) -> float:
    hits = 0
    for lo in range(0, len(test), chunk):
        x, labels = test.batch(np.arange(lo, min(lo + chunk, len(test))))
        hits += int(np.sum(np.asarray(network.predict(x)) == labels))
    return hits / len(test)


def analyse(run_dir: Path, network, test: Dataset) -> dict:
    """Test accuracy, threshold crossings of the loss average, rates and timings."""
    m = read_metrics(run_dir)
    loss_ma = m["loss_ma100"]
    n = int(loss_ma.size)
    finite = np.isfinite(m["loss"])
    out: dict[str, Any] = {
        "iterations": n,
        "diverged_at": None if finite.all() else int(np.argmin(finite)),
    }
    for t in THRESHOLDS:
        below = np.flatnonzero(loss_ma < t)
        out[f"below_{t:g}"] = int(below[0]) if below.size else None
    leave = out["below_2"]
    plateau = slice(0, leave if leave is not None else n)
    out["final_loss"] = float(loss_ma[-1]) if n else math.nan
    out["lr_plateau"] = float(np.nanmean(m["lr_eff"][plateau])) if n else math.nan
    after = m["lr_eff"][leave + SETTLE :] if leave is not None else m["lr_eff"][:0]
    out["lr_after"] = float(np.nanmean(after)) if after.size else None
    out["nondescent"] = int(np.sum(m["flag"] == "nondescent"))
    out["ms"] = float(np.mean(m["step_ms"])) if n else math.nan
    out["seconds"] = float(np.sum(m["step_ms"]) / 1e3)
    out["test_accuracy"] = _accuracy(network, test) if out["diverged_at"] is None else math.nan
    return out


def run_jobs(jobs: list[Job], out: Path, data_dir: str | None, progress: bool) -> dict:
    """Run (or reuse) every job; ``(dataset, start, key, seed) -> analysis``."""
    cache: dict[str, tuple[Dataset, Dataset]] = {}
    results = {}
    for i, job in enumerate(jobs, 1):
        if job.dataset not in cache:
            cache[job.dataset] = splits(job.dataset, data_dir)
        train, test = cache[job.dataset]
        cfg = replace(job.config, data_dir=data_dir)
        t0 = time.perf_counter()
        res = ensure_run(cfg, out / job.dirname, dataset=train, progress=False)
        results[(job.dataset, job.start, job.key, job.seed)] = analyse(
            res.run_dir, res.network, test
        )
        if progress:
            r = results[(job.dataset, job.start, job.key, job.seed)]
            print(
                f"[{i}/{len(jobs)}] {job.dirname}: test accuracy {r['test_accuracy']:.3f}, "
                f"loss {r['final_loss']:.3f} ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    return results


def _mean(vals) -> str:
    got = [v for v in vals if v is not None]
    return f"{np.mean(got):.3g}" if got else "-"


def _cell(vals) -> str:
    return " / ".join("-" if v is None else str(v) for v in vals)


def _crossings(vals, n) -> str:
    return " / ".join(f">{n - 1}" if v is None else str(v) for v in vals)


def render(model: str, results: dict, jobs: list[Job], meta: dict) -> str:
    """The markdown section of one model (between its markers)."""
    from numeric.architectures import DEFAULTS

    seeds = sorted({j.seed for j in jobs})
    iters = jobs[0].config.iterations
    sizes = ", ".join(f"{k} {v}" for k, v in DEFAULTS[model].items())
    title = {"cnn": "CNN", "rnn": "RNN"}[model]
    lines = [
        f"<!-- section:{model} (generated by `lowrank reproduce {model}`; edit the generator) -->",
        f"## {title}: SGD vs CR-SGD, Adam vs Adam+CR",
        "",
        f"Generated by `{meta['command']}` ({iters} iterations per run, seeds "
        f"{', '.join(map(str, seeds))}; {len(jobs)} runs, {meta['minutes']:.0f} min of training "
        f"in all, one BLAS thread; {meta['python']}).  Model `--model {model}` ({sizes}), "
        "biases initialised to zero, the activation ReLU; batch 32, float64.  The test accuracy "
        "is that of the final weights: on the 1,000 held-out images of the embedded MNIST "
        "subset (training on the other 4,000), or on Fashion-MNIST's 10,000 test images.  "
        "Iterations are the first at which the loss average over 100 iterations falls below "
        f"2.0, 1.0 and 0.5 (per seed; `>{iters - 1}`: not within the run); *lr on the "
        "plateau* is the mean effective learning rate before the loss average first falls "
        f"below 2.0, *after it* from {SETTLE} iterations later (the rate CR chose, or the "
        "base optimizer's scheduled rate).  Runs are shorter than the MLP's 5,000 iterations "
        "to fit two CPU cores.",
        "",
    ]
    for dataset in dict.fromkeys(j.dataset for j in jobs):
        for start in ("plateau", "normal"):
            keys = [k for k, *_ in METHODS if (dataset, start, k, seeds[0]) in results]
            if not keys:
                continue
            bound = "0.1" if start == "plateau" else "0.2"
            lines += [
                f"### {title}, {dataset}, {start} start (weights uniform in +-{bound})",
                "",
                "| run | test accuracy (per seed) | loss < 2.0 | loss < 1.0 | loss < 0.5 | "
                "final loss | lr on the plateau | lr after it | non-descent steps | "
                "ms / iteration |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for key in keys:
                rs = [results[(dataset, start, key, s)] for s in seeds]
                acc = " / ".join(
                    "diverged" if math.isnan(r["test_accuracy"]) else f"{r['test_accuracy']:.3f}"
                    for r in rs
                )
                lines.append(
                    f"| {NAMES[key]} | {acc} | "
                    + " | ".join(
                        _crossings([r[f"below_{t:g}"] for r in rs], iters) for t in THRESHOLDS
                    )  # fmt: skip
                    + f" | {np.nanmean([r['final_loss'] for r in rs]):.3f}"
                    f" | {np.nanmean([r['lr_plateau'] for r in rs]):.3g}"
                    f" | {_mean([r['lr_after'] for r in rs])}"
                    f" | {sum(r['nondescent'] for r in rs)}"
                    f" | {np.mean([r['ms'] for r in rs]):.1f} |"
                )
            lines.append("")
    lines += _findings(model, results, jobs, iters), "", f"<!-- end section:{model} -->"
    return "\n".join(lines) + "\n"


def _findings(model: str, results: dict, jobs: list[Job], iters: int) -> str:
    """Plain statements read off the tables: plateaus and whether CR leaves them."""
    seeds = sorted({j.seed for j in jobs})
    out = ["Read off the tables:", ""]
    for dataset in dict.fromkeys(j.dataset for j in jobs):
        sgd = [results[(dataset, "plateau", "sgd", s)]["below_2"] for s in seeds]
        cr = [results[(dataset, "plateau", "sgd-cr", s)]["below_2"] for s in seeds]
        adam = [results[(dataset, "plateau", "adam", s)]["below_2"] for s in seeds]
        limit = min(500, iters)
        stuck = sum(v is None or v >= limit for v in sgd)
        out.append(
            f"* {dataset}, plateau start: SGD's loss average stays above 2.0 for the first "
            f"{limit} iterations in {stuck} of {len(seeds)} seeds (first below 2.0 at "
            f"{_crossings(sgd, iters)}); with CR at {_crossings(cr, iters)}; Adam at "
            f"{_crossings(adam, iters)}."
        )
        nsgd = [results[(dataset, "normal", "sgd", s)]["below_2"] for s in seeds]
        ncr = [results[(dataset, "normal", "sgd-cr", s)]["below_2"] for s in seeds]
        after = {
            k: _mean([results[(dataset, "normal", k, s)]["lr_after"] for s in seeds])
            for k in ("sgd", "sgd-cr")
        }
        out.append(
            f"* {dataset}, normal start: SGD first below 2.0 at {_crossings(nsgd, iters)}, "
            f"with CR at {_crossings(ncr, iters)}; afterwards CR's mean step length was "
            f"{after['sgd-cr']} against SGD's scheduled {after['sgd']}."
        )
        acc = {
            k: np.nanmean([results[(dataset, "plateau", k, s)]["test_accuracy"] for s in seeds])
            for k, *_ in METHODS
        }
        out.append(
            f"* {dataset}, plateau start, mean test accuracy: "
            + ", ".join(f"{NAMES[k]} {v:.3f}" for k, v in acc.items())
            + "."
        )
    out.append(
        "* *ms / iteration* is the wall time of a training iteration (loop included) on a "
        "machine shared with other jobs, which varied by a factor of several over these runs; "
        "the cost of a CR step relative to an SGD step is measured in one interleaved run by "
        "`python -m verify.bench_models_jax` (see docs/bench.md)."
    )
    return "\n".join(out)


_SECTION = re.compile(r"<!-- section:(\w+) .*?<!-- end section:\1 -->\n?", re.DOTALL)


def update_doc(doc: Path, model: str, section: str) -> None:
    """Replace the ``model`` section of ``doc`` (or append it)."""
    text = doc.read_text() if doc.exists() else "# Measured results\n"
    pattern = re.compile(
        rf"<!-- section:{model} .*?<!-- end section:{model} -->\n?", flags=re.DOTALL
    )
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text)


def keep_sections(old: str, new: str) -> str:
    """``new`` with the generated model sections of ``old`` appended (for a page that is
    regenerated without them)."""
    kept = [m.group(0) for m in _SECTION.finditer(old) if m.group(0) not in new]
    if not kept:
        return new
    return new.rstrip("\n") + "\n\n" + "\n".join(s.rstrip("\n") + "\n" for s in kept)


def main(argv: Sequence[str] | None = None, model: str | None = None,
         prog: str = "python -m numeric.model_results") -> int:  # fmt: skip
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    if model is None:
        p.add_argument("model", choices=["cnn", "rnn"])
    p.add_argument("--iterations", type=int, default=1500)
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument(
        "--datasets",
        default=",".join(DATASETS),
        help="comma-separated (default mnist-embedded,fashion-mnist; missing files are skipped)",
    )
    p.add_argument("--data-dir", help="directory with the datasets' files")
    p.add_argument("--out", default=None, help="run directories (default runs/<model>)")
    p.add_argument("--doc", default="docs/results.md", help="markdown page to update")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    model = model or args.model
    if args.iterations < 1 or args.seeds < 1:
        print("--iterations and --seeds must be positive", file=sys.stderr)
        return 2
    wanted = [d for d in args.datasets.split(",") if d]
    datasets = available(wanted, args.data_dir)
    if not datasets:
        print(f"none of the datasets {wanted} is available", file=sys.stderr)
        return 2
    skipped = sorted(set(wanted) - set(datasets))
    if skipped and not args.quiet:
        print(f"skipping {', '.join(skipped)}: its files are not present", flush=True)
    out = Path(args.out or f"runs/{model}")
    jobs = plan(model, datasets, args.iterations, range(args.seeds))
    t0 = time.perf_counter()
    try:
        results = run_jobs(jobs, out, args.data_dir, progress=not args.quiet)
    except (TrainingFailed, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cmd = f"lowrank reproduce {model} --iterations {args.iterations} --seeds {args.seeds}"
    if args.datasets != ",".join(DATASETS):
        cmd += f" --datasets {args.datasets}"
    minutes = sum(r["seconds"] for r in results.values()) / 60
    meta = {
        "command": cmd,
        "minutes": minutes,
        "python": versions(),
    }
    section = render(model, results, jobs, meta)
    update_doc(Path(args.doc), model, section)
    (out / "results.json").write_text(
        json.dumps({"/".join(map(str, k)): v for k, v in results.items()}, indent=1)
    )
    if not args.quiet:
        print(f"wrote the {model} section of {args.doc} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
