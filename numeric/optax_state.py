"""A JAX optimizer state (any pytree: optax's, kfac-jax's) to and from named arrays.

:func:`state_to_arrays` writes the leaves as ``{"leaf.<i>": array}`` for ``np.savez``;
:func:`state_from_arrays` puts them back into the structure of a template state.  Each
leaf comes back with the dtype and the shape it was saved with, never the template's
dtype: a state made before float64 was enabled holds float32 leaves, and optax keeps
some scalars (Schedule-Free's ``b1``, weight sum and largest rate) in the dtype they
were made with, so only the saved dtype continues the run bit for bit.  This module
imports JAX; ``import numeric`` does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

__all__ = ["state_from_arrays", "state_to_arrays"]

#: template leaves that are Python numbers come back as Python numbers
_PYTHON_SCALARS = (bool, int, float)


def state_to_arrays(state: Any) -> dict[str, np.ndarray]:
    """The leaves of ``state`` (in ``jax.tree_util`` order) as ``{"leaf.<i>": array}``.

    Arrays are copied to the host with their dtype and shape; Python numbers become 0-d
    arrays (int64, float64 or bool).
    """
    return {
        f"leaf.{i}": np.array(a, copy=True) for i, a in enumerate(jax.tree_util.tree_leaves(state))
    }


def _shape(like: Any) -> tuple[int, ...]:
    shape = getattr(like, "shape", None)  # arrays and jax.ShapeDtypeStruct
    return tuple(np.shape(like) if shape is None else shape)


def state_from_arrays(arrays: Mapping[str, np.ndarray], template: Any) -> Any:
    """Inverse of :func:`state_to_arrays`, given a state of the same structure.

    Parameters
    ----------
    arrays : mapping ``"leaf.<i>" -> array``
        As written by :func:`state_to_arrays` (or read back by ``np.load``).
    template : pytree
        A state of the same structure (e.g. ``tx.init(params)``, or its
        ``jax.eval_shape``): only its tree structure, its leaves' shapes and which leaves
        are Python numbers are read, never its dtypes.

    Returns
    -------
    pytree
        ``template``'s structure; array leaves are host arrays (``np.ndarray``) with the
        saved dtype and shape (JAX takes them as they are on the next step), Python
        number leaves are Python numbers again.

    Raises
    ------
    ValueError
        The arrays do not fit the template: another number of leaves, or a leaf of
        another shape.
    """
    leaves, treedef = jax.tree_util.tree_flatten(template)
    names = {f"leaf.{i}" for i in range(len(leaves))}
    if set(arrays) != names:
        raise ValueError(
            f"the checkpoint holds {len(arrays)} optimizer leaves, expected {len(leaves)}"
        )
    out = []
    for i, like in enumerate(leaves):
        a = np.array(arrays[f"leaf.{i}"], copy=True)
        if a.shape != _shape(like):
            raise ValueError(f"optimizer leaf {i} has shape {a.shape}, expected {_shape(like)}")
        out.append(a.item() if isinstance(like, _PYTHON_SCALARS) else a)
    return jax.tree_util.tree_unflatten(treedef, out)
