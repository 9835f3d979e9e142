"""Hypothesis strategies for random architectures and networks (shared by the tests).

An *architecture* is ``(widths, classes, batch)`` with ``widths = (d_in, w_1, ..., w_n)``.
:func:`networks` draws weights, inputs and one-hot labels for one, with pre-activations
kept away from the ReLU kink (|z| >= ``margin``) by construction (no redrawing), so that
derivatives are defined and finite differences are clean for every architecture drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

__all__ = ["Architecture", "Network", "architectures", "networks", "draw_network"]


@dataclass(frozen=True)
class Architecture:
    widths: tuple[int, ...]
    classes: int
    batch: int

    @property
    def depth(self) -> int:
        return len(self.widths) - 1


@dataclass
class Network:
    ws: list[np.ndarray]
    u: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def flat(self) -> np.ndarray:
        return np.concatenate([w.ravel() for w in self.ws] + [self.u.ravel()])

    def unflat(self, theta: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        out, pos = [], 0
        for w in self.ws:
            out.append(theta[pos : pos + w.size].reshape(w.shape))
            pos += w.size
        return out, theta[pos:].reshape(self.u.shape)


@st.composite
def architectures(
    draw,
    min_depth: int = 1,
    max_depth: int = 6,
    max_width: int = 9,
    max_classes: int = 10,
    max_batch: int = 16,
) -> Architecture:
    depth = draw(st.integers(min_depth, max_depth))
    widths = tuple(
        draw(st.lists(st.integers(1, max_width), min_size=depth + 1, max_size=depth + 1))
    )
    classes = draw(st.integers(2, max_classes))
    batch = draw(st.integers(1, max_batch))
    return Architecture(widths, classes, batch)


def _away_from_roots(t0: float, slopes: np.ndarray, rest: np.ndarray, margin: float) -> float:
    """The point nearest ``t0`` where every ``slopes[b] * t + rest[b]`` is ``>= margin`` in
    absolute value (``slopes > 0``).

    Each line is within ``margin`` of zero on the interval ``root_b +- margin / slope_b``;
    ``t0`` is moved to the nearest end of the union of those intervals if it lies inside.
    """
    roots = -rest / slopes
    half = 1.001 * margin / slopes
    lo, hi = roots - half, roots + half
    order = np.argsort(lo)
    lo, hi = lo[order], hi[order]
    t = float(t0)
    # merge overlapping intervals, then step out of the one holding t (if any)
    start, stop = lo[0], hi[0]
    merged = []
    for a, b in zip(lo[1:], hi[1:], strict=True):
        if a <= stop:
            stop = max(stop, b)
        else:
            merged.append((start, stop))
            start, stop = a, b
    merged.append((start, stop))
    for a, b in merged:
        if a < t < b:
            return float(a if t - a <= b - t else b)
    return t


def draw_network(
    arch: Architecture,
    seed: int,
    scale: float = 1.0,
    margin: float = 1e-3,
    dtype=np.float64,
) -> Network:
    """Weights uniform in +-scale (scaled by fan-in), inputs uniform, one-hot labels, with
    every pre-activation at least ``margin`` away from the ReLU kink, by construction.

    The first input feature lies in ``[0.5, 1]`` for every sample, and unit 0 of every
    hidden layer is active for every sample, so each layer's input has a column that is
    positive across the batch.  The weight on that column plays the part of a bias: for
    unit 0 it is raised until every sample is above ``margin``; for the other units it is
    drawn as usual and, where that would put a sample within ``margin`` of zero, moved to
    the nearest value that does not (other units keep both signs, so masks are mixed).
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (arch.batch, arch.widths[0]))
    x[:, 0] = rng.uniform(0.5, 1.0, arch.batch)
    ws = []
    v = x
    for k in range(arch.depth):
        fan_in = arch.widths[k]
        w = rng.uniform(-scale, scale, (arch.widths[k + 1], fan_in)) / np.sqrt(fan_in)
        slopes = v[:, 0]  # > 0 for every sample
        for j in range(w.shape[0]):
            rest = v[:, 1:] @ w[j, 1:]
            if j == 0:  # always active: every slope * t + rest >= margin
                need = float(np.max((1.001 * margin - rest) / slopes))
                w[j, 0] = max(w[j, 0], need)
            else:
                w[j, 0] = _away_from_roots(w[j, 0], slopes, rest, margin)
        z = v @ w.T
        assert np.min(np.abs(z)) >= margin and np.min(z[:, 0]) >= margin
        ws.append(w)
        v = np.maximum(z, 0)
    u = rng.uniform(-scale, scale, (arch.classes, arch.widths[-1]))
    y = np.eye(arch.classes)[rng.integers(0, arch.classes, arch.batch)]
    return Network([w.astype(dtype) for w in ws], u.astype(dtype), x.astype(dtype), y.astype(dtype))


@st.composite
def networks(draw, **arch_kwargs) -> Network:
    arch = draw(architectures(**arch_kwargs))
    seed = draw(st.integers(0, 2**32 - 1))
    return draw_network(arch, seed)
