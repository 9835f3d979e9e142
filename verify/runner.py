"""Run the verification over a list of cases: reference, kernels, checks, errata.

:func:`run_verification` is the one entry point (the CLI and the tests call it).  The
kernels are a parameter: by default the generated modules and the drivers that call
them (:func:`verify.kernelset.default_kernels`); the mutation tests pass a set holding a
modified copy of one module.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
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

__all__ = ["Outcome", "run_verification", "kernel_inventory"]


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
    if layers:
        from verify.layers import layer_measurements

        with kernels.installed(), np.errstate(all="ignore"), tracker:
            layer_ms, layer_errata = layer_measurements(
                seed or 0, quick=sweep != "full", backend=backend, progress=progress
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
