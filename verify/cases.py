"""Verification cases: architectures, seeded sweeps and inputs kept off the ReLU kinks.

A :class:`Case` names one network (widths, classes, batch, initialisation, dtype) and a
seed; :func:`make_inputs` turns it into weights, inputs, labels and a random direction,
deterministically.  NumPy only.

Kinks.  Weights are redrawn unit by unit (rows of ``w^(k)``) until every pre-activation
of every sample satisfies ``|z| >= REL_MARGIN * sum_i |w_ji v_i|`` (a scale-free margin,
far above the rounding error of a float32 forward pass) and every sample keeps at least
one active unit per layer.  The inputs are then scaled by a power of ten ``s >= 1`` so
that also ``|z| >= ABS_MARGIN`` (1e-6): the network has no biases, so it is positively
homogeneous in ``x`` and the scale changes no ReLU pattern.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = [
    "ABS_MARGIN",
    "REL_MARGIN",
    "INITS",
    "TOLERANCES",
    "Case",
    "Inputs",
    "KinkError",
    "make_inputs",
    "preactivation_margins",
    "quick_sweep",
    "full_sweep",
    "random_case",
]

ABS_MARGIN = 1e-6
REL_MARGIN = 1e-4
#: the paper's initialisations (Appendix A): uniform in +-0.1 (plateau) or +-0.2
INITS = {"plateau": 0.1, "normal": 0.2}
#: tolerance on the relative error, per kernel dtype
TOLERANCES = {"float64": 1e-10, "float32": 1e-4}
#: the CR weights the paper uses are powers of ten (100 and 1000)
SIGMAS = (10.0, 100.0, 1000.0)


class KinkError(RuntimeError):
    """No draw kept every pre-activation away from the ReLU kink."""


@dataclass(frozen=True)
class Case:
    """One verification case.

    Attributes
    ----------
    widths : tuple of int
        ``(d_in, w_1, ..., w_n)``.
    classes, batch : int
    init : {"plateau", "normal"}
        Uniform weights in +-0.1 or +-0.2 (the paper's two initialisations).
    dtype : {"float64", "float32"}
        Dtype of the kernel inputs (and so of the kernels' arithmetic).
    seed : int
    sigma : float
        CR weight of Eq 37.
    dense : bool
        Whether dense Hessians are formed (small nets); otherwise only
        ``jax.jvp``-based references are used.
    """

    widths: tuple[int, ...]
    classes: int
    batch: int
    init: str = "normal"
    dtype: str = "float64"
    seed: int = 0
    sigma: float = 100.0
    dense: bool = True

    def __post_init__(self) -> None:
        if len(self.widths) < 2 or min(self.widths) < 1:
            raise ValueError(f"widths must be (d_in, w_1, ..., w_n) >= 1; got {self.widths}")
        if self.classes < 2 or self.batch < 1:
            raise ValueError(f"need classes >= 2 and batch >= 1; got {self.classes}, {self.batch}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {sorted(INITS)}; got {self.init!r}")
        if self.dtype not in TOLERANCES:
            raise ValueError(f"dtype must be one of {sorted(TOLERANCES)}; got {self.dtype!r}")

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    @property
    def tolerance(self) -> float:
        return TOLERANCES[self.dtype]

    @property
    def name(self) -> str:
        arch = "-".join(str(w) for w in self.widths)
        return f"{arch}c{self.classes}b{self.batch}-{self.init}-{self.dtype}-s{self.seed}"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["widths"] = list(self.widths)
        out["name"] = self.name
        return out


@dataclass
class Inputs:
    """Arrays of one case, in the case's dtype (conventions of ``docs/conventions.md``).

    Attributes
    ----------
    ws : list of ndarray
        ``ws[k-1]`` shape (w_k, w_(k-1)).
    u : ndarray, shape (classes, w_n)
    x : ndarray, shape (batch, d_in)
    y : ndarray, shape (batch, classes)
        One-hot rows.
    omega : ndarray, shape (classes, w_n)
    phis : list of ndarray
        A random direction ``g = (omega, phis)``, standard normal entries.
    input_scale : float
        The power of ten applied to ``x`` for the absolute margin.
    min_abs_z, min_rel_z : float
        Smallest ``|z|`` and smallest ``|z| / sum |w v|`` over all layers and samples,
        computed in float64 from the (rounded) arrays above.
    """

    ws: list[np.ndarray]
    u: np.ndarray
    x: np.ndarray
    y: np.ndarray
    omega: np.ndarray
    phis: list[np.ndarray]
    input_scale: float
    min_abs_z: float
    min_rel_z: float
    redraws: int = 0
    notes: list[str] = field(default_factory=list)


def preactivation_margins(ws: list[np.ndarray], x: np.ndarray) -> tuple[float, float, bool]:
    """Smallest ``|z|``, smallest ``|z| / sum_i |w_ji v_i|`` and whether every sample keeps
    an active unit in every layer (float64 forward pass of Eqs 10-12)."""
    v = np.asarray(x, dtype=np.float64)
    min_abs, min_rel, alive = math.inf, math.inf, True
    for w in ws:
        w = np.asarray(w, dtype=np.float64)
        z = v @ w.T
        scale = np.abs(v) @ np.abs(w).T
        min_abs = min(min_abs, float(np.min(np.abs(z))))
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(scale > 0, np.abs(z) / scale, 0.0)
        min_rel = min(min_rel, float(np.min(rel)))
        alive = alive and bool(np.all(np.any(z > 0, axis=1)))
        v = np.where(z > 0, z, 0.0)
    return min_abs, min_rel, alive


def _draw_layer(
    rng: np.random.Generator, v: np.ndarray, shape: tuple[int, int], bound: float, tries: int
) -> np.ndarray | None:
    """Rows of one weight matrix, each redrawn until its pre-activations clear the margin
    for every sample; ``None`` if some sample is left with no active unit."""
    w = rng.uniform(-bound, bound, shape)
    for _ in range(tries):
        z = v @ w.T
        scale = np.abs(v) @ np.abs(w).T
        bad = np.any((np.abs(z) < REL_MARGIN * scale) | (scale == 0), axis=0)
        if not bad.any():
            break
        w[bad] = rng.uniform(-bound, bound, (int(bad.sum()), shape[1]))
    else:
        return None
    z = v @ w.T
    if not np.all(np.any(z > 0, axis=1)):
        return None
    return w


def make_inputs(case: Case, layer_tries: int = 200, restarts: int = 50) -> Inputs:
    """Weights, inputs, labels and a random direction for ``case`` (deterministic).

    Inputs are uniform in [0, 1) (non-negative, like pixel intensities) before scaling;
    labels are one-hot with uniformly drawn classes.

    Raises
    ------
    KinkError
        When no draw keeps all pre-activations off the kinks.
    """
    rng = np.random.default_rng(case.seed)
    bound = INITS[case.init]
    dt = np.dtype(case.dtype)
    d_in = case.widths[0]
    for redraw in range(restarts):
        x = rng.uniform(0.0, 1.0, (case.batch, d_in))
        ws: list[np.ndarray] = []
        v = x
        for k in range(1, case.depth + 1):
            shape = (case.widths[k], case.widths[k - 1])
            w = None
            for _ in range(layer_tries):
                w = _draw_layer(rng, v, shape, bound, layer_tries)
                if w is not None:
                    break
            if w is None:
                break
            ws.append(w)
            z = v @ w.T
            v = np.where(z > 0, z, 0.0)
        if len(ws) < case.depth:
            continue
        min_abs, _, _ = preactivation_margins(ws, x)
        scale = 10.0 ** max(0, math.ceil(math.log10(ABS_MARGIN / min_abs))) if min_abs > 0 else 1
        x = x * scale
        u = rng.uniform(-bound, bound, (case.classes, case.widths[-1]))
        y = np.eye(case.classes)[rng.integers(0, case.classes, case.batch)]
        ws_t = [w.astype(dt) for w in ws]
        x_t = x.astype(dt)
        min_abs, min_rel, alive = preactivation_margins(ws_t, x_t)
        # rounding to float32 moves |z| by far less than REL_MARGIN * scale; check anyway
        if not (alive and min_abs >= ABS_MARGIN and min_rel >= 0.5 * REL_MARGIN):
            continue
        omega = rng.standard_normal(u.shape).astype(dt)
        phis = [rng.standard_normal(w.shape).astype(dt) for w in ws]
        return Inputs(
            ws=ws_t,
            u=u.astype(dt),
            x=x_t,
            y=y.astype(dt),
            omega=omega,
            phis=phis,
            input_scale=float(scale),
            min_abs_z=min_abs,
            min_rel_z=min_rel,
            redraws=redraw,
        )
    raise KinkError(f"case {case.name}: no draw kept the pre-activations off the ReLU kinks")


def random_case(rng: np.random.Generator, dtype: str | None = None, **limits: int) -> Case:
    """One architecture drawn like the issue's sweep: 1-6 hidden layers, widths 1-9,
    2-10 classes, batch 1-16, either initialisation and dtype."""
    max_depth = limits.get("max_depth", 6)
    max_width = limits.get("max_width", 9)
    depth = int(rng.integers(1, max_depth + 1))
    widths = tuple(int(w) for w in rng.integers(1, max_width + 1, depth + 1))
    return Case(
        widths=widths,
        classes=int(rng.integers(2, limits.get("max_classes", 10) + 1)),
        batch=int(rng.integers(1, limits.get("max_batch", 16) + 1)),
        init=str(rng.choice(sorted(INITS))),
        dtype=dtype or str(rng.choice(sorted(TOLERANCES))),
        seed=int(rng.integers(0, 2**31 - 1)),
        sigma=float(rng.choice(SIGMAS)),
    )


#: architectures every sweep contains, each in float64 and float32:
#: unequal widths (Eq 23's dimension mismatch), equal hidden widths with n >= 3 (Eq 23's
#: value error, the layer-stacked low-rank path), n = 1 with batch 1 (no batch-average
#: error, no cross terms), the largest net of the sweep, width-1 layers, a deep net
COVERAGE = (
    ((4, 3, 5, 2), 3, 5, "plateau", 100.0),
    ((3, 4, 4, 4), 4, 6, "normal", 1000.0),
    ((2, 5), 2, 1, "normal", 10.0),
    ((9, 9, 9, 9, 9, 9, 9), 10, 16, "normal", 100.0),
    ((1, 1, 2, 1), 2, 4, "normal", 100.0),
    ((5, 3, 6, 2, 4, 1), 7, 9, "plateau", 1000.0),
)


def _seed(seed: int, *parts: object) -> int:
    return zlib.crc32(repr((seed, *parts)).encode()) & 0x7FFFFFFF


def _coverage(seed: int) -> Iterator[Case]:
    for i, (widths, classes, batch, init, sigma) in enumerate(COVERAGE):
        for dtype in ("float64", "float32"):
            yield Case(widths, classes, batch, init, dtype, _seed(seed, "cov", i), sigma)


def quick_sweep(seed: int = 0) -> list[Case]:
    """The coverage architectures in both dtypes plus four random ones."""
    rng = np.random.default_rng(_seed(seed, "quick"))
    return [*_coverage(seed), *(random_case(rng) for _ in range(4))]


def full_sweep(seed: int = 0, random_cases: int = 120) -> list[Case]:
    """Coverage, ``random_cases`` random architectures, and four nets too large for a
    dense Hessian (checked through ``jax.jvp`` only)."""
    rng = np.random.default_rng(_seed(seed, "full"))
    cases = [*_coverage(seed), *(random_case(rng) for _ in range(random_cases))]
    large = (((32, 48, 48, 48), 10, 16, "plateau"), ((20, 64, 40, 64, 30), 10, 16, "normal"))
    for i, (widths, classes, batch, init) in enumerate(large):
        for dtype in ("float64", "float32"):
            cases.append(
                Case(widths, classes, batch, init, dtype, _seed(seed, "large", i), 100.0, False)
            )
    return cases
