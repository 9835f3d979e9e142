"""Run-time support for the generated kernels (hand-written; NumPy, and JAX when given).

* :func:`einsum` runs one printed contraction on either backend.  NumPy arrays go
  along a contraction plan cached per (subscripts, shapes): numpy's greedy path, each
  pairwise step a single ``np.matmul`` on transposed and reshaped operands
  (``np.einsum`` without ``optimize`` never uses BLAS; with a path it re-validates that
  path on every call, tens of microseconds at the sizes of the paper's networks).
  :func:`set_planner` switches the NumPy path to ``opt_einsum``'s cached
  ``contract_expression`` (``lowrank bench`` times both in one run).  Any other array
  (JAX, also under ``jit``) goes to its own namespace's ``einsum``.
* :func:`namespace` is the one backend shim: NumPy for NumPy arrays, otherwise the
  array's ``__array_namespace__`` (``jax.numpy`` for JAX arrays) through
  ``array-api-compat``.  The NumPy path never imports JAX.
* :func:`eye_like`, :func:`as_float`, :func:`quiet` and :func:`read_masked` are the
  other helpers printed kernels call.
* :func:`check_network` and friends raise clear ``ValueError``\\ s for bad input
  before any contraction runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "as_float",
    "check_direction",
    "check_labels",
    "check_network",
    "einsum",
    "eye",
    "eye_like",
    "namespace",
    "planner",
    "quiet",
    "read_masked",
    "set_planner",
]

_NUMPY_TYPES = (np.ndarray, np.generic, float, int)


def namespace(*arrays):
    """Array namespace of ``arrays``: ``numpy`` unless one of them is another library's.

    NumPy arrays, NumPy scalars and Python numbers are NumPy's; anything else (a JAX
    array or tracer) answers through ``array_api_compat.array_namespace``, and NumPy
    arrays among the arguments are then read as inputs of that namespace.
    """
    for a in arrays:
        if a is None or isinstance(a, _NUMPY_TYPES):
            continue
        import array_api_compat

        # NumPy arrays mixed in (inputs, constants) convert into the other namespace
        others = [b for b in arrays if b is not None and not isinstance(b, _NUMPY_TYPES)]
        return array_api_compat.array_namespace(*others)
    return np


_PLANS: dict[tuple, list] = {}


def _pair_step(a_sub: str, b_sub: str, out_sub: str, a_shape, b_shape):
    """A function computing one pairwise contraction with a single BLAS call.

    Indices are sorted into batch (both operands, kept), contracted (both, dropped),
    and free (one operand, kept); the operands are transposed and reshaped to
    ``(batch, free, contracted)`` stacks so that one ``np.matmul`` (or, without
    contracted indices, one broadcast multiply) does the work.  Returns ``None``
    for steps this does not cover (repeated or summed-away indices), which then
    run through ``np.einsum`` directly.
    """
    if len(set(a_sub)) != len(a_sub) or len(set(b_sub)) != len(b_sub):
        return None
    if set(a_sub) - set(b_sub) - set(out_sub) or set(b_sub) - set(a_sub) - set(out_sub):
        return None
    size = dict(zip(a_sub, a_shape, strict=True)) | dict(zip(b_sub, b_shape, strict=True))
    first_free = next((c for c in out_sub if not (c in a_sub and c in b_sub)), None)
    if first_free is not None and first_free not in a_sub:
        # the output starts with b's free indices: compute with the roles swapped so
        # that the matmul result is already in output order (no copy afterwards)
        swapped = _pair_step(b_sub, a_sub, out_sub, b_shape, a_shape)
        return None if swapped is None else (lambda a, b: swapped(b, a))
    batch = [c for c in out_sub if c in a_sub and c in b_sub]
    left = [c for c in out_sub if c in a_sub and c not in b_sub]
    right = [c for c in out_sub if c in b_sub and c not in a_sub]
    con = [c for c in a_sub if c in b_sub and c not in out_sub]
    nb = int(np.prod([size[c] for c in batch], dtype=np.int64))
    nl = int(np.prod([size[c] for c in left], dtype=np.int64))
    nr = int(np.prod([size[c] for c in right], dtype=np.int64))
    nc = int(np.prod([size[c] for c in con], dtype=np.int64))
    a_perm = tuple(a_sub.index(c) for c in batch + left + con)
    b_perm = tuple(b_sub.index(c) for c in batch + con + right)
    mid = batch + left + right
    out_perm = tuple(mid.index(c) for c in out_sub)
    out_shape = tuple(size[c] for c in mid)
    ident_a = a_perm == tuple(range(len(a_perm)))
    ident_b = b_perm == tuple(range(len(b_perm)))
    ident_o = out_perm == tuple(range(len(out_perm)))

    lead = (nb,) if batch else ()

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a2 = (a if ident_a else a.transpose(a_perm)).reshape(*lead, nl, nc)
        b2 = (b if ident_b else b.transpose(b_perm)).reshape(*lead, nc, nr)
        res = a2 * b2 if nc == 1 else np.matmul(a2, b2)
        res = res.reshape(out_shape)
        if not ident_o:
            res = res.transpose(out_perm)
        # keep results C-ordered: later reshapes of an F-ordered result would copy
        return res if res.flags.c_contiguous else np.ascontiguousarray(res)

    return run


def _plan(subscripts: str, shapes: tuple) -> list:
    """Pairwise contraction steps along numpy's greedy path for these shapes."""
    ins, out = subscripts.split("->")
    subs = ins.split(",")
    dummies = [np.empty(shape, dtype=np.float32) for shape in shapes]
    path = np.einsum_path(subscripts, *dummies, optimize="greedy")[0][1:]
    shp = list(shapes)
    steps = []
    for pos in path:
        pos = tuple(sorted(pos, reverse=True))
        taken = [subs.pop(p) for p in pos]
        tshape = [shp.pop(p) for p in pos]
        rest = "".join(subs) + out
        seen = "".join(taken)
        new = "".join(dict.fromkeys(c for c in seen if c in rest))
        # order the kept indices like the final output where possible
        new = "".join(sorted(new, key=lambda c: (out.index(c) if c in out else len(out), c)))
        if not rest.strip() or len(subs) == 0:
            new = out
        spec = ",".join(taken) + "->" + new
        size: dict[str, int] = {}
        for sub_, sh in zip(taken, tshape, strict=True):
            size.update(zip(sub_, sh, strict=True))
        fn = None
        if len(taken) == 2:
            fn = _pair_step(taken[0], taken[1], new, tshape[0], tshape[1])
        steps.append((pos, spec, fn))
        subs.append(new)
        shp.append(tuple(size[c] for c in new))
    if subs != [out]:  # a final transpose or sum
        steps.append(((0,), subs[0] + "->" + out, None))
    return steps


_PLANNER = ["runtime"]
_OPT_PLANS: dict[tuple, Callable[..., Any]] = {}


def planner() -> str:
    """The NumPy contraction planner in use: ``"runtime"`` (default) or ``"opt_einsum"``."""
    return _PLANNER[0]


def set_planner(name: str) -> str:
    """Choose the NumPy planner (``"runtime"`` or ``"opt_einsum"``); returns the old one."""
    if name not in ("runtime", "opt_einsum"):
        raise ValueError(f"planner must be 'runtime' or 'opt_einsum', got {name!r}")
    old = _PLANNER[0]
    _PLANNER[0] = name
    return old


def _opt_einsum(subscripts: str, operands) -> np.ndarray:
    key = (subscripts, *(op.shape for op in operands))
    expr = _OPT_PLANS.get(key)
    if expr is None:
        import opt_einsum

        expr = opt_einsum.contract_expression(
            subscripts, *(op.shape for op in operands), optimize="greedy"
        )
        _OPT_PLANS[key] = expr
    return expr(*operands, backend="numpy")


_OTHER_PATHS: dict[tuple, list] = {}


def _other_path(subscripts: str, operands) -> list:
    """A greedy contraction path for another backend's ``einsum``, cached per
    (subscripts, shapes) so that eager calls skip the path search."""
    key = (subscripts, *(tuple(op.shape) for op in operands))
    path = _OTHER_PATHS.get(key)
    if path is None:
        import opt_einsum

        path = opt_einsum.contract_path(subscripts, *key[1:], shapes=True, optimize="greedy")[0]
        _OTHER_PATHS[key] = path
    return path


def einsum(subscripts: str, *operands):
    """One contraction on the operands' backend.

    NumPy: along a cached greedy path, one BLAS call per pairwise step (or through
    ``opt_einsum``, see :func:`set_planner`).  Other arrays (JAX): the namespace's
    ``einsum`` along a greedy path cached per (subscripts, shapes).
    """
    for op in operands:
        if type(op) is not np.ndarray:
            if isinstance(op, np.ndarray):
                continue
            xp = namespace(*operands)
            if xp is not np:
                return xp.einsum(subscripts, *operands, optimize=_other_path(subscripts, operands))
            operands = tuple(np.asarray(o) for o in operands)
            break
    if _PLANNER[0] == "opt_einsum":
        return _opt_einsum(subscripts, operands)
    key = (subscripts, *(op.shape for op in operands))
    plan = _PLANS.get(key)
    if plan is None:
        plan = _plan(subscripts, tuple(op.shape for op in operands))
        _PLANS[key] = plan
    ops = list(operands)
    for pos, spec, fn in plan:
        taken = [ops.pop(p) for p in pos]
        ops.append(fn(*taken) if fn is not None else np.einsum(spec, *taken))
    return ops[0]


def eye(size: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """NumPy identity matrix (a Kronecker delta)."""
    return np.eye(size, dtype=dtype)


def eye_like(arr, axis: int):
    """Identity of size ``arr.shape[axis]`` in ``arr``'s dtype and namespace: the
    Kronecker delta of an index form, sized by the operand it pairs with."""
    xp = namespace(arr)
    if xp is np:
        return np.eye(arr.shape[axis], dtype=arr.dtype)
    return xp.eye(arr.shape[axis], dtype=arr.dtype)


def as_float(x):
    """``x`` as an array of a floating dtype (float64 for Python and integer input)."""
    xp = namespace(x)
    if xp is np:
        return np.asarray(x, dtype=np.result_type(x, 1.0))
    x = xp.asarray(x)
    return x if xp.isdtype(x.dtype, "real floating") else xp.astype(x, xp.float64)


def quiet():
    """Context in which NumPy's floating-point warnings are off (inf and NaN are
    results the callers handle); a no-op for other backends."""
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")


def read_masked(arr: np.ndarray, index: tuple) -> np.ndarray:
    """``arr[index]`` for broadcast integer index grids; NaN where an index is outside
    ``arr`` (an entry-wise form read there is undefined).  NumPy only."""
    index = np.broadcast_arrays(*index)
    inside = np.ones(index[0].shape, dtype=bool)
    clipped = []
    for ix, size in zip(index, arr.shape, strict=True):
        inside &= (ix >= 0) & (ix < size)
        clipped.append(np.clip(ix, 0, size - 1))
    return np.where(inside, arr[tuple(clipped)], np.nan)


def _finite(name: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite entries")


def check_network(
    ws: Sequence[np.ndarray], u: np.ndarray, x: np.ndarray, check_finite: bool = True
) -> None:
    """Validate weights and inputs of the network of Eqs 10-13.

    Parameters
    ----------
    ws : sequence of ndarray
        ``ws[k-1]`` of shape ``(w_k, w_{k-1})``.
    u : ndarray, shape (classes, w_n)
    x : ndarray, shape (batch, d_in)
    check_finite : bool
        Also reject NaN and infinite entries.

    Raises
    ------
    ValueError
        On a wrong number of axes, mismatched layer widths or non-finite entries.
    """
    if len(ws) == 0:
        raise ValueError("the network needs at least one hidden layer (ws is empty)")
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (batch, d_in); got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("x holds no samples (batch size 0)")
    width = x.shape[1]
    for k, w in enumerate(ws, start=1):
        w = np.asarray(w)
        if w.ndim != 2:
            raise ValueError(f"ws[{k - 1}] (layer {k}) must be 2-D (w_k, w_k-1); got {w.shape}")
        if w.shape[1] != width:
            raise ValueError(
                f"layer widths do not match: ws[{k - 1}] (layer {k}) has shape {w.shape}, "
                f"expected (w_{k}, {width}) to take the {width} outputs of layer {k - 1}"
            )
        width = w.shape[0]
    u = np.asarray(u)
    if u.ndim != 2 or u.shape[1] != width:
        raise ValueError(f"u must have shape (classes, {width}); got {u.shape}")
    if check_finite:
        _finite("x", x)
        for k, w in enumerate(ws, start=1):
            _finite(f"ws[{k - 1}] (layer {k})", w)
        _finite("u", u)


def check_direction(
    ws: Sequence[np.ndarray], u: np.ndarray, omega: np.ndarray, phis: Sequence[np.ndarray]
) -> None:
    """Validate a direction ``(omega, phis)`` against the weights it moves."""
    if len(phis) != len(ws):
        raise ValueError(f"direction has {len(phis)} hidden blocks, the network {len(ws)}")
    if np.shape(omega) != np.shape(u):
        raise ValueError(f"omega must have the shape of u {np.shape(u)}; got {np.shape(omega)}")
    for k, (phi, w) in enumerate(zip(phis, ws, strict=True), start=1):
        if np.shape(phi) != np.shape(w):
            raise ValueError(
                f"phis[{k - 1}] must have the shape of ws[{k - 1}] {np.shape(w)}; "
                f"got {np.shape(phi)}"
            )
    _finite("omega", np.asarray(omega))
    for k, phi in enumerate(phis):
        _finite(f"phis[{k}]", np.asarray(phi))


def check_labels(y: np.ndarray, batch: int, classes: int) -> None:
    """Validate label rows ``y`` of shape ``(batch, classes)``."""
    y = np.asarray(y)
    if y.shape != (batch, classes):
        raise ValueError(f"y must have shape ({batch}, {classes}) (one-hot rows); got {y.shape}")
    _finite("y", y)
