"""The network API in one import: :class:`Network` and its initialisation helpers.

The network of Eqs 10-16 is a :class:`~numeric.network.Network` of
:class:`~numeric.layers.Dense` hidden layers and an :class:`~numeric.layers.Output`
layer; ``Network.create`` builds it with the uniform initialisation of Appendix A
(``b = 0.1`` for the plateau start, ``b = 0.2`` for the normal start).

Example
-------
>>> net = Network.create(784, [128] * 12, 10, init="plateau", seed=0)
>>> net.widths[:3], net.classes, net.num_params
((784, 128, 128), 10, 281856)
>>> Network.create(4, [3], 2, activation="tanh").activation
'tanh'
"""

from __future__ import annotations

import numpy as np

from numeric.network import INIT_BOUNDS, Network, as_targets, float_dtype, init_bound

__all__ = ["INIT_BOUNDS", "Network", "as_inputs", "as_targets", "float_dtype", "init_bound"]


def as_inputs(x, dtype=np.float64) -> np.ndarray:
    """Inputs as a C-contiguous array of ``dtype``."""
    return np.ascontiguousarray(x, dtype=dtype)
