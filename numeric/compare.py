"""``lowrank reproduce compare``: CR and its variants against the methods researchers use.

Every method trains the same network from the same initial weights on the same batches
(batch 32, float32, one BLAS thread per job), for each setting and seed:

* settings: dataset (the embedded MNIST subset, 4,000 / 1,000 images; Fashion-MNIST,
  60,000 / 10,000, when its files are present) x model (the paper's 12x128 MLP; the CNN
  of :mod:`numeric.architectures`) x start (plateau: weights uniform in +-0.1; normal: +-0.2);
* methods (:data:`METHODS`):

  - SGD and Adam, each at three constant learning rates (the best of each is reported);
  - the paper's CR (Eq 37) over SGD, Adagrad, Adadelta and Adam, with the paper's sigma;
  - the CR variants of :mod:`numeric.rules` (adaptive, scale-invariant, per-layer,
    per-variable) and step-length reuse every K steps;
  - optax's learning-rate-free methods (:data:`numeric.optax_methods.BASELINES`: Prodigy,
    D-Adaptation, DoG, Schedule-Free, Momo, backtracking line search, Sophia) on the
    JAX backend;
  - kfac-jax's optimizer with adaptive learning rate and momentum (the second-order
    peer), found through the ``peers`` of the ``lowrank.bench`` plug-ins (numeric never
    imports it; MLP only: the peer registers dense layers).

Each run records its losses, flags, the wall time of every step and the test accuracy
after the last step, as one JSON file under ``--out`` (a repeated command reuses the
files of runs already done).  :func:`render` turns the records into the ``compare``
section of ``docs/results.md``: a table per setting, the cost of a step against SGD,
step-length reuse against K, the issue's goal check and a verdict per method.

Usage::

    lowrank reproduce compare --iterations 800 --seeds 3 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["METHODS", "Method", "Task", "main", "plan", "render", "run_task"]

DATASETS = ("mnist-embedded", "fashion-mnist")
MODELS = ("mlp", "cnn")
STARTS = ("plateau", "normal")
THRESHOLDS = (2.0, 1.0)
PERIOD = 100  # moving-average period of the loss thresholds (as lowrank train)
#: a run "leaves the plateau" when its loss average falls below 2.0 and it ends with at
#: least this test accuracy (the issue: CR-SGD fell below 2.0 yet stayed at 10 %)
LEFT_ACCURACY = 0.5
#: the goal's cost bound: a step at most this many SGD steps
COST_BOUND = 1.6


@dataclass(frozen=True)
class Method:
    """One compared method.

    Attributes
    ----------
    name : str
    label : str
        For the tables.
    kind : {"numpy", "optax", "peer"}
    spec : dict
        ``numpy``: ``base``, ``lr`` and (for CR) ``sigma``, ``variant``, ``every``;
        ``optax``: ``name`` of :data:`numeric.optax_methods.BASELINES`; ``peer``: its name.
    group : str
        ``"sgd"`` / ``"adam"`` (tuned, best of the group reported), ``"cr"`` (the paper's
        CR), ``"variant"`` (no learning rate to tune), ``"every"``, ``"optax"``, ``"peer"``.
    models : tuple of str
        Models the method runs on.
    """

    name: str
    label: str
    kind: str
    spec: dict
    group: str
    models: tuple[str, ...] = MODELS


def _cr(name, label, base, sigma, lr=0.0, variant="paper", every=1, group="variant",
        models=None) -> Method:  # fmt: skip
    spec = {"base": base, "lr": lr, "sigma": sigma, "variant": variant, "every": every}
    if models is None:  # the reuse study on the MLP only (time)
        models = ("mlp",) if group == "every" else MODELS
    return Method(name, label, "numpy", spec, group, models)


def _methods() -> list[Method]:
    out = []
    for lr in (0.01, 0.03, 0.1):
        out.append(Method(f"sgd@{lr:g}", f"SGD (lr {lr:g})", "numpy", {"base": "sgd", "lr": lr},
                          "sgd"))  # fmt: skip
    for lr in (1e-4, 1e-3, 1e-2):
        out.append(Method(f"adam@{lr:g}", f"Adam (lr {lr:g})", "numpy",
                          {"base": "adam", "lr": lr}, "adam"))  # fmt: skip
    out += [
        _cr("cr-sgd", "CR-SGD, Eq 37 (sigma 100)", "sgd", 100.0, group="cr"),
        _cr("cr-adagrad", "CR-Adagrad (sigma 1000)", "adagrad", 1000.0, 0.1, group="cr"),
        _cr("cr-adadelta", "CR-Adadelta (sigma 1000)", "adadelta", 1000.0, 1.0, group="cr"),
        _cr("cr-adam", "CR-Adam (sigma 1000)", "adam", 1000.0, 1e-3, group="cr"),
        _cr("adaptive-sgd", "adaptive CR-SGD (sigma0 100)", "sgd", 100.0, variant="adaptive"),
        _cr(
            "adaptive-adam",
            "adaptive CR-Adam (sigma0 1000)",
            "adam",
            1000.0,
            1e-3,
            variant="adaptive",
        ),  # fmt: skip
        _cr(
            "si-adam",
            "scale-invariant CR-Adam (sigma 1e6)",
            "adam",
            1e6,
            1e-3,
            variant="scale-invariant",
        ),  # fmt: skip
        _cr("per-layer-sgd", "per-layer CR-SGD (sigma 100)", "sgd", 100.0, variant="per-layer"),
        _cr(
            "per-layer-adam",
            "per-layer CR-Adam (sigma 1000)",
            "adam",
            1000.0,
            1e-3,
            variant="per-layer",
        ),  # fmt: skip
        _cr(
            "per-variable-sgd",
            "per-variable CR-SGD (sigma 100)",
            "sgd",
            100.0,
            variant="per-variable",
            models=("mlp",),
        ),  # fmt: skip
        _cr(
            "per-variable-adam",
            "per-variable CR-Adam (sigma 1000)",
            "adam",
            1000.0,
            1e-3,
            variant="per-variable",
            models=("mlp",),
        ),  # fmt: skip
        _cr(
            "adaptive-adam-k4",
            "adaptive CR-Adam, every 4",
            "adam",
            1000.0,
            1e-3,
            variant="adaptive",
            every=4,
            group="every",
        ),  # fmt: skip
        _cr(
            "adaptive-adam-k16",
            "adaptive CR-Adam, every 16",
            "adam",
            1000.0,
            1e-3,
            variant="adaptive",
            every=16,
            group="every",
        ),  # fmt: skip
        _cr(
            "per-layer-sgd-k4",
            "per-layer CR-SGD, every 4",
            "sgd",
            100.0,
            variant="per-layer",
            every=4,
            group="every",
        ),  # fmt: skip
        _cr(
            "per-variable-sgd-k8",
            "per-variable CR-SGD, every 8",
            "sgd",
            100.0,
            variant="per-variable",
            every=8,
            group="every",
            models=("mlp",),
        ),  # fmt: skip
    ]
    for name in ("prodigy", "dadapt_adamw", "dog", "schedule_free_adamw", "schedule_free_sgd",
                 "momo", "linesearch", "sophia"):  # fmt: skip
        out.append(Method(name, f"optax {name}", "optax", {"name": name}, "optax"))
    out.append(Method("kfac", "kfac-jax (adaptive lr, momentum)", "peer", {"name": "kfac"},
                      "peer", ("mlp",)))  # fmt: skip
    return out


#: every compared method, in table order
METHODS: list[Method] = _methods()
LABELS = {m.name: m.label for m in METHODS}


@dataclass(frozen=True)
class Task:
    """One run: a setting, a method and a seed."""

    dataset: str
    model: str
    start: str
    method: str
    seed: int
    iterations: int

    @property
    def setting(self) -> str:
        return f"{self.dataset}/{self.model}/{self.start}"

    def path(self, out: Path) -> Path:
        return out / self.dataset / self.model / self.start / f"{self.method}-s{self.seed}.json"


def plan(datasets, models, starts, methods, seeds: int, iterations: int) -> list[Task]:
    """The runs, slowest first (per-variable and JAX methods) so the pool ends evenly."""
    by_name = {m.name: m for m in METHODS}
    tasks = [
        Task(d, mo, st, name, s, iterations)
        for d in datasets
        for mo in models
        for st in starts
        for name in methods
        if mo in by_name[name].models
        for s in range(seeds)
    ]
    weight = {"peer": 0, "optax": 1}
    return sorted(tasks, key=lambda t: (weight.get(by_name[t.method].kind, 2), t.method))


# ------------------------------------------------------------------------- running
_DATA: dict[str, tuple] = {}


def _data(name: str):
    if name not in _DATA:
        from numeric.data import load_dataset

        train, test = load_dataset(name, split="train"), load_dataset(name, split="test")
        _DATA[name] = (
            train.x.astype(np.float32), train.labels, test.x.astype(np.float32), test.labels
        )  # fmt: skip
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


def _build(method: Method, net, seed: int):
    """``(method object, network as it trains)``."""
    if method.kind == "numpy":
        from numeric.cr import CR, Baseline
        from numeric.optimizers import get_optimizer

        spec = method.spec
        opt = get_optimizer(spec["base"])
        if "sigma" not in spec:
            return Baseline(opt, spec["lr"]), net
        return CR(opt, spec["sigma"], lr=spec["lr"], variant=spec["variant"],
                  every=spec["every"]), net  # fmt: skip
    if method.kind == "optax":
        from numeric import jax_backend as jb
        from numeric.optax_methods import baseline

        return baseline(method.spec["name"]), jb.to_jax(net)
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
    """Train one method on one setting and seed; the record of :func:`render`."""
    from numeric.architectures import build
    from numeric.stepping import Diverged, eval_network

    method = {m.name: m for m in METHODS}[task.method]
    record = {"task": task.__dict__, "method": method.name, "label": method.label}
    try:
        xtr, ytr, xte, yte = _data(task.dataset)
    except Exception as exc:  # noqa: BLE001 - a missing dataset skips its settings
        return {**record, "status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}
    net = build(task.model, (28, 28), 10, init=task.start, seed=task.seed, dtype=np.float32)
    try:
        opt, net = _build(method, net, task.seed)
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
    if status == "completed":
        acc, test_loss = _accuracy(eval_network(opt, net, state), xte, yte)
    lo = np.asarray(losses)
    return {
        **record,
        "status": status,
        "reason": reason,
        "iterations_done": len(losses),
        "test_accuracy": acc,
        "test_loss": test_loss,
        "loss_last100": float(lo[-PERIOD:].mean()) if len(lo) else math.nan,
        "hits": _threshold_hits(lo, np.asarray(elapsed)),
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
        acc = rec.get("test_accuracy", math.nan)
        log(f"[{done}/{len(todo)}] {task.setting} {task.method} seed {task.seed}: "
            f"{rec['status']}, test accuracy {acc:.3f}, {rec.get('step_ms', math.nan):.1f} ms/step")  # fmt: skip

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


# ------------------------------------------------------------------------- tables
def _load(out: Path, tasks: list[Task]) -> list[dict]:
    recs = []
    for t in tasks:
        p = t.path(out)
        if p.exists():
            recs.append(json.loads(p.read_text()))
    return recs


def _fmt(v, digits=3):
    return (
        "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"
    )


def _hit_text(runs: list[dict], t: float, what: int) -> str:
    vals = []
    for r in runs:
        h = r["hits"].get(str(t)) if r["status"] == "completed" else None
        vals.append("–" if h is None else (f"{h[0]}" if what == 0 else f"{h[1]:.1f}"))
    return "/".join(vals)


def _summary(recs: list[dict]) -> dict:
    """``setting -> method -> list of runs (by seed)``."""
    out: dict = {}
    for r in recs:
        t = r["task"]
        key = f"{t['dataset']}/{t['model']}/{t['start']}"
        out.setdefault(key, {}).setdefault(r["method"], []).append(r)
    for methods in out.values():
        for runs in methods.values():
            runs.sort(key=lambda r: r["task"]["seed"])
    return out


def _mean(runs, key):
    vals = [r.get(key, math.nan) for r in runs if r["status"] != "skipped"]
    vals = [v if r["status"] == "completed" else math.nan for v, r in
            zip(vals, [r for r in runs if r["status"] != "skipped"], strict=True)]  # fmt: skip
    return float(np.mean(vals)) if vals else math.nan


def _best(methods: dict, group: str) -> str | None:
    names = [m.name for m in METHODS if m.group == group and m.name in methods]
    if not names:
        return None
    return max(names, key=lambda n: np.nan_to_num(_mean(methods[n], "test_accuracy"), nan=-1))


def _sgd_ms(methods: dict) -> float:
    vals = [r["step_ms"] for n in methods if n.startswith("sgd@") for r in methods[n]
            if r["status"] == "completed"]  # fmt: skip
    return float(np.median(vals)) if vals else math.nan


def _left(run: dict) -> bool:
    return (run["status"] == "completed" and run["hits"].get("2.0") is not None
            and run["test_accuracy"] >= LEFT_ACCURACY)  # fmt: skip


def _table(setting: str, methods: dict) -> list[str]:
    best = {g: _best(methods, g) for g in ("sgd", "adam")}
    shown = [m for m in METHODS if m.name in methods and (m.group not in best or
             m.name == best[m.group])]  # fmt: skip
    sgd_ms = _sgd_ms(methods)
    lines = [
        "| method | test accuracy (mean; per seed) | iterations to loss < 2.0 | to < 1.0 "
        "| seconds to < 1.0 | flagged steps | ms / step | x SGD step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in shown:
        runs = methods[m.name]
        if all(r["status"] == "skipped" for r in runs):
            lines.append(f"| {m.label} | not run: {runs[0]['reason'][:90]} | | | | | | |")
            continue
        accs = "/".join(_fmt(r["test_accuracy"], 2) if r["status"] == "completed"
                        else r["status"] for r in runs)  # fmt: skip
        flagged = sum(r.get("flagged", 0) for r in runs)
        total = sum(r.get("iterations_done", 0) for r in runs) or 1
        ms = float(np.median([r["step_ms"] for r in runs if r["status"] == "completed"] or
                             [math.nan]))  # fmt: skip
        tag = " (best of 3 lr)" if m.group in best else ""
        lines.append(
            f"| {m.label}{tag} | {_fmt(_mean(runs, 'test_accuracy'))} ({accs}) | "
            f"{_hit_text(runs, 2.0, 0)} | {_hit_text(runs, 1.0, 0)} | {_hit_text(runs, 1.0, 1)} "
            f"| {100 * flagged / total:.0f} % | {_fmt(ms, 1)} | {_fmt(ms / sgd_ms, 2)} |"
        )
    return lines


def _goal(summary: dict, model: str) -> tuple[list[str], dict]:
    """The issue's goal check for every method without a learning rate to tune."""
    cands = [m for m in METHODS if m.group in ("cr", "variant", "every", "optax", "peer")]
    lines = [
        "| method | leaves the plateau (runs) | normal start: accuracy vs best Adam "
        "| x SGD step | goal |",
        "|---|---|---|---|---|",
    ]
    verdicts = {}
    for m in cands:
        left, runs_p, beats, cost, have = 0, 0, [], [], False
        for setting, methods in summary.items():
            dataset, mo, start = setting.split("/")
            if mo != model or m.name not in methods:
                continue
            runs = [r for r in methods[m.name] if r["status"] != "skipped"]
            if not runs:
                continue
            have = True
            sgd_ms = _sgd_ms(methods)
            cost += [r["step_ms"] / sgd_ms for r in runs if r["status"] == "completed"]
            if start == "plateau":
                runs_p += len(runs)
                left += sum(_left(r) for r in runs)
            else:
                adam = _best(methods, "adam")
                ref = _mean(methods[adam], "test_accuracy") if adam else math.nan
                beats.append((dataset, _mean(runs, "test_accuracy"), ref))
        if not have:
            continue
        c = float(np.median(cost)) if cost else math.nan
        ok = (runs_p > 0 and left == runs_p and beats and
              all(a >= r for _, a, r in beats) and c <= COST_BOUND)  # fmt: skip
        text = "; ".join(f"{d}: {_fmt(a)} vs {_fmt(r)}" for d, a, r in beats)
        lines.append(f"| {m.label} | {left}/{runs_p} | {text} | {_fmt(c, 2)} | "
                     f"{'met' if ok else 'not met'} |")  # fmt: skip
        verdicts[m.name] = {"left": (left, runs_p), "beats": beats, "cost": c, "ok": ok}
    return lines, verdicts


def render(recs: list[dict], iterations: int, seeds: int, command: str) -> str:
    """The ``compare`` section of ``docs/results.md``."""
    summary = _summary(recs)
    out = [
        "<!-- section:compare (generated by `lowrank reproduce compare`; edit the generator) -->",
        "## CR and its variants against the methods researchers use",
        "",
        f"Made by `{command}` ({iterations} iterations per run, not the paper's 3,000, so "
        "that the whole comparison fits in about an hour on two shared CPU cores; "
        f"{seeds} seeds; batch 32, float32, constant learning rates). Each method starts "
        "from the same weights and sees the same batches. Test accuracy after the last "
        "iteration on the held-out split (embedded MNIST: 1,000 images; Fashion-MNIST: "
        "10,000; the schedule-free methods at their averaged weights, "
        "`optax.contrib.schedule_free_eval_params`). Iterations and seconds to a loss level: "
        "first crossing of the 100-iteration "
        "average of the mini-batch loss, per seed (– never). *Flagged*: steps the cubic "
        "model could not set (non-descent, zero, non-finite) or that adaptive CR rejected. "
        "SGD and Adam are each shown at the best of three learning rates (0.01, 0.03, 0.1 "
        "and 1e-4, 1e-3, 1e-2); the CR methods, the optax methods and K-FAC have none to "
        "tune (CR's sigma is the paper's power of ten; the scale-invariant variant's sigma "
        "1e6 was chosen from 1e4..1e9 on a 300-iteration plateau run of embedded MNIST, "
        "seed 0: a tuned value, reported as such). *ms / step* is the median wall time of a "
        "step on a machine shared with other jobs; *x SGD step* divides it by the median "
        "SGD step of the same setting (the bench's interleaved measurement is in "
        "docs/bench.md).",
        "",
    ]
    for setting in sorted(summary, key=lambda s: (s.split("/")[1], s.split("/")[0],
                                                  s.split("/")[2] != "plateau")):  # fmt: skip
        dataset, model, start = setting.split("/")
        bound = "+-0.1" if start == "plateau" else "+-0.2"
        out += [f"### {model.upper()}, {dataset}, {start} start (weights uniform in {bound})",
                "", *_table(setting, summary[setting]), ""]  # fmt: skip
    verdict_all = {}
    for model in MODELS:
        if not any(s.split("/")[1] == model for s in summary):
            continue
        lines, verdicts = _goal(summary, model)
        verdict_all[model] = verdicts

        def names(test, verdicts=verdicts, labels=LABELS):
            found = [labels[n] for n, v in verdicts.items() if test(v)]
            return ", ".join(found) if found else "none"

        met = names(lambda v: v["ok"])
        headline = (
            f"**{model.upper()}: the goal is met by {met}.** "
            f"Left the plateau in every run: {names(lambda v: v['left'][0] == v['left'][1] > 0)}. "
            "Reached the best Adam's accuracy from the normal start on every dataset: "
            f"{names(lambda v: bool(v['beats']) and all(a >= r for _, a, r in v['beats']))}. "
            f"At most {COST_BOUND}x an SGD step: "
            f"{names(lambda v: math.isfinite(v['cost']) and v['cost'] <= COST_BOUND)}."
        )
        out += [
            f"### The goal, {model.upper()}",
            "",
            "The issue's goal for a method with no learning rate to tune: it leaves the "
            f"plateau (loss average below 2.0 and test accuracy at least {LEFT_ACCURACY:.0%} "
            "at the end) in every seed on both datasets; from the normal start it reaches the "
            "test accuracy of the best of the three Adam rates within the same iterations "
            f"(mean over seeds); a step costs at most {COST_BOUND}x an SGD step (median).",
            "",
            headline,
            "",
            *lines,
            "",
        ]
    out += _k_table(summary)
    out += _verdicts(summary, verdict_all)
    out += ["<!-- end section:compare -->"]
    return "\n".join(out) + "\n"


def _k_table(summary: dict) -> list[str]:
    """Quality and cost against K, each group over the settings where all its K ran."""
    pairs = [("adaptive-adam", "adaptive-adam-k4", "adaptive-adam-k16"),
             ("per-layer-sgd", "per-layer-sgd-k4"),
             ("per-variable-sgd", "per-variable-sgd-k8")]  # fmt: skip
    lines = ["### Step-length reuse (--cr-every K): quality and cost against K", "",
             "Each method over the settings where every K of it ran (the MLP settings).", "",
             "| method | K | mean test accuracy (diverged runs count as 0.1) | runs diverged "
             "| x SGD step |",
             "|---|---|---|---|---|"]  # fmt: skip
    by_name = {m.name: m for m in METHODS}
    for group in pairs:
        settings = [s for s, methods in summary.items() if all(n in methods for n in group)]
        for name in group:
            accs, cost, diverged = [], [], 0
            for setting in settings:
                methods = summary[setting]
                for r in methods[name]:
                    if r["status"] == "skipped":
                        continue
                    done = r["status"] == "completed"
                    diverged += not done
                    accs.append(r["test_accuracy"] if done else 0.1)
                    if done:
                        cost.append(r["step_ms"] / _sgd_ms(methods))
            if not accs:
                continue
            k = by_name[name].spec["every"]
            c = _fmt(float(np.median(cost)), 2) if cost else "–"
            lines.append(f"| {by_name[group[0]].label} | {k} | {_fmt(float(np.mean(accs)))} | "
                         f"{diverged}/{len(accs)} | {c} |")  # fmt: skip
    return [*lines, ""]


def _short(setting: str) -> str:
    dataset, model, start = setting.split("/")
    name = {"mnist-embedded": "MNIST", "fashion-mnist": "Fashion"}.get(dataset, dataset)
    return f"{name} {model.upper()} {start}"


def _verdicts(summary: dict, verdicts: dict) -> list[str]:
    """One plain line per method: where it loses to the best Adam, where it wins, how
    many plateau runs it left and what a step costs, per model."""
    lines = ["### Verdicts", "",
             "Against the best of the three Adam rates (mean test accuracy, a margin of 0.01):",
             ""]  # fmt: skip
    for m in METHODS:
        if m.group in ("sgd", "adam"):
            continue
        accs = {}
        for setting, methods in summary.items():
            if m.name in methods and any(r["status"] != "skipped" for r in methods[m.name]):
                adam = _best(methods, "adam")
                accs[setting] = (_mean(methods[m.name], "test_accuracy"),
                                 _mean(methods[adam], "test_accuracy") if adam else math.nan)  # fmt: skip
        if not accs:
            continue
        worse = sorted(_short(s) for s, (a, r) in accs.items() if not a >= r - 0.01)
        better = sorted(_short(s) for s, (a, r) in accs.items() if a > r + 0.01)
        text = f"- **{m.label}**: "
        text += (f"loses in {len(worse)} of {len(accs)} settings ({', '.join(worse)})"
                 if worse else f"never loses ({len(accs)} settings)")  # fmt: skip
        if better:
            text += f"; wins in {', '.join(better)}"
        for model, vs in verdicts.items():
            v = vs.get(m.name)
            if v is None:
                continue
            cost = f", {v['cost']:.1f}x an SGD step" if math.isfinite(v["cost"]) else ""
            text += (
                f"; {model.upper()}: left the plateau in {v['left'][0]}/{v['left'][1]} runs{cost}"
            )
        lines.append(text + ".")
    return [*lines, ""]


# ------------------------------------------------------------------------- command
def main(argv: Sequence[str] | None = None, prog: str = "lowrank reproduce compare") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=800, help="per run (default 800)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--jobs", type=int, default=2, help="parallel runs (default 2)")
    p.add_argument("--datasets", default=",".join(DATASETS),
                   help="comma-separated (default mnist-embedded,fashion-mnist)")  # fmt: skip
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated (default mlp,cnn)")
    p.add_argument("--starts", default=",".join(STARTS), help="comma-separated (default both)")
    p.add_argument("--methods", default="all",
                   help="comma-separated names of METHODS, or all (default all)")  # fmt: skip
    p.add_argument("--out", default="runs/compare", help="run records (default runs/compare)")
    p.add_argument("--doc", default="docs/results.md",
                   help="page whose compare section is replaced (default docs/results.md)")  # fmt: skip
    p.add_argument("--no-run", action="store_true", help="only render the records there are")
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
    tasks = plan(datasets, models, starts, methods, args.seeds, args.iterations)
    if not args.no_run:
        _execute(tasks, out, args.jobs, lambda s: print(s, flush=True))
    recs = _load(out, tasks)
    if not recs:
        print("error: no run records to render", file=sys.stderr)
        return 1
    command = (f"lowrank reproduce compare --iterations {args.iterations} --seeds {args.seeds} "
               f"--jobs {args.jobs}")  # fmt: skip
    from numeric.model_results import update_doc

    doc = Path(args.doc)
    update_doc(doc, "compare", render(recs, args.iterations, args.seeds, command))
    print(f"wrote the compare section of {doc} ({len(recs)} runs)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
