"""The ``compare`` section of ``docs/results.md`` from the run records of
:mod:`numeric.compare`, and the CSV of its per-seed values.

Every accuracy is shown as its mean over seeds with a 95 % percentile-bootstrap interval
(:func:`numeric.stats.bootstrap_mean`; a diverged run counts as chance,
:data:`~numeric.compare_methods.CHANCE`), and every verdict against the tuned Adam is
decided by the intervals (:func:`numeric.stats.compare`: disjoint intervals decide,
overlapping ones are a tie).  Step costs are divided by the median SGD step of the same
backend (NumPy methods by NumPy SGD, JAX methods by optax SGD on JAX) and exclude the
first step, whose JAX compilation is reported apart.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

import numpy as np

from numeric.compare_methods import CHANCE, COST_BOUND, LABELS, LEFT_ACCURACY, METHODS, MODELS
from numeric.stats import Interval, bootstrap_mean
from numeric.stats import compare as verdict_of
from numeric.tuning import Tuned

__all__ = ["SEED_COLUMNS", "render", "seeds_csv", "summarize_records"]

BY_NAME = {m.name: m for m in METHODS}
#: the tuned reference of the goal and the verdicts
ADAM = "adam"
#: the SGD step of each backend that costs are divided by
SGD_OF = {"numpy": "sgd", "jax": "sgd-jax"}
#: methods whose effective ranks are tabulated per seed
COLLAPSE_METHODS = ("sgd", "adam", "cr-sgd", "adaptive-sgd", "si-adam", "adaptive-adam")
#: a run has collapsed when its last hidden layer's effective rank is below this
COLLAPSED = 1.5
#: columns of the per-seed CSV
SEED_COLUMNS = ("setting", "method", "label", "seed", "lr", "status", "test_accuracy",
                "test_loss", "eff_rank", "eff_rank_logits", "step_ms", "compile_s",
                "iters_to_2.0", "iters_to_1.0")  # fmt: skip


def _fmt(v, digits=3):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def summarize_records(recs: list[dict]) -> dict:
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


def _accuracies(runs: list[dict]) -> list[float]:
    """Test accuracy per seed; a diverged run counts as chance, a skipped one not at all."""
    return [r["test_accuracy"] if r["status"] == "completed" else CHANCE
            for r in runs if r["status"] != "skipped"]  # fmt: skip


def _interval(runs: list[dict] | None) -> Interval:
    return bootstrap_mean(_accuracies(runs or []))


def _hit_text(runs: list[dict], t: float, what: int) -> str:
    vals = []
    for r in runs:
        h = r["hits"].get(str(t)) if r["status"] == "completed" else None
        vals.append("–" if h is None else (f"{h[0]}" if what == 0 else f"{h[1]:.1f}"))
    return "/".join(vals)


def _median(values: Sequence[float]) -> float:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.median(v)) if v else math.nan


def _sgd_ms(methods: dict, backend: str) -> float:
    """Median step of the SGD of ``backend`` in one setting."""
    runs = methods.get(SGD_OF[backend], [])
    return _median([r["step_ms"] for r in runs if r["status"] == "completed"])


def _left(run: dict) -> bool:
    return (run["status"] == "completed" and run["hits"].get("2.0") is not None
            and run["test_accuracy"] >= LEFT_ACCURACY)  # fmt: skip


def _label(name: str, runs: list[dict], tuned: dict[tuple[str, str], Tuned], setting: str) -> str:
    m = BY_NAME[name]
    if not m.grid:
        return m.label
    t = tuned.get((setting, name))
    if t is not None:
        return f"{m.label}, {t.text()}"
    lrs = {r.get("lr") for r in runs}
    return f"{m.label}, lr {', '.join(f'{v:.3g}' for v in lrs if v is not None)}"


def _table(setting: str, methods: dict, tuned: dict) -> list[str]:
    lines = [
        "| method | test accuracy, mean [95 % CI] | per seed | iterations to loss < 2.0 "
        "| to < 1.0 | seconds to < 1.0 | flagged steps | ms / step | x SGD step (same "
        "backend) | first-step compile s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in METHODS:
        if m.name not in methods:
            continue
        runs = methods[m.name]
        label = _label(m.name, runs, tuned, setting)
        if all(r["status"] == "skipped" for r in runs):
            lines.append(f"| {label} | not run: {runs[0]['reason'][:90]} | | | | | | | | |")
            continue
        accs = "/".join(_fmt(r["test_accuracy"], 2) if r["status"] == "completed"
                        else r["status"] for r in runs)  # fmt: skip
        flagged = sum(r.get("flagged", 0) for r in runs)
        total = sum(r.get("iterations_done", 0) for r in runs) or 1
        done = [r for r in runs if r["status"] == "completed"]
        ms = _median([r["step_ms"] for r in done])
        compile_s = _median([r.get("compile_s", math.nan) for r in done])
        lines.append(
            f"| {label} | {_interval(runs).text()} | {accs} | {_hit_text(runs, 2.0, 0)} "
            f"| {_hit_text(runs, 1.0, 0)} | {_hit_text(runs, 1.0, 1)} "
            f"| {100 * flagged / total:.0f} % | {_fmt(ms, 1)} "
            f"| {_fmt(ms / _sgd_ms(methods, m.backend), 2)} "
            f"| {_fmt(compile_s, 1) if m.backend == 'jax' else '–'} |"
        )
    return lines


def _tuning_lines(tuned: dict[tuple[str, str], Tuned]) -> list[str]:
    if not tuned:
        return []
    lines = [
        "### Learning rates tuned on the validation split",
        "",
        "Each rate trains seed 0 on the fit part and is scored by its accuracy on the "
        "validation part (never the test split); a grid is widened by its ratio while its "
        "best rate lies at an end (at most 4 times per side; ties: the middle of the tied "
        "rates).",
        "",
        "| setting | method | rates tried: validation accuracy | chosen | interior |",
        "|---|---|---|---|---|",
    ]
    for (setting, name), t in sorted(tuned.items()):
        scores = ", ".join(f"{lr:.3g}: {_fmt(v)}" for lr, v in sorted(t.scores.items()))
        lines.append(f"| {_short(setting)} | {LABELS[name]} | {scores} | {t.chosen:.3g} "
                     f"| {'yes' if t.interior else 'no'} |")  # fmt: skip
    return [*lines, ""]


def _collapse_lines(summary: dict) -> list[str]:
    lines = [
        "### Effective rank at the end of the runs",
        "",
        "Per seed (`/`-separated): the effective rank (exp of the entropy of the "
        "normalised singular values, `numeric.diagnostics`) of the last hidden layer's "
        "activations and of the centred logits on the first 512 test images after the "
        "last iteration, and the test accuracy. A value near 1 means one direction carries "
        "the whole layer: the network answers (nearly) the same for every image.",
        "",
        "| setting | method | eff_rank | eff_rank_logits | test accuracy |",
        "|---|---|---|---|---|",
    ]
    n = 0
    for setting in sorted(summary):
        for name in COLLAPSE_METHODS:
            runs = [r for r in summary[setting].get(name, []) if r["status"] != "skipped"]
            if not runs:
                continue

            def col(key, digits, runs=runs):
                return "/".join(_fmt(r.get(key), digits) if r["status"] == "completed"
                                else r["status"] for r in runs)  # fmt: skip

            lines.append(f"| {_short(setting)} | {LABELS[name]} | {col('eff_rank', 1)} "
                         f"| {col('eff_rank_logits', 1)} | {col('test_accuracy', 2)} |")  # fmt: skip
            n += 1
    return [*lines, "", *_collapse_counts(summary)] if n else []


def _collapse_counts(summary: dict) -> list[str]:
    """One line per setting and method with a collapsed run (effective rank of the last
    hidden layer below :data:`COLLAPSED`): in how many seeds, after leaving the first
    plateau in how many, and at what test accuracy."""
    lines = []
    for setting in sorted(summary):
        for name in COLLAPSE_METHODS:
            runs = [r for r in summary[setting].get(name, []) if r["status"] == "completed"]
            down = [r for r in runs if (r.get("eff_rank") or math.inf) < COLLAPSED]
            if not down:
                continue
            left = sum(r["hits"].get("2.0") is not None for r in runs)
            accs = sorted(r["test_accuracy"] for r in down)
            lines.append(
                f"- {_short(setting)}, {LABELS[name]}: the loss average fell below 2.0 in "
                f"{left} of {len(runs)} seeds; the last hidden layer collapsed (effective "
                f"rank < {COLLAPSED}) in {len(down)} of {len(runs)}, which ended at test "
                f"accuracy {_fmt(accs[0], 2)}-{_fmt(accs[-1], 2)}."
            )
    if not lines:
        return []
    return [
        "Runs whose last hidden layer collapsed (every image then gets nearly the same "
        "answer). For CR this is the second plateau: on the first one `d^T H d` is near "
        "zero, so Eq 37 takes long steps, which grow one activation direction until the "
        "last hidden layer and the logits carry that direction only; the loss average can "
        "fall below 2.0 while the test accuracy stays near chance:",
        "",
        *lines,
        "",
    ]


def _goal(summary: dict, model: str) -> tuple[list[str], dict]:
    """The goal check for every method without a learning rate to tune."""
    cands = [m for m in METHODS if m.group in ("cr", "variant", "every", "optax", "peer")]
    lines = [
        "| method | leaves the plateau (runs) | normal start: accuracy vs tuned Adam "
        "| x SGD step (same backend) | goal |",
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
            sgd_ms = _sgd_ms(methods, m.backend)
            cost += [r["step_ms"] / sgd_ms for r in runs if r["status"] == "completed"]
            if start == "plateau":
                runs_p += len(runs)
                left += sum(_left(r) for r in runs)
            else:
                mine, ref = _interval(runs), _interval(methods.get(ADAM))
                beats.append((dataset, mine, ref, verdict_of(mine, ref)))
        if not have:
            continue
        c = _median(cost)
        reached = bool(beats) and all(v in ("better", "tie") for *_, v in beats)
        ok = runs_p > 0 and left == runs_p and reached and c <= COST_BOUND
        text = "; ".join(f"{d}: {a.text()} vs {r.text()} ({v})" for d, a, r, v in beats)
        lines.append(f"| {m.label} | {left}/{runs_p} | {text} | {_fmt(c, 2)} | "
                     f"{'met' if ok else 'not met'} |")  # fmt: skip
        verdicts[m.name] = {"left": (left, runs_p), "beats": beats, "reached": reached,
                            "cost": c, "ok": ok}  # fmt: skip
    return lines, verdicts


def _k_table(summary: dict) -> list[str]:
    """Quality and cost against K, each group over the settings where all its K ran."""
    pairs = [("adaptive-adam", "adaptive-adam-k4", "adaptive-adam-k16"),
             ("per-layer-sgd", "per-layer-sgd-k4"),
             ("per-variable-sgd", "per-variable-sgd-k8")]  # fmt: skip
    lines = ["### Step-length reuse (--cr-every K): quality and cost against K", "",
             "Each method over the settings where every K of it ran (the MLP settings).", "",
             "| method | K | test accuracy over runs, mean [95 % CI] | runs diverged "
             "| x SGD step |",
             "|---|---|---|---|---|"]  # fmt: skip
    n = 0
    for group in pairs:
        settings = [s for s, methods in summary.items() if all(k in methods for k in group)]
        for name in group:
            runs, cost = [], []
            for setting in settings:
                methods = summary[setting]
                mine = [r for r in methods[name] if r["status"] != "skipped"]
                runs += mine
                cost += [r["step_ms"] / _sgd_ms(methods, "numpy") for r in mine
                         if r["status"] == "completed"]  # fmt: skip
            if not runs:
                continue
            diverged = sum(r["status"] != "completed" for r in runs)
            lines.append(f"| {LABELS[group[0]]} | {BY_NAME[name].spec['every']} "
                         f"| {_interval(runs).text()} | {diverged}/{len(runs)} "
                         f"| {_fmt(_median(cost), 2)} |")  # fmt: skip
            n += 1
    return [*lines, ""] if n else []


def _short(setting: str) -> str:
    dataset, model, start = setting.split("/")
    name = {"mnist-embedded": "MNIST", "fashion-mnist": "Fashion"}.get(dataset, dataset)
    return f"{name} {model.upper()} {start}"


def _verdicts(summary: dict, verdicts: dict) -> list[str]:
    """One plain line per method: where its interval lies below or above the tuned
    Adam's, how many plateau runs it left and what a step costs, per model."""
    lines = ["### Verdicts", "",
             "Against Adam at its validation-tuned rate: *worse* or *better* where the 95 % "
             "intervals of the mean test accuracy are disjoint, a tie where they overlap.",
             ""]  # fmt: skip
    for m in METHODS:
        if m.name == ADAM:
            continue
        found = {}
        for setting, methods in summary.items():
            if m.name in methods and any(r["status"] != "skipped" for r in methods[m.name]):
                found[setting] = verdict_of(_interval(methods[m.name]),
                                            _interval(methods.get(ADAM)))  # fmt: skip
        if not found:
            continue
        worse = sorted(_short(s) for s, v in found.items() if v == "worse")
        better = sorted(_short(s) for s, v in found.items() if v == "better")
        ties = sum(v == "tie" for v in found.values())
        text = f"- **{m.label}**: "
        text += (f"worse in {len(worse)} of {len(found)} settings ({', '.join(worse)})"
                 if worse else f"never worse ({len(found)} settings)")  # fmt: skip
        if better:
            text += f"; better in {', '.join(better)}"
        if ties:
            text += f"; tied in {ties}"
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


def _names(verdicts: dict, test) -> str:
    found = [LABELS[n] for n, v in verdicts.items() if test(v)]
    return ", ".join(found) if found else "none"


def render(recs: list[dict], iterations: int, seeds: int, command: str,
           tuned: dict[tuple[str, str], Tuned] | None = None, note: str = "") -> str:  # fmt: skip
    """The ``compare`` section of ``docs/results.md`` (``note``: a paragraph under the
    header, e.g. what a reduced run left out)."""
    tuned = tuned or {}
    summary = summarize_records(recs)
    out = [
        "<!-- section:compare (generated by `lowrank reproduce compare`; edit the generator) -->",
        "## CR and its variants against the methods researchers use",
        "",
        f"Made by `{command}` ({iterations} iterations per run, {seeds} seeds, seeds "
        f"0..{seeds - 1}; batch 32, float32, constant learning rates). Each method starts "
        "from the same weights and sees the same batches, drawn from the fit part of the "
        "training split: 1/8 of the training images is held out as a validation split, on "
        "which SGD, Adam and the tuned optax rows chose their learning rate (table below). "
        "Test accuracy after the last iteration on the test split (embedded MNIST: 1,000 "
        "images; Fashion-MNIST: 10,000; the schedule-free methods at their averaged "
        "weights), as the mean over seeds with its 95 % bootstrap interval "
        "(`numeric.stats`; a diverged run counts as chance, 0.1); the per-seed values are "
        "in `results-compare-seeds.csv` beside this page. Iterations and seconds to a loss "
        "level: first crossing of the 100-iteration average of the mini-batch loss, per "
        "seed (– never; seconds exclude the first step's compilation). *Flagged*: steps the "
        "cubic model could not set or that adaptive CR rejected. CR's sigma is the paper's "
        "power of ten (the scale-invariant variant's 1e6 is a tuned value). *ms / step* is "
        "the median wall time of a step (the first excluded) on a machine shared with other "
        "jobs; *x SGD step* divides it by the median SGD step of the same setting and the "
        "same backend (NumPy methods by NumPy SGD, the optax methods and K-FAC by optax SGD "
        "on JAX); a JAX method's first step, which compiles it, is reported apart.",
        "",
    ]
    if note:
        out += [note, ""]
    order = sorted(summary, key=lambda s: (s.split("/")[1], s.split("/")[0],
                                           s.split("/")[2] != "plateau"))  # fmt: skip
    for setting in order:
        dataset, model, start = setting.split("/")
        bound = "+-0.1" if start == "plateau" else "+-0.2"
        out += [f"### {model.upper()}, {dataset}, {start} start (weights uniform in {bound})",
                "", *_table(setting, summary[setting], tuned), ""]  # fmt: skip
    out += _tuning_lines(tuned)
    out += _collapse_lines(summary)
    verdict_all = {}
    for model in MODELS:
        if not any(s.split("/")[1] == model for s in summary):
            continue
        lines, verdicts = _goal(summary, model)
        verdict_all[model] = verdicts
        headline = (
            f"**{model.upper()}: the goal is met by {_names(verdicts, lambda v: v['ok'])}.** "
            "Left the plateau in every run: "
            f"{_names(verdicts, lambda v: v['left'][0] == v['left'][1] > 0)}. Reached the "
            "tuned Adam's accuracy from the normal start on every dataset (intervals overlap "
            f"or lie above): {_names(verdicts, lambda v: v['reached'])}. At most "
            f"{COST_BOUND}x an SGD step: "
            f"{_names(verdicts, lambda v: math.isfinite(v['cost']) and v['cost'] <= COST_BOUND)}."
        )
        out += [
            f"### The goal, {model.upper()}",
            "",
            "The goal for a method with no learning rate to tune: it leaves the plateau (loss "
            f"average below 2.0 and test accuracy at least {LEFT_ACCURACY:.0%} at the end) in "
            "every seed on both datasets; from the normal start it reaches the test accuracy "
            "of Adam at its validation-tuned rate within the confidence interval (the "
            f"intervals overlap, or its lies above); a step costs at most {COST_BOUND}x an SGD "
            "step of the same backend (median).",
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


def seeds_csv(recs: list[dict]) -> str:
    """The per-seed values behind the section, one row per run (:data:`SEED_COLUMNS`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SEED_COLUMNS)
    for r in sorted(recs, key=lambda r: (r["task"]["dataset"], r["task"]["model"],
                                         r["task"]["start"], r["method"], r["task"]["seed"])):  # fmt: skip
        t = r["task"]
        hits = r.get("hits") or {}

        def hit(key, hits=hits):
            h = hits.get(key)
            return "" if h is None else h[0]

        def num(key, r=r):
            v = r.get(key)
            return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v

        writer.writerow([f"{t['dataset']}/{t['model']}/{t['start']}", r["method"],
                         r.get("label", ""), t["seed"], num("lr"), r["status"],
                         num("test_accuracy"), num("test_loss"), num("eff_rank"),
                         num("eff_rank_logits"), num("step_ms"), num("compile_s"),
                         hit("2.0"), hit("1.0")])  # fmt: skip
    return buf.getvalue()
