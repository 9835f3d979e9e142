"""Run the verification over a list of cases: reference, kernels, checks, errata.

:func:`run_verification` is the one entry point (the CLI and the tests call it).  The
kernels are a parameter: by default the generated modules and the drivers that call
them (:func:`verify.kernelset.default_kernels`); the mutation tests pass a set holding a
modified copy of one module.

With ``jobs > 1`` the groups of :mod:`verify.layers` run in that many worker processes
(``spawn``) while this process runs the sweep's cases; each worker reports its
measurements and the generated functions it called, merged here in the groups' order,
so the outcome is the same as a serial run's.  A set with a modified module (the
mutation tests) runs serially: the workers import the real modules.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verify import backend as _backend
from verify.cases import ABS_MARGIN, REL_MARGIN, TOLERANCES, Case, make_inputs
from verify.kernelset import KernelSet, default_kernels
from verify.measure import Measurement, Result, aggregate

__all__ = ["Outcome", "run_verification", "kernel_inventory", "layer_group_job"]


@dataclass
class Outcome:
    """Everything a report needs."""

    results: list[Result]
    errata: list[Any]
    notes: list[Result]
    cases: list[dict]
    context: dict[str, Any]
    coverage: dict[str, Any]
    measurements: list[Measurement] = field(default_factory=list, repr=False)

    @property
    def passed(self) -> bool:
        return all(r.status == "pass" for r in self.results)

    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status != "pass"]


def kernel_inventory(kernels: KernelSet) -> list[str]:
    """Public functions printed in the generated modules, as ``module.function``."""
    return [
        f"{module.rsplit('.', 1)[-1]}.{fn}"
        for module, fns in kernels.functions().items()
        for fn in fns
    ]


class _CallTracker:
    """``module.function`` of the generated functions called while active
    (``sys.setprofile``)."""

    def __init__(self, kernels: KernelSet) -> None:
        self.names = {
            id(vars(mod)): name.rsplit(".", 1)[-1].split("__mutated")[0]
            for name, mod in kernels.generated.items()
        }
        self.called: set[str] = set()
        self.active = False
        self.disabled = False  # set when another profiler was active at some point

    def _profile(self, frame, event, arg) -> None:  # noqa: ANN001
        if event == "call":
            module = self.names.get(id(frame.f_globals))
            if module is not None:
                self.called.add(f"{module}.{frame.f_code.co_name}")

    def __enter__(self) -> _CallTracker:
        # a profiler already installed (cProfile, coverage tools) is left alone
        self.active = sys.getprofile() is None
        if self.active:
            sys.setprofile(self._profile)
        else:
            self.disabled = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            sys.setprofile(None)


def layer_group_job(
    group: str, seed: int, quick: bool, backend: str
) -> tuple[list, list, set[str], bool]:
    """One group of :data:`verify.layers.GROUPS` with the default kernels (a worker's
    task): ``(measurements, errata, functions called, whether calls were tracked)``."""
    from verify.layers import layer_measurements

    kernels = default_kernels()
    tracker = _CallTracker(kernels)
    with kernels.installed(), np.errstate(all="ignore"), tracker:
        ms, ems = layer_measurements(seed, quick=quick, backend=backend, only=(group,))
    return ms, ems, tracker.called, not tracker.disabled


def _is_default(kernels: KernelSet) -> bool:
    """Whether ``kernels`` holds the real generated modules (what a worker imports)."""
    return all(mod is importlib.import_module(name) for name, mod in kernels.generated.items())


def _start_layer_groups(jobs: int, seed: int, quick: bool, backend: str):
    """``(pool, {group: future})``: the layer groups submitted to ``jobs`` workers."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from verify.layers import GROUPS

    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    # the longest groups first, so that the workers finish together
    order = sorted(GROUPS, key=lambda g: -_GROUP_COST.get(g, 0))
    futures = {g: pool.submit(layer_group_job, g, seed, quick, backend) for g in order}
    return pool, futures


#: rough relative cost of each layer group (quick sweep), to start the longest first
_GROUP_COST = {"mlp": 17, "steps": 11, "rec": 10, "rnn": 9, "variants": 8, "cnn": 7,
               "conv": 6, "derived": 3, "stack": 2, "bias": 2}  # fmt: skip


def _source_digest(kernels: KernelSet) -> str:
    return hashlib.sha256(kernels.source_text().encode()).hexdigest()


def _orient(ref: Any, inp: Any) -> bool:
    """Make the random direction a descent direction (``g^T grad F < 0``); exact."""
    if ref.d <= 0:
        return False
    inp.omega = -inp.omega
    inp.phis = [-p for p in inp.phis]
    ref.d, ref.d_sample = -ref.d, -ref.d_sample
    return True


def _on_backend(inp: Any, name: str, be: Any) -> Any:
    """``inp`` with its arrays on the kernels' backend (a copy; NumPy: ``inp`` itself)."""
    if name == "numpy":
        return inp
    if name != "jax":
        raise ValueError(f"kernels_backend must be 'numpy' or 'jax', got {name!r}")
    import dataclasses

    import jax

    def put(a):
        return jax.device_put(a, be.device)

    return dataclasses.replace(
        inp,
        ws=[put(w) for w in inp.ws],
        u=put(inp.u),
        x=put(inp.x),
        y=put(inp.y),
        omega=put(inp.omega),
        phis=[put(p) for p in inp.phis],
    )


def paper_form_note(m: Measurement) -> bool:
    """A float32 comparison of a paper-form Gauss-Newton kernel (with ``d2f/dp2``).

    Reported as a numerical note, not a verdict: on nearly equal logits the paper's
    ``sum_lq d2f/dp2[l, q] A_l B_q`` cancels and loses accuracy in float32; the drivers
    use the factored forms (C16-C23), which are verdicts in both dtypes.
    """
    from verify.checks import PAPER_FORM

    return m.dtype == "float32" and m.quantity.endswith(PAPER_FORM)


def run_verification(
    cases: Sequence[Case],
    kernels: KernelSet | None = None,
    backend: str = "cpu",
    reference_dtype: str = "float64",
    progress: bool = False,
    seed: int | None = None,
    sweep: str = "custom",
    layers: bool = False,
    kernels_backend: str = "numpy",
    jobs: int = 1,
) -> Outcome:
    """Verify ``kernels`` on ``cases``.

    Parameters
    ----------
    cases : sequence of Case
    kernels : KernelSet, optional
        Default :func:`verify.kernelset.default_kernels`.
    layers : bool
        Also verify the kernels of Appendix B.2 and B.3 (general activations, the
        convolutional and recurrent layers, a conv + MLP stack; :mod:`verify.layers`),
        with the quick or full set of their cases following ``sweep``.
    backend : {"cpu", "gpu"}
        Where the JAX references run.
    reference_dtype : {"float64", "match"}
        ``"float64"``: every reference in float64 (float32 kernels are compared with the
        float64 reference on the same float32-rounded inputs); ``"match"``: a float32
        reference for float32 cases.
    progress : bool
        Show a progress bar (tqdm, on stderr).
    kernels_backend : {"numpy", "jax"}
        Run the kernels and drivers on NumPy arrays or on JAX arrays placed on the
        backend's device (the same generated code either way); the B.2/B.3 layer checks
        stay on NumPy.
    jobs : int
        Worker processes for the layer groups (with ``layers``, default kernels and
        ``jobs > 1``; they run while this process runs ``cases``).  The outcome does not
        depend on it.

    Raises
    ------
    verify.backend.BackendError
        Without JAX, or without the requested backend.
    """
    if reference_dtype not in ("float64", "match"):
        raise ValueError(f"reference_dtype must be 'float64' or 'match'; got {reference_dtype!r}")
    be = _backend.select_backend(backend)
    if kernels is None:
        kernels = default_kernels()
    from tqdm import tqdm

    from verify.checks import Ctx, printed_step_length, run_checks
    from verify.errata import measure_errata, summarise
    from verify.kernelrun import KernelRun
    from verify.reference import compute_reference, padding_for

    start = time.perf_counter()
    started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    measurements: list[Measurement] = []
    notes: list[Measurement] = []
    errata_ms: list = []
    case_info: list[dict] = []
    tracker = _CallTracker(kernels)
    quick = sweep != "full"
    pool = futures = None
    if layers and jobs > 1 and _is_default(kernels):
        pool, futures = _start_layer_groups(jobs, seed or 0, quick, backend)
    with _backend.run_settings(be) as settings, kernels.installed():
        for case in tqdm(cases, desc="verify", unit="case", disable=not progress):
            t0 = time.perf_counter()
            inp = make_inputs(case)
            ref_dt = case.dtype if reference_dtype == "match" else "float64"
            ref = compute_reference(case, inp, dtype=ref_dt)
            flipped = _orient(ref, inp)
            kinp = _on_backend(inp, kernels_backend, be)
            ctx = Ctx(KernelRun(kernels, case, kinp), ref, case, inp)
            with np.errstate(all="ignore"), tracker:
                case_ms = run_checks(ctx)
                measurements.extend(m for m in case_ms if not paper_form_note(m))
                notes.extend(m for m in case_ms if paper_form_note(m))
                errata_ms.extend(measure_errata(ctx))
                notes.extend(printed_step_length(ctx))
            pad = padding_for(case)
            case_info.append(
                {
                    **case.to_dict(),
                    "reference_dtype": ref_dt,
                    "input_scale": inp.input_scale,
                    "min_abs_preactivation": inp.min_abs_z,
                    "min_rel_preactivation": inp.min_rel_z,
                    "direction_flipped": flipped,
                    "dense_hessian": ref.hess is not None,
                    "padding": [pad.depth, pad.width, pad.classes, pad.batch],
                    "seconds": round(time.perf_counter() - t0, 4),
                }
            )
    if futures is not None:
        from verify.layers import GROUPS

        with pool:
            done = tqdm(total=len(futures), desc="verify layers", unit="group",
                        disable=not progress)  # fmt: skip
            for f in futures.values():
                f.add_done_callback(lambda _: done.update())
            for group in GROUPS:  # the serial run's order
                layer_ms, layer_errata, called, tracked = futures[group].result()
                measurements.extend(layer_ms)
                errata_ms.extend(layer_errata)
                tracker.called |= called
                tracker.disabled |= not tracked
            done.close()
    elif layers:
        from verify.layers import layer_measurements

        with kernels.installed(), np.errstate(all="ignore"), tracker:
            layer_ms, layer_errata = layer_measurements(
                seed or 0, quick=quick, backend=backend, progress=progress
            )
        measurements.extend(layer_ms)
        errata_ms.extend(layer_errata)
    inventory = kernel_inventory(kernels)
    coverage = {
        "tracked": not tracker.disabled,
        "modules": sorted(kernels.generated),
        "functions": len(inventory),
        "exercised": sorted(set(inventory) & tracker.called),
        "not_exercised": sorted(set(inventory) - tracker.called),
    }
    context = {
        **_backend.versions(),
        **settings,
        "reference_dtype": reference_dtype,
        "seed": seed,
        "sweep": sweep,
        "cases": len(cases),
        "started_at": started_at,
        "duration_s": round(time.perf_counter() - start, 3),
        "tolerances": dict(TOLERANCES),
        "kink_margin": {
            "absolute": ABS_MARGIN,
            "relative": REL_MARGIN,
            "how": (
                "weights redrawn unit by unit until every pre-activation has |z| >= "
                f"{REL_MARGIN:g} * sum_i |w_ji v_i| and every sample keeps an active unit "
                "per layer; inputs then scaled by a power of ten (the network is positively "
                f"homogeneous) so that |z| >= {ABS_MARGIN:g}"
            ),
        },
        "kernels_modules": sorted(kernels.generated),
        "kernels_backend": kernels_backend,
        "jobs": jobs if futures is not None else 1,
        "kernels_sha256": _source_digest(kernels),
    }
    return Outcome(
        results=aggregate(measurements),
        errata=summarise(errata_ms),
        notes=aggregate(notes),
        cases=case_info,
        context=context,
        coverage=coverage,
        measurements=measurements,
    )
