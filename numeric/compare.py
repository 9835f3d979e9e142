"""``lowrank reproduce compare``: CR and its variants against the methods researchers use.

Every method trains the same network from the same initial weights on the same batches
(batch 32, float32, one BLAS thread per job), for each setting and seed:

* settings: dataset (the embedded MNIST subset, 4,000 / 1,000 images; Fashion-MNIST,
  60,000 / 10,000, when its files are present) x model (the paper's 12x128 MLP; the CNN
  of :mod:`numeric.architectures`; ``mlp-6x256``, a second MLP size without the plateau)
  x start (plateau: weights uniform in +-0.1; normal: +-0.2);
* methods (:data:`METHODS`):

  - SGD and Adam at a constant learning rate tuned on a validation split
    (:mod:`numeric.tuning`: carved from the training images, never the test split; the
    grid is widened until the chosen rate is interior);
  - the paper's CR (Eq 37) over SGD, Adagrad, Adadelta and Adam, with the paper's sigma;
  - the CR variants of :mod:`numeric.rules` (adaptive, scale-invariant, per-layer,
    per-variable) and step-length reuse every K steps;
  - optax's learning-rate-free methods (:data:`numeric.optax_methods.BASELINES`: Prodigy,
    D-Adaptation, DoG, Schedule-Free, Momo, backtracking line search, Sophia) on the
    JAX backend at their default rates, and Schedule-Free (SGD, AdamW) and Momo also at a
    rate tuned like SGD's (separate rows);
  - optax's SGD on the JAX backend: the reference of the JAX methods' step cost;
  - kfac-jax's optimizer with adaptive learning rate and momentum (the second-order
    peer), found through the ``peers`` of the ``lowrank.bench`` plug-ins (numeric never
    imports it; MLP only: the peer registers dense layers).

Every run trains on the fit part of the training split (the validation part held
out); tuning runs (seed 0) are scored on the validation part, reported runs on the test
split.  Each run records its losses, flags, the wall time of every step (the first
one, which compiles a JAX step, apart), the accuracy after the last step and the
effective ranks of :mod:`numeric.diagnostics`, as one JSON file under ``--out`` (a
repeated command reuses the files of runs already done).
:func:`numeric.compare_report.render` turns the
records into the ``compare`` section of ``docs/results.md``: a table per setting with
95 % bootstrap intervals over seeds (:mod:`numeric.stats`), the cost of a step against
the SGD step of the same backend, the tuning grids, step-length reuse against K, the
goal check and a verdict per method decided by the intervals; the per-seed values go
to a CSV beside the page.

Usage::

    lowrank reproduce compare --iterations 800 --seeds 5 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from numeric.compare_methods import (  # noqa: F401 - re-exported
    COST_BOUND,
    DATASETS,
    LABELS,
    LEFT_ACCURACY,
    METHODS,
    MODEL_BUILD,
    MODELS,
    PERIOD,
    SPLIT_SEED,
    STARTS,
    THRESHOLDS,
    TUNE_SEED,
    VALIDATION_FRACTION,
    Method,
)
from numeric.tuning import Tuned, next_rates, settle, validation_split

__all__ = ["METHODS", "Method", "Task", "main", "plan", "run_task", "tune"]


@dataclass(frozen=True)
class Task:
    """One run: a setting, a method and a seed."""

    dataset: str
    model: str
    start: str
    method: str
    seed: int
    iterations: int
    lr: float | None = None  # the tuned rate of a method with a grid
    split: str = "test"  # where the accuracy is measured: "test" or "validation"

    @property
    def setting(self) -> str:
        return f"{self.dataset}/{self.model}/{self.start}"

    def path(self, out: Path) -> Path:
        base = out / "tune" if self.split == "validation" else out
        lr = "" if self.lr is None else f"@{self.lr:.6g}"
        name = f"{self.method}{lr}-s{self.seed}.json"
        return base / self.dataset / self.model / self.start / name


def _settings(datasets, models, starts) -> list[tuple[str, str, str]]:
    return [(d, mo, st) for d in datasets for mo in models for st in starts]


def plan(datasets, models, starts, methods, seeds: int, iterations: int,
         tuned: dict[tuple[str, str], Tuned] | None = None) -> list[Task]:  # fmt: skip
    """The reported runs, slowest first (per-variable and JAX methods) so the pool ends
    evenly; a method with a grid runs at its rate in ``tuned`` (keyed by setting and
    method name), and not at all without one."""
    by_name = {m.name: m for m in METHODS}
    tuned = tuned or {}
    tasks = []
    for d, mo, st in _settings(datasets, models, starts):
        for name in methods:
            method = by_name[name]
            if mo not in method.models:
                continue
            lr = None
            if method.grid:
                found = tuned.get((f"{d}/{mo}/{st}", name))
                if found is None:
                    continue
                lr = found.chosen
            tasks += [Task(d, mo, st, name, s, iterations, lr) for s in range(seeds)]
    weight = {"peer": 0, "optax": 1, "jax-sgd": 1}
    return sorted(tasks, key=lambda t: (weight.get(by_name[t.method].kind, 2), t.method))


def tune(datasets, models, starts, methods, iterations: int, out: Path, jobs: int,
         log: Callable[[str], None], run: bool = True) -> dict[tuple[str, str], Tuned]:  # fmt: skip
    """Tune every method with a grid on the validation split, per setting (seed
    :data:`TUNE_SEED`), widening each grid until its best rate is interior
    (:func:`numeric.tuning.next_rates`); one round of runs at a time, over the pool.

    With ``run`` False only the records already under ``out`` are used (a search whose
    next rate has no record stops there)."""
    by_name = {m.name: m for m in METHODS}
    scores: dict[tuple[str, str], dict[float, float]] = {
        (f"{d}/{mo}/{st}", n): {}
        for d, mo, st in _settings(datasets, models, starts)
        for n in methods
        if by_name[n].grid and mo in by_name[n].models
    }
    while True:
        tasks = []
        for (setting, name), sc in scores.items():
            d, mo, st = setting.split("/")
            tasks += [Task(d, mo, st, name, TUNE_SEED, iterations, lr, "validation")
                      for lr in next_rates(sc, by_name[name].grid)]  # fmt: skip
        if run and tasks:
            _execute(tasks, out, jobs, log)
        found = 0
        for t in tasks:
            if t.path(out).exists():
                rec = json.loads(t.path(out).read_text())
                acc = rec.get("validation_accuracy", math.nan)
                scores[(t.setting, t.method)][float(t.lr or 0)] = (
                    acc if rec["status"] == "completed" else math.nan
                )
                found += 1
        if not tasks or found < len(tasks):
            break
    return {k: settle(v) for k, v in scores.items() if v}


# ------------------------------------------------------------------------- running
_DATA: dict[str, dict] = {}


def _data(name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``"fit"``, ``"validation"`` and ``"test"`` to ``(x float32, labels)``: the fit and
    validation parts of the training split (:func:`numeric.tuning.validation_split`)
    and the test split."""
    if name not in _DATA:
        from numeric.data import load_dataset

        train, test = load_dataset(name, split="train"), load_dataset(name, split="test")
        x = train.x.astype(np.float32)
        split = validation_split(len(train), VALIDATION_FRACTION, SPLIT_SEED)
        _DATA[name] = {
            "fit": (x[split.fit], train.labels[split.fit]),
            "validation": (x[split.validation], train.labels[split.validation]),
            "test": (test.x.astype(np.float32), test.labels),
        }
    return _DATA[name]


def _peer(name: str) -> tuple[Callable | None, str | None]:
    from numeric.commands import BENCH_GROUP, discover

    reasons = []
    for plugin_name, plugin in discover(BENCH_GROUP).items():
        why = plugin.unavailable(f"the {plugin_name} plug-in")
        if why is not None:
            reasons.append(why)
            continue
        peers = plugin.get("peers")
        if peers is not None and name in peers():
            return peers()[name]
    return None, "; ".join(reasons) or f"no plug-in provides the peer {name!r}"


def _build(method: Method, net, seed: int, lr: float | None = None):
    """``(method object, network as it trains)``; ``lr`` is a tuned rate."""
    if method.kind == "numpy":
        from numeric.cr import CR, Baseline
        from numeric.optimizers import get_optimizer

        spec = method.spec
        opt = get_optimizer(spec["base"])
        if "sigma" not in spec:
            return Baseline(opt, spec["lr"] if lr is None else lr), net
        return CR(opt, spec["sigma"], lr=spec["lr"], variant=spec["variant"],
                  every=spec["every"]), net  # fmt: skip
    if method.kind in ("optax", "jax-sgd"):
        from numeric import jax_backend as jb
        from numeric.optax_methods import baseline, plain_sgd

        if method.kind == "jax-sgd":
            return plain_sgd(method.spec["lr"]), jb.to_jax(net)
        return baseline(method.spec["name"], lr), jb.to_jax(net)
    factory, why = _peer(method.spec["name"])
    if factory is None:
        raise _Skip(why)
    return factory(net.layers, seed=seed), net


class _Skip(Exception):
    """The method cannot run here (a missing optional package, an unsupported model)."""


def _threshold_hits(losses: np.ndarray, times: np.ndarray) -> dict:
    out = {}
    if len(losses) == 0:
        return {str(t): None for t in THRESHOLDS}
    csum = np.cumsum(losses)
    idx = np.arange(len(losses))
    lo = np.maximum(idx - PERIOD + 1, 0)
    ma = (csum - np.where(lo > 0, csum[lo - 1], 0.0)) / (idx - lo + 1)
    for t in THRESHOLDS:
        hit = np.nonzero(ma < t)[0]
        out[str(t)] = None if len(hit) == 0 else [int(hit[0]), float(times[hit[0]])]
    return out


def _first_step_excess(steps: list[float]) -> float:
    """Seconds the first step took beyond a typical one (a JAX step's compilation)."""
    if len(steps) < 2:
        return 0.0
    return max(0.0, steps[0] - float(np.median(steps[1:])))


def _accuracy(net, x, labels) -> tuple[float, float]:
    from numeric.losses import softmax_cross_entropy

    correct, loss = 0, 0.0
    eye = np.eye(net.classes, dtype=np.float32)
    for i in range(0, len(labels), 2500):
        logits = np.asarray(net.logits(x[i : i + 2500]), dtype=np.float64)
        correct += int(np.sum(np.argmax(logits, 1) == labels[i : i + 2500]))
        f, _, _ = softmax_cross_entropy(logits, eye[labels[i : i + 2500]], second=False)
        loss += float(np.sum(f))
    return correct / len(labels), loss / len(labels)


def run_task(task: Task) -> dict:
    """Train one method on one setting and seed; the record of
    :func:`numeric.compare_report.render`."""
    from numeric.architectures import build
    from numeric.diagnostics import PROBE_ROWS, collapse
    from numeric.stepping import Diverged, eval_network

    method = {m.name: m for m in METHODS}[task.method]
    record = {"task": task.__dict__, "method": method.name, "label": method.label,
              "backend": method.backend, "split": task.split}  # fmt: skip
    try:
        data = _data(task.dataset)
        (xtr, ytr), (xte, yte) = data["fit"], data[task.split]
    except Exception as exc:  # noqa: BLE001 - a missing dataset skips its settings
        return {**record, "status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}
    model, options = MODEL_BUILD[task.model]
    net = build(model, (28, 28), 10, options=options, init=task.start, seed=task.seed,
                dtype=np.float32)  # fmt: skip
    try:
        opt, net = _build(method, net, task.seed, task.lr)
        state = opt.init(net)
    except (_Skip, ValueError) as exc:
        return {**record, "status": "skipped", "reason": str(exc)}
    eye = np.eye(10, dtype=np.float32)
    rng = np.random.default_rng(task.seed)
    order = np.empty(0, dtype=np.int64)
    losses: list[float] = []
    steps: list[float] = []
    flags: dict[str, int] = {}
    lrs: list[float] = []
    status, reason = "completed", ""
    start = time.perf_counter()
    elapsed = []
    for it in range(task.iterations):
        if len(order) < 32:
            order = np.concatenate([order, rng.permutation(len(ytr))])
        idx, order = order[:32], order[32:]
        t0 = time.perf_counter()
        try:
            net, state, info = opt.step(net, state, xtr[idx], eye[ytr[idx]], check=it == 0)
        except Diverged as exc:
            status, reason = "diverged", str(exc)
            break
        steps.append(time.perf_counter() - t0)
        elapsed.append(time.perf_counter() - start)
        losses.append(float(info.loss))
        flags[info.flag] = flags.get(info.flag, 0) + 1
        lrs.append(float(info.lr_eff))
    acc, test_loss = math.nan, math.nan
    ranks = (math.nan, math.nan)
    if status == "completed":
        final = eval_network(opt, net, state)
        acc, test_loss = _accuracy(final, xte, yte)
        found = collapse(final, xte[:PROBE_ROWS])
        ranks = (found.eff_rank, found.eff_rank_logits)
    lo = np.asarray(losses)
    compile_s = _first_step_excess(steps)
    return {
        **record,
        "status": status,
        "reason": reason,
        "lr": task.lr,
        "iterations_done": len(losses),
        f"{task.split}_accuracy": acc,
        f"{task.split}_loss": test_loss,
        "eff_rank": ranks[0],
        "eff_rank_logits": ranks[1],
        "compile_s": compile_s,
        "loss_last100": float(lo[-PERIOD:].mean()) if len(lo) else math.nan,
        "hits": _threshold_hits(lo, np.asarray(elapsed) - compile_s),
        "flagged": sum(v for k, v in flags.items() if k),
        "flags": flags,
        "step_ms": float(np.median(steps[10:] if len(steps) > 20 else steps) * 1e3)
        if steps
        else math.nan,
        "lr_eff_median": float(np.median(lrs)) if lrs else math.nan,
        "losses": [round(v, 5) for v in losses[:: max(1, len(losses) // 200)]],
    }


def _init_worker() -> None:
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - the env variables below still apply
        pass


def _execute(tasks: list[Task], out: Path, jobs: int, log: Callable[[str], None]) -> None:
    todo = [t for t in tasks if not t.path(out).exists()]
    log(f"{len(tasks)} runs, {len(tasks) - len(todo)} already done, {len(todo)} to run "
        f"with {jobs} job(s)")  # fmt: skip
    done = 0

    def save(task: Task, rec: dict) -> None:
        nonlocal done
        path = task.path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec))
        tmp.replace(path)
        done += 1
        acc = rec.get(f"{task.split}_accuracy", math.nan)
        lr = "" if task.lr is None else f" lr {task.lr:.3g}"
        log(f"[{done}/{len(todo)}] {task.setting} {task.method}{lr} seed {task.seed}: "
            f"{rec['status']}, {task.split} accuracy {acc:.3f}, "
            f"{rec.get('step_ms', math.nan):.1f} ms/step")  # fmt: skip

    if jobs <= 1:
        _init_worker()
        for task in todo:
            save(task, run_task(task))
        return
    import multiprocessing as mp

    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"),
                             initializer=_init_worker) as pool:  # fmt: skip
        futures = {pool.submit(run_task, t): t for t in todo}
        for fut in as_completed(futures):
            save(futures[fut], fut.result())


# ------------------------------------------------------------------------- records
def _load(out: Path, tasks: list[Task]) -> list[dict]:
    recs = []
    for t in tasks:
        p = t.path(out)
        if p.exists():
            recs.append(json.loads(p.read_text()))
    return recs


# ------------------------------------------------------------------------- command
def main(argv: Sequence[str] | None = None, prog: str = "lowrank reproduce compare") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=800, help="per run (default 800)")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    p.add_argument("--jobs", type=int, default=2, help="parallel runs (default 2)")
    p.add_argument("--datasets", default=",".join(DATASETS),
                   help="comma-separated (default mnist-embedded,fashion-mnist)")  # fmt: skip
    p.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated (default mlp,cnn,mlp-6x256)"
    )
    p.add_argument("--starts", default=",".join(STARTS), help="comma-separated (default both)")
    p.add_argument("--methods", default="all",
                   help="comma-separated names of METHODS, or all (default all)")  # fmt: skip
    p.add_argument("--out", default="runs/compare", help="run records (default runs/compare)")
    p.add_argument("--doc", default="docs/results.md",
                   help="page whose compare section is replaced (default docs/results.md)")  # fmt: skip
    p.add_argument("--no-run", action="store_true", help="only render the records there are")
    p.add_argument("--note", default="",
                   help="a paragraph for the section's header (e.g. what a reduced run "
                   "leaves out)")  # fmt: skip
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)

    def split(text, allowed, what):
        vals = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in vals if v not in allowed]
        if bad or not vals:
            p.error(f"unknown {what} {bad}; choose from {', '.join(allowed)}")
        return vals

    names = [m.name for m in METHODS]
    methods = names if args.methods == "all" else split(args.methods, names, "method")
    datasets = split(args.datasets, DATASETS, "dataset")
    models = split(args.models, MODELS, "model")
    starts = split(args.starts, STARTS, "start")
    for flag, v in (("--iterations", args.iterations), ("--seeds", args.seeds),
                    ("--jobs", args.jobs)):  # fmt: skip
        if v < 1:
            p.error(f"{flag} must be a positive integer, got {v}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
    out = Path(args.out)

    def log(text: str) -> None:
        print(text, flush=True)

    tuned = tune(datasets, models, starts, methods, args.iterations, out, args.jobs, log,
                 run=not args.no_run)  # fmt: skip
    for (setting, name), t in sorted(tuned.items()):
        log(f"tuned {setting} {name} on the validation split: {t.text()}")
    tasks = plan(datasets, models, starts, methods, args.seeds, args.iterations, tuned)
    if not args.no_run:
        _execute(tasks, out, args.jobs, log)
    recs = _load(out, tasks)
    if not recs:
        print("error: no run records to render", file=sys.stderr)
        return 1
    from numeric.compare_report import render, seeds_csv
    from numeric.model_results import update_doc

    doc = Path(args.doc)
    update_doc(doc, "compare", render(recs, args.iterations, args.seeds, _command(argv),
                                      tuned, args.note))  # fmt: skip
    per_seed = doc.with_name(f"{doc.stem}-compare-seeds.csv")
    per_seed.write_text(seeds_csv(recs))
    print(f"wrote the compare section of {doc} and its per-seed values {per_seed} "
          f"({len(recs)} runs)")  # fmt: skip
    return 0


def _command(argv: Sequence[str]) -> str:
    """The command that made the runs: without the output paths, the note and
    ``--no-run`` (which only renders them)."""
    kept: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--out", "--doc", "--note"):
            skip = True
            continue
        if a.split("=")[0] in ("--out", "--doc", "--note", "--no-run"):
            continue
        kept.append(a)
    return shlex.join(["lowrank", "reproduce", "compare", *kept])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
