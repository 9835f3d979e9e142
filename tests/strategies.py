"""Hypothesis strategies for random architectures and networks (shared by the tests).

An *architecture* is ``(widths, classes, batch)`` with ``widths = (d_in, w_1, ..., w_n)``.
:func:`networks` draws weights, inputs and one-hot labels for one, with pre-activations
kept away from the ReLU kink (|z| >= ``margin``) so that derivatives are defined and
finite differences are clean.
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


def draw_network(
    arch: Architecture,
    seed: int,
    scale: float = 1.0,
    margin: float = 1e-3,
    dtype=np.float64,
    tries: int = 200,
) -> Network:
    """Weights uniform in +-scale (scaled by fan-in), inputs uniform, one-hot labels; redraw
    until no pre-activation is within ``margin`` of the ReLU kink."""
    rng = np.random.default_rng(seed)
    for _ in range(tries):
        ws = [
            rng.uniform(-scale, scale, (arch.widths[k + 1], arch.widths[k]))
            / np.sqrt(arch.widths[k])
            for k in range(arch.depth)
        ]
        u = rng.uniform(-scale, scale, (arch.classes, arch.widths[-1]))
        x = rng.uniform(-1, 1, (arch.batch, arch.widths[0]))
        y = np.eye(arch.classes)[rng.integers(0, arch.classes, arch.batch)]
        v, ok = x, True
        for w in ws:
            z = v @ w.T
            if np.min(np.abs(z)) < margin:
                ok = False
                break
            v = np.maximum(z, 0)
        if ok:
            return Network(
                [w.astype(dtype) for w in ws], u.astype(dtype), x.astype(dtype), y.astype(dtype)
            )
    raise RuntimeError("could not draw a network away from the ReLU kinks")


@st.composite
def networks(draw, **arch_kwargs) -> Network:
    arch = draw(architectures(**arch_kwargs))
    seed = draw(st.integers(0, 2**32 - 1))
    return draw_network(arch, seed)
