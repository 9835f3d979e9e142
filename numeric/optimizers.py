"""Base optimizers of the numeric layer, with TensorFlow 1.x defaults and update rules.

The paper trains with TF1's ``tf.train`` optimizers; this module reproduces their dense
update rules (``training_ops`` kernels ``ApplyGradientDescent``, ``ApplyAdagrad``,
``ApplyAdadelta``, ``ApplyAdam``) in NumPy.

Design (optax-like, plain data)
-------------------------------
- ``params`` is a list of arrays, ``grads`` a list of arrays of the same shapes.
- An optimizer is a small frozen dataclass holding hyperparameters, with
  ``init(params) -> state`` and ``direction(grads, state, lr) -> (d, new_state)``.
- ``state`` is a plain ``dict[str, list[np.ndarray] | int]``; :func:`state_to_arrays`
  / :func:`state_from_arrays` (and :func:`save_state` / :func:`load_state`) convert it
  to and from a flat ``.npz``-ready mapping, bit for bit.
- ``d`` is the update the optimizer would apply: ``params_new = params + d``, see
  :func:`apply`.

Linearity in the learning rate
------------------------------
Every optimizer here computes an lr-free *unit direction* ``u`` from the gradients and
its accumulators, and returns ``d = lr * u``.  Hence ``direction(g, s, lr)[0]`` equals
``lr * direction(g, s, 1.0)[0]`` exactly, and the new state does not depend on ``lr``
(accumulators only ever see gradients and lr-free quantities).  A step-length
metamethod (cubic regularization) can therefore call ``direction(g, s, 1.0)`` once per
step, pick its own ``alpha`` and apply ``apply(params, u, alpha)``.  Each call advances
the state by one step, so call ``direction`` exactly once per step.

Unit directions (``g`` the gradient, all operations elementwise)::

    SGD       u = -g
    Adagrad   acc <- acc + g^2;                      u = -g / sqrt(acc)
    Adadelta  acc <- rho*acc + (1-rho)*g^2
              upd = sqrt(acc_upd + eps) / sqrt(acc + eps) * g
              acc_upd <- rho*acc_upd + (1-rho)*upd^2;  u = -upd
    Adam      t <- t + 1
              m <- beta1*m + (1-beta1)*g;  v <- beta2*v + (1-beta2)*g^2
              u = -(sqrt(1-beta2^t) / (1-beta1^t)) * m / (sqrt(v) + eps)

Backends
--------
:meth:`Optimizer.unit` is the pure rule ``(grads, state) -> (u, new_state)`` without
validation, written in the namespace of the gradients: the same code runs on NumPy
arrays and on JAX arrays under ``jax.jit`` (where ``state["step"]`` is a traced
integer).  :meth:`Optimizer.direction` validates its inputs and calls it.

Numerics
--------
Accumulators have the parameters' floating dtype (float64 for integer parameters);
gradients are cast to it, as TF requires matching dtypes.  TF1 keeps Adam's
``beta^t`` in running-product variables of the parameter dtype; here they are
computed as ``beta**t`` in double precision, and ``lr`` multiplies the unit direction
last.  Results therefore agree with TF1 up to floating-point rounding.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np

from numeric.kernels._runtime import namespace

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "OPTAX_OPTIMIZERS",
    "OPTIMIZERS",
    "Optimizer",
    "State",
    "apply",
    "get_optimizer",
    "load_state",
    "save_state",
    "state_from_arrays",
    "state_to_arrays",
]

State = dict[str, Any]
"""Optimizer state: a flat dict of lists of arrays (shaped like ``params``) and scalars.

Every state has ``"step"`` (int, number of directions computed so far) and ``"shapes"``
(list of 1-D int64 arrays, the parameter shapes, used to validate gradients).
"""


# --------------------------------------------------------------------------- helpers


def _real(name: str, value: object) -> float:
    """Return ``value`` as a finite Python float or raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def _float_dtype(dtype: np.dtype) -> np.dtype:
    """Floating dtype used for accumulators of a parameter of ``dtype``."""
    if np.issubdtype(dtype, np.floating):
        return np.dtype(dtype)
    if np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_):
        return np.dtype(np.float64)
    raise ValueError(f"parameters must be real (floating or integer) arrays, got dtype {dtype}")


def _as_dtype(a, dtype):
    """``a`` in ``dtype`` (no copy when it already is; NumPy or JAX)."""
    return a if a.dtype == dtype else a.astype(dtype)


def _as_array_list(name: str, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(arrays, np.ndarray) or not isinstance(arrays, Sequence):
        raise ValueError(f"{name} must be a list of arrays, got {type(arrays).__name__}")
    return [np.asarray(a) for a in arrays]


def _check_params(params: Sequence[np.ndarray]) -> list[np.ndarray]:
    ps = _as_array_list("params", params)
    if not ps:
        raise ValueError("params must contain at least one array")
    for i, p in enumerate(ps):
        if p.dtype == object:
            raise ValueError(f"params[{i}] is not a numeric array")
        _float_dtype(p.dtype)
    return ps


def _state_shapes(state: Mapping[str, Any]) -> list[tuple[int, ...]]:
    if not isinstance(state, Mapping) or "shapes" not in state or "step" not in state:
        raise ValueError("state must be a dict produced by init() (keys 'step' and 'shapes')")
    return [tuple(int(n) for n in np.asarray(s).ravel()) for s in state["shapes"]]


def _check_grads(
    grads: Sequence[np.ndarray],
    shapes: list[tuple[int, ...]],
    name: str = "grads",
    finite: bool = True,
) -> list[np.ndarray]:
    gs = _as_array_list(name, grads)
    if len(gs) != len(shapes):
        raise ValueError(f"{name} has {len(gs)} arrays but params have {len(shapes)}")
    for i, (g, shape) in enumerate(zip(gs, shapes, strict=True)):
        if g.shape != shape:
            raise ValueError(f"{name}[{i}] has shape {g.shape}, expected {shape}")
        if not (np.issubdtype(g.dtype, np.floating) or np.issubdtype(g.dtype, np.integer)):
            raise ValueError(f"{name}[{i}] must be a real array, got dtype {g.dtype}")
        if finite and not np.all(np.isfinite(g)):
            raise ValueError(f"{name}[{i}] contains NaN or inf")
    return gs


def _check_lr(lr: object) -> float:
    v = _real("lr", lr)
    if v < 0:
        raise ValueError(f"lr must be >= 0, got {lr!r}")
    return v


def _state_list(state: Mapping[str, object], key: str, n: int) -> list[np.ndarray]:
    try:
        arrs = state[key]
    except KeyError:
        raise ValueError(f"state is missing {key!r}; was it made by this optimizer?") from None
    if not isinstance(arrs, list | tuple) or len(arrs) != n:
        raise ValueError(f"state[{key!r}] must be a list of {n} arrays")
    return [np.asarray(a) for a in arrs]


# ------------------------------------------------------------------------ optimizers


@dataclass(frozen=True)
class Optimizer:
    """Base class: hyperparameters plus ``init`` / ``direction``.

    Subclasses implement :meth:`_unit`, the lr-free direction and new accumulators;
    :meth:`direction` validates inputs and multiplies the unit direction by ``lr``.

    Attributes
    ----------
    name : str
        Registry name (class attribute).
    learning_rate : float or None
        Default learning rate used when ``direction`` gets ``lr=None``; ``None`` where
        TF1 has no default (SGD, Adagrad), in which case ``lr`` must be passed.
    """

    name: ClassVar[str] = "base"

    learning_rate: float | None = None

    def __post_init__(self) -> None:
        if self.learning_rate is not None:
            _check_lr(self.learning_rate)

    # -- public API -------------------------------------------------------------

    def hyperparameters(self) -> dict[str, float | None]:
        """Hyperparameters as a plain dict (suitable for logging / ``get_optimizer``)."""
        return asdict(self)

    def init(self, params: Sequence[np.ndarray]) -> State:
        """Fresh optimizer state for ``params``.

        Parameters
        ----------
        params : list of np.ndarray
            Parameter arrays; only their shapes and dtypes are used.

        Returns
        -------
        State
            ``{"step": 0, "shapes": [...], <accumulators>}``, each accumulator a list of
            arrays shaped like ``params`` with the parameters' floating dtype.
        """
        ps = _check_params(params)
        state: State = {
            "step": 0,
            "shapes": [np.asarray(p.shape, dtype=np.int64) for p in ps],
        }
        state.update(self._init_accumulators(ps))
        return state

    def direction(
        self,
        grads: Sequence[np.ndarray],
        state: State,
        lr: float | None = None,
        check: bool = True,
    ) -> tuple[list[np.ndarray], State]:
        """Update ``d`` this optimizer would apply, and the advanced state.

        Parameters
        ----------
        grads : list of np.ndarray
            Gradients, same length and shapes as the ``params`` given to :meth:`init`;
            must be finite.
        state : State
            Current state (not modified).
        lr : float, optional
            Learning rate ``>= 0``; defaults to ``self.learning_rate``.
        check : bool
            Scan the gradients for NaN and inf (shapes are always checked).  A training
            loop that already checks its loss and gradients may pass ``False``.

        Returns
        -------
        d : list of np.ndarray
            ``lr * u`` with ``u`` the lr-free unit direction (see each subclass),
            shaped like ``grads``; ``params_new = params + d``.
        new_state : State
            State after this step (a new dict; independent of ``lr``).

        Raises
        ------
        ValueError
            On mismatched/non-finite gradients, a malformed state, or a bad ``lr``.
        """
        if lr is None:
            if self.learning_rate is None:
                raise ValueError(
                    f"{self.name}: no default learning rate (TF1 requires one); pass lr="
                )
            lr = self.learning_rate
        lr = _check_lr(lr)
        shapes = _state_shapes(state)
        gs = _check_grads(grads, shapes, finite=check)
        for key in self._accumulator_keys:
            _state_list(state, key, len(gs))
        unit, new_state = self.unit(gs, state)
        new_state["step"] = int(new_state["step"])
        new_state["shapes"] = [np.array(s, copy=True) for s in state["shapes"]]
        # np.asarray: keep 0-d parameters as 0-d arrays, not NumPy scalars
        for key in self._accumulator_keys:
            new_state[key] = [np.asarray(a) for a in new_state[key]]
        if lr == 1.0:  # the lr-free direction itself (what CR asks for): no extra pass
            return [np.asarray(u) for u in unit], new_state
        return [np.asarray(lr * u) for u in unit], new_state

    def unit(self, grads: Sequence, state: State) -> tuple[list, State]:
        """The lr-free unit direction and the advanced state, without validation.

        Pure and backend-generic (NumPy, or JAX under ``jit``): ``grads`` must match
        the state's shapes.  ``new_state`` shares ``"shapes"`` with ``state``.  The
        direction is always a set of fresh arrays: it never aliases ``grads``, which the
        curvature routes read afterwards (a conv or recurrent layer's low-rank route
        rebuilds ``-grad F`` from them).
        """
        unit, accs = self._unit(list(grads), state)
        new_state: State = {"step": state["step"] + 1, "shapes": state["shapes"]}
        new_state.update(accs)
        return unit, new_state

    def metric(self, before: State, after: State) -> list | None:
        """The diagonal metric of this optimizer's preconditioner for the step from
        ``before`` to ``after`` (states around one :meth:`unit` call), or ``None`` for
        the identity.

        The unit direction is ``u = -M^{-1} m`` with ``m`` the gradient or its running
        mean: ``M`` is the inverse of the diagonal preconditioner.  Scale-invariant CR
        (:mod:`numeric.rules`) measures the cubic term in it.  Pure and
        backend-generic like :meth:`unit`.
        """
        return None

    def update(
        self,
        params: Sequence[np.ndarray],
        grads: Sequence[np.ndarray],
        state: State,
        lr: float | None = None,
    ) -> tuple[list[np.ndarray], State]:
        """One plain optimizer step: ``(apply(params, d), new_state)``."""
        d, new_state = self.direction(grads, state, lr)
        return apply(params, d), new_state

    # -- subclass hooks ---------------------------------------------------------

    #: names of the state's accumulator lists
    _accumulator_keys: ClassVar[tuple[str, ...]] = ()

    def _init_accumulators(self, params: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
        return {}

    def _unit(
        self, grads: list[np.ndarray], state: State
    ) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
        raise NotImplementedError


@dataclass(frozen=True)
class SGD(Optimizer):
    """Plain gradient descent, TF1 ``GradientDescentOptimizer``.

    ``d = -lr * g``; unit direction ``u = -g``.  No accumulators.  TF1 has no default
    learning rate, so ``lr`` must be given (here or per call).  Having no accumulators,
    SGD returns ``d`` in the gradients' floating dtype; :func:`apply` casts the result
    back to the parameters' dtype.
    """

    name: ClassVar[str] = "sgd"

    learning_rate: float | None = None

    def _unit(self, grads, state):
        out = []
        for g in grads:
            g = _as_dtype(g, _float_dtype(g.dtype))
            out.append(-g)
        return out, {}


@dataclass(frozen=True)
class Adagrad(Optimizer):
    """Adagrad, TF1 ``AdagradOptimizer`` (``initial_accumulator_value=0.1``, no epsilon).

    ::

        acc <- acc + g^2          (acc_0 = initial_accumulator_value)
        u    = -g / sqrt(acc)
        d    = lr * u

    State keys: ``"acc"``.  TF1 has no default learning rate.
    """

    name: ClassVar[str] = "adagrad"

    learning_rate: float | None = None
    initial_accumulator_value: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if _real("initial_accumulator_value", self.initial_accumulator_value) <= 0:
            raise ValueError(
                f"initial_accumulator_value must be > 0, got {self.initial_accumulator_value!r}"
            )

    _accumulator_keys: ClassVar[tuple[str, ...]] = ("acc",)

    def _init_accumulators(self, params):
        a0 = float(self.initial_accumulator_value)
        return {"acc": [np.full(p.shape, a0, dtype=_float_dtype(p.dtype)) for p in params]}

    def _unit(self, grads, state):
        accs = state["acc"]
        xp = namespace(*grads)
        unit, new_acc = [], []
        for g, acc in zip(grads, accs, strict=True):
            g = _as_dtype(g, acc.dtype)
            acc = acc + g * g
            new_acc.append(acc)
            unit.append(-g / xp.sqrt(acc))
        return unit, {"acc": new_acc}

    def metric(self, before, after):
        """``M = sqrt(acc)`` (after the step's accumulation)."""
        xp = namespace(*after["acc"])
        return [xp.sqrt(a) for a in after["acc"]]


@dataclass(frozen=True)
class Adadelta(Optimizer):
    """Adadelta, TF1 ``AdadeltaOptimizer`` (``lr=0.001, rho=0.95, epsilon=1e-8``).

    ::

        acc     <- rho * acc + (1 - rho) * g^2                    (acc_0 = 0)
        upd      = sqrt(acc_upd + eps) / sqrt(acc + eps) * g
        acc_upd <- rho * acc_upd + (1 - rho) * upd^2              (acc_upd_0 = 0)
        u        = -upd
        d        = lr * u

    ``acc_upd`` accumulates the lr-free ``upd`` (as TF1's kernel does), so the state
    does not depend on ``lr``.  Zeiler's original method corresponds to ``lr = 1``.
    State keys: ``"acc"``, ``"acc_upd"``.
    """

    name: ClassVar[str] = "adadelta"

    learning_rate: float | None = 0.001
    rho: float = 0.95
    epsilon: float = 1e-8

    def __post_init__(self) -> None:
        super().__post_init__()
        rho = _real("rho", self.rho)
        if not 0.0 < rho < 1.0:
            raise ValueError(f"rho must lie in (0, 1), got {self.rho!r}")
        if _real("epsilon", self.epsilon) <= 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon!r}")

    _accumulator_keys: ClassVar[tuple[str, ...]] = ("acc", "acc_upd")

    def _init_accumulators(self, params):
        zeros = [np.zeros(p.shape, dtype=_float_dtype(p.dtype)) for p in params]
        return {"acc": zeros, "acc_upd": [z.copy() for z in zeros]}

    def _unit(self, grads, state):
        accs, acc_upds = state["acc"], state["acc_upd"]
        xp = namespace(*grads)
        rho, eps = float(self.rho), float(self.epsilon)
        unit, new_acc, new_acc_upd = [], [], []
        for g, acc, acc_upd in zip(grads, accs, acc_upds, strict=True):
            g = _as_dtype(g, acc.dtype)
            acc = acc * rho + (g * g) * (1.0 - rho)
            upd = xp.sqrt(acc_upd + eps) / xp.sqrt(acc + eps) * g
            acc_upd = acc_upd * rho + (upd * upd) * (1.0 - rho)
            new_acc.append(acc)
            new_acc_upd.append(acc_upd)
            unit.append(-upd)
        return unit, {"acc": new_acc, "acc_upd": new_acc_upd}

    def metric(self, before, after):
        """``M = sqrt(acc + eps) / sqrt(acc_upd_before + eps)``."""
        xp = namespace(*after["acc"])
        eps = float(self.epsilon)
        return [
            xp.sqrt(a + eps) / xp.sqrt(b + eps)
            for a, b in zip(after["acc"], before["acc_upd"], strict=True)
        ]


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam, TF1 ``AdamOptimizer`` (``lr=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8``).

    TF1 form (bias correction folded into the step, ``epsilon`` is Kingma & Ba's
    "epsilon hat", added to ``sqrt(v)`` without bias correction)::

        t <- t + 1                                     (t = state["step"] + 1)
        m <- beta1 * m + (1 - beta1) * g               (m_0 = 0)
        v <- beta2 * v + (1 - beta2) * g^2             (v_0 = 0)
        u  = -(sqrt(1 - beta2^t) / (1 - beta1^t)) * m / (sqrt(v) + epsilon)
        d  = lr * u             (i.e. d = -lr_t * m / (sqrt(v) + epsilon))

    State keys: ``"m"``, ``"v"``; ``"step"`` is ``t``.
    """

    name: ClassVar[str] = "adam"

    learning_rate: float | None = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("beta1", "beta2"):
            b = _real(name, getattr(self, name))
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)!r}")
        if _real("epsilon", self.epsilon) <= 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon!r}")

    _accumulator_keys: ClassVar[tuple[str, ...]] = ("m", "v")

    def _init_accumulators(self, params):
        zeros = [np.zeros(p.shape, dtype=_float_dtype(p.dtype)) for p in params]
        return {"m": zeros, "v": [z.copy() for z in zeros]}

    def _unit(self, grads, state):
        ms, vs = state["m"], state["v"]
        xp = namespace(*grads)
        b1, b2, eps = float(self.beta1), float(self.beta2), float(self.epsilon)
        step = state["step"]
        if isinstance(step, numbers.Integral):
            t = int(step) + 1
            scale = math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        else:  # a traced step (JAX): the same formula on a 0-d array
            t = step + 1
            scale = xp.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        unit, new_m, new_v = [], [], []
        for g, m, v in zip(grads, ms, vs, strict=True):
            g = _as_dtype(g, m.dtype)
            m = m * b1 + g * (1.0 - b1)
            v = v * b2 + (g * g) * (1.0 - b2)
            new_m.append(m)
            new_v.append(v)
            unit.append(-scale * m / (xp.sqrt(v) + eps))
        return unit, {"m": new_m, "v": new_v}

    def metric(self, before, after):
        """``M = (sqrt(v) + eps) / scale_t`` with ``scale_t = sqrt(1 - beta2^t) / (1 -
        beta1^t)``: ``u = -M^{-1} m``."""
        xp = namespace(*after["v"])
        b1, b2, eps = float(self.beta1), float(self.beta2), float(self.epsilon)
        step = before["step"]
        if isinstance(step, numbers.Integral):
            t = int(step) + 1
            scale = math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        else:
            t = step + 1
            scale = xp.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        return [(xp.sqrt(v) + eps) / scale for v in after["v"]]


# -------------------------------------------------------------------------- registry

OPTIMIZERS: dict[str, type[Optimizer]] = {cls.name: cls for cls in (SGD, Adagrad, Adadelta, Adam)}
"""Registry name -> optimizer class."""

#: optax's methods that ``lowrank train --backend jax`` also accepts (run through
#: :class:`numeric.optax_methods.OptaxMethod`; the list is here so that NumPy-only code can
#: name them without importing JAX)
OPTAX_OPTIMIZERS = (
    "prodigy",
    "dadapt_adamw",
    "dog",
    "schedule_free_adamw",
    "schedule_free_sgd",
    "momo",
    "linesearch",
    "sophia",
)


def get_optimizer(name: str, **hyper: float) -> Optimizer:
    """Build an optimizer by registry name with TF1 defaults.

    Parameters
    ----------
    name : {"sgd", "adagrad", "adadelta", "adam"}
        Case-insensitive optimizer name.
    **hyper
        Hyperparameters overriding the defaults, e.g. ``learning_rate=0.01``,
        ``rho=0.9``, ``beta1=0.8``, ``initial_accumulator_value=0.2``.

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        For an unknown name, an unknown hyperparameter, or an invalid value.
    """
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    cls = OPTIMIZERS[name.lower()]
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(hyper) - allowed)
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown} for {cls.name!r}; allowed: {sorted(allowed)}"
        )
    return cls(**hyper)


# ------------------------------------------------------------------- params & state


def apply(
    params: Sequence[np.ndarray], direction: Sequence[np.ndarray], scale: float = 1.0
) -> list[np.ndarray]:
    """Return ``params + scale * direction`` (new arrays, parameters' dtypes kept).

    Parameters
    ----------
    params : list of np.ndarray
        Current parameters.
    direction : list of np.ndarray
        Same length and shapes as ``params``.
    scale : float, default 1.0
        Step length multiplying ``direction`` (any finite real).

    Raises
    ------
    ValueError
        On mismatched lengths/shapes or a non-finite ``scale``.
    """
    ps = _check_params(params)
    scale = _real("scale", scale)
    ds = _check_grads(direction, [p.shape for p in ps], name="direction")
    out = []
    for p, d in zip(ps, ds, strict=True):
        dt = _float_dtype(p.dtype)
        out.append(
            np.asarray(p.astype(dt, copy=False) + scale * d.astype(dt, copy=False), dtype=dt)
        )
    return out


_LIST_KEY = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)\.(?P<idx>[0-9]+)$")
_SCALAR_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def state_to_arrays(state: State) -> dict[str, np.ndarray]:
    """Flatten a state into ``{name: array}`` for ``np.savez``.

    List entries ``state[key][i]`` become ``"key.i"``; int/float scalars become 0-d
    int64/float64 arrays under ``"key"``.  Arrays are copied, so the round trip through
    :func:`state_from_arrays` is exact.
    """
    out: dict[str, np.ndarray] = {}
    for key, val in state.items():
        if not _SCALAR_KEY.match(key):
            raise ValueError(f"state key {key!r} is not a plain identifier")
        if isinstance(val, list | tuple):
            for i, a in enumerate(val):
                out[f"{key}.{i}"] = np.array(a, copy=True)
        elif isinstance(val, bool):
            raise ValueError(f"state[{key!r}] is a bool; expected int, float or list")
        elif isinstance(val, numbers.Integral):
            out[key] = np.asarray(int(val), dtype=np.int64)
        elif isinstance(val, numbers.Real):
            out[key] = np.asarray(float(val), dtype=np.float64)
        else:
            raise ValueError(f"state[{key!r}] has unsupported type {type(val).__name__}")
    return out


def state_from_arrays(arrays: Mapping[str, np.ndarray]) -> State:
    """Inverse of :func:`state_to_arrays` (accepts the mapping ``np.load`` returns)."""
    lists: dict[str, dict[int, np.ndarray]] = {}
    state: State = {}
    for name in arrays:
        a = np.asarray(arrays[name])
        m = _LIST_KEY.match(name)
        if m:
            lists.setdefault(m["key"], {})[int(m["idx"])] = np.array(a, copy=True)
        elif _SCALAR_KEY.match(name):
            if a.ndim != 0:
                raise ValueError(f"scalar state entry {name!r} has shape {a.shape}")
            if np.issubdtype(a.dtype, np.integer):
                state[name] = int(a)
            elif np.issubdtype(a.dtype, np.floating):
                state[name] = float(a)
            else:
                raise ValueError(f"scalar state entry {name!r} has dtype {a.dtype}")
        else:
            raise ValueError(f"unrecognised state entry {name!r}")
    for key, items in lists.items():
        if key in state:
            raise ValueError(f"state key {key!r} is both a scalar and a list")
        if sorted(items) != list(range(len(items))):
            raise ValueError(f"state list {key!r} has non-contiguous indices {sorted(items)}")
        state[key] = [items[i] for i in range(len(items))]
    return state


def save_state(file: str | os.PathLike[str], state: State) -> None:
    """Write ``state`` to an uncompressed ``.npz`` file (exact round trip)."""
    arrays: dict[str, Any] = state_to_arrays(
        state
    )  # Any: savez's stub reads **kwds as allow_pickle too
    np.savez(file, **arrays)


def load_state(file: str | os.PathLike[str]) -> State:
    """Read a state written by :func:`save_state` (no pickles are loaded)."""
    with np.load(file, allow_pickle=False) as data:
        return state_from_arrays({k: data[k] for k in data.files})
