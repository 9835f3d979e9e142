"""CR where researchers train: an optax transformation, and optax methods for ``lowrank train``.

:func:`scale_by_cr` is an ``optax.GradientTransformationExtraArgs`` that composes with any
base transformation: the base's output is read as the lr-free direction in optax's sign
convention (gradient-like, as ``scale_by_adam``, ``scale_by_rss`` or no transformation
for SGD), CR takes the descent direction ``d = -updates`` and returns ``alpha * d`` with
the step length of Eq 37 (through the cancellation-free form C8), with the flags and
fallbacks of :mod:`numeric.cr` (non-descent, zero, non-finite)::

    opt = optax.chain(optax.scale_by_adam(), scale_by_cr(sigma=1000.0))
    state = opt.init(params)
    updates, state = opt.update(grads, state, params, value_fn=loss_of_params)
    params = optax.apply_updates(params, updates)

``d^T grad F`` and ``d^T H d`` are exact:

* for any JAX model, by one forward-over-reverse product of ``value_fn``
  (``jax.jvp(jax.grad(value_fn))``), for any pytree of parameters;
* for this project's networks, when ``value_fn`` is a :class:`NetworkObjective`, by the
  generated contracted kernels (one tangent sweep; the low-rank forms L1-L4 when
  ``direction="sgd"`` says the incoming updates are the gradient itself), without
  building the autodiff route; equinox and flax models get one through
  :func:`numeric.adapters.objective`.

:mod:`numeric.optax_methods` runs any optax transformation (CR chains, and the optax
baselines) as a training method of ``lowrank train``.  This module imports JAX and optax;
``import numeric`` does not.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from numeric.autodiff import AutodiffCurvature
from numeric.cr import FLAGS
from numeric.losses import softmax_cross_entropy
from numeric.network import forward
from numeric.optax_state import state_from_arrays, state_to_arrays
from numeric.rules import (
    ARC,
    AVERAGING,
    Curvature,
    Every,
    KernelCurvature,
    Outcome,
    StepStats,
    check_fallback,
    concrete,
    make_rule,
    rms_metric,
    rms_update,
)
from numeric.stepping import Evaluation, evaluate

__all__ = [
    "CONVENTIONS",
    "ConventionError",
    "NetworkObjective",
    "ScaleByCRState",
    "check_convention",
    "find_cr_state",
    "floating",
    "scale_by_cr",
    "state_from_arrays",
    "state_to_arrays",
]


class ScaleByCRState(NamedTuple):
    """What the last CR step did (all 0-d arrays), for logging, and the rule's state.

    ``alpha`` the step length along ``d`` (adaptive: the trial length; per-layer and
    per-variable: the least-squares scalar of the applied step); ``lr_eff`` the scalar
    ``s`` with ``s d`` (closest to) the applied step; ``dgrad`` = ``d^T grad F``;
    ``dhd`` = ``d^T H d`` (per-layer: its block-diagonal part, per-variable: its diagonal
    part); ``dnorm`` = ``||d||``; ``flag`` an index into :data:`numeric.cr.FLAGS`;
    ``count`` the number of steps taken.  ``rule``: the rule's own state
    (:mod:`numeric.rules`: adaptive CR's ``sigma``; ``every > 1``'s kept lengths and
    their ``age``).  ``rms``, ``rms_count``: the running mean of the squared gradient
    (scale-invariant CR's metric; ``None`` otherwise).  ``convention_error``: a bool set
    for good when the first step's direction pointed uphill (``d^T grad F > 0``): the
    incoming updates were in the other sign convention (``updates=`` of
    :func:`scale_by_cr`; :func:`check_convention` raises on it).
    """

    count: Any
    alpha: Any
    lr_eff: Any
    dgrad: Any
    dhd: Any
    dnorm: Any
    flag: Any
    rule: Any = None
    rms: Any = None
    rms_count: Any = None
    convention_error: Any = None


class NetworkObjective:
    """``F(params)`` of a :class:`numeric.network.Network` on one batch: the fast path.

    Passed as ``value_fn``, it lets :func:`scale_by_cr` compute ``d^T grad F`` and
    ``d^T H d`` with the generated kernels.  ``params`` is the network's flat parameter
    list.  Calling it returns the batch-mean loss (so it also serves as an ordinary
    ``value_fn`` for line searches).

    Parameters
    ----------
    layers : sequence of Layer
    x : array, shape (batch, *in_shape)
    y : array, shape (batch, classes)
        Label rows (e.g. one-hot).
    """

    def __init__(self, layers: Sequence, x, y) -> None:
        self.layers = tuple(layers)
        self.x = x
        self.y = y
        self._last: tuple | None = None

    def evaluate(self, params, second: bool = True) -> Evaluation:
        """The network's sweeps on the batch (:func:`numeric.stepping.evaluate`)."""
        return evaluate(self.layers, list(params), self.x, self.y, second)

    def sweeps(self, leaves: Sequence) -> tuple[list, Evaluation]:
        """The network's parameters from the floating leaves (:meth:`flat`) and their
        sweeps with the second-order terms.  The last answer is kept for the same leaf
        objects (JAX arrays are immutable; under ``jit`` the same tracers): a
        :meth:`value_and_grad` for the gradient and the CR step that follows in the same
        traced step share one forward and adjoint sweep (XLA does not merge the two)."""
        leaves = list(leaves)
        last = self._last
        if (
            last is not None
            and len(last[0]) == len(leaves)
            and all(a is b for a, b in zip(last[0], leaves, strict=True))
        ):
            return last[1], last[2]
        params = self.flat(leaves)
        ev = self.evaluate(params)
        if all(isinstance(a, jax.Array) for a in leaves):
            self._last = (leaves, params, ev)
        return params, ev

    def __call__(self, params):
        tape = forward(self.layers, list(params), self.x, second=False)
        f, _, _ = softmax_cross_entropy(tape.p, self.y, second=False)
        return f.mean()

    def value_and_grad(self, params):
        """``(F, grad F)`` through the generated adjoint sweep."""
        _, ev = self.sweeps(params)
        return ev.loss, ev.grads

    def flat(self, leaves: Sequence) -> list:
        """The network's parameter list from the floating leaves of ``params`` (here the
        list itself; :class:`numeric.adapters.ModelObjective` reads a model's)."""
        return list(leaves)

    def unflat(self, arrays: Sequence, like: Sequence) -> list:
        """The inverse of :meth:`flat`: arrays in the network's layout, in the layout
        and order of the floating leaves ``like`` (here the list itself)."""
        return list(arrays)

    #: for each of the network's arrays, the index of its leaf among the floating leaves
    #: of ``params`` (``None``: the same list)
    leaf_of: list[int] | None = None


class _Reshaped(Curvature):
    """A :class:`KernelCurvature` read in the layout of a model's own leaves ``like``
    (directions through ``objective.flat``, results back through ``objective.unflat``:
    reshapes, and transposes where the layouts differ)."""

    def __init__(self, inner: Curvature, objective: NetworkObjective, like) -> None:
        self.inner, self.objective, self.like = inner, objective, list(like)
        self.sgd = inner.sgd

    def grad(self):
        return self.objective.unflat(self.inner.grad(), self.like)

    def along(self, d):
        return self.inner.along(self.objective.flat(d))

    def outputs(self, d):
        return self.inner.outputs(self.objective.flat(d))

    def blocks(self, d):
        out, owner = self.inner.blocks(self.objective.flat(d))
        order = self.objective.leaf_of
        if order is None:
            return out, owner
        mine = [0] * len(self.like)  # each leaf's block, in the leaves' order
        for j, b in enumerate(owner):
            mine[order[j]] = b
        return out, mine

    def diagonal(self):
        return self.objective.unflat(self.inner.diagonal(), self.like)

    def decrease(self, step):
        return self.inner.decrease(self.objective.flat(step))


class _Embedded(Curvature):
    """A curvature of all floating parameters read on the subset ``keep`` that
    ``optax.masked`` hands to :func:`scale_by_cr` (the other entries of a direction are
    zero; results are read on the subset).  Per-layer blocks with no kept array are
    dropped."""

    def __init__(self, inner: Curvature, keep: Sequence[bool], like: Sequence) -> None:
        self.inner, self.keep, self.like = inner, list(keep), list(like)
        self.sgd = False

    def _sub(self, arrays):
        return [a for a, k in zip(arrays, self.keep, strict=True) if k]

    def _full(self, sub):
        it = iter(sub)
        return [next(it) if k else jnp.zeros_like(a) for a, k in zip(self.like, self.keep,
                                                                       strict=True)]  # fmt: skip

    def grad(self):
        return self._sub(self.inner.grad())

    def along(self, d):
        return self.inner.along(self._full(d))

    def outputs(self, d):
        return self.inner.outputs(self._full(d))

    def blocks(self, d):
        (gtg, ghg, sq), owner = self.inner.blocks(self._full(d))
        kept = sorted({b for b, k in zip(owner, self.keep, strict=True) if k})
        index = {b: i for i, b in enumerate(kept)}
        pick = jnp.asarray(kept)
        return (gtg[pick], ghg[pick], sq[pick]), [index[b] for b in self._sub(owner)]

    def diagonal(self):
        return self._sub(self.inner.diagonal())

    def decrease(self, step):
        return self.inner.decrease(self._full(step))


def floating(leaf) -> bool:
    """Whether CR moves a parameter leaf: an array or number of a floating dtype (int and
    bool arrays, and a model's functions, stay).

    Returns
    -------
    bool

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> floating(jnp.zeros(3)), floating(jnp.zeros(3, int)), floating(jax.nn.relu)
    (True, False, False)
    """
    if isinstance(leaf, float):
        return True
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jnp.floating)


def _trainable(leaves: Sequence) -> list:
    """The leaves CR moves (:func:`floating`)."""
    return [p for p in leaves if floating(p)]


def _zero(leaf):
    """A zero update of a leaf CR does not move (a non-array, such as a function, as it is)."""
    return jnp.zeros(jnp.shape(leaf), leaf.dtype) if hasattr(leaf, "dtype") else leaf


def _is_masked(x) -> bool:
    return isinstance(x, optax.MaskedNode)


class _ParamView:
    """The parameters as :func:`scale_by_cr` sees them: the floating leaves of ``params``
    (in ``jax.tree_util`` order) are the variables; int and bool leaves are constants, and
    so are the leaves ``optax.masked`` hid (``MaskedNode``), taken from ``full``.

    ``select(leaves)``: the variables' entries of a list aligned with ``params``' leaves;
    ``insert(sub)``: the inverse (constants from ``params``, or zeros);
    ``tree(sub)``: the full parameter tree ``value_fn`` takes.
    """

    def __init__(self, params: Any, full: Any = None) -> None:
        self.params = params
        self.leaves, self.treedef = jax.tree_util.tree_flatten(params)
        self.keep = [floating(p) for p in self.leaves]
        self.masked = any(map(_is_masked, jax.tree_util.tree_leaves(params, is_leaf=_is_masked)))
        if self.masked and full is None:
            raise ValueError(
                "under optax.masked, scale_by_cr sees only the masked-in parameters but "
                "value_fn takes them all: pass full_params=params to update()"
            )
        self.full = full

    def select(self, leaves: Sequence, what: str = "a tree") -> list:
        if len(leaves) != len(self.leaves):
            raise ValueError(
                f"{what} has {len(leaves)} leaves, params {len(self.leaves)}: they must "
                "have the structure of params"
            )
        return [x for x, k in zip(leaves, self.keep, strict=True) if k]

    def select_tree(self, tree: Any, what: str) -> list:
        """:meth:`select` of a tree like ``params``, or like the full parameters under
        ``optax.masked``."""
        structure: Any = jax.tree_util.tree_structure(tree)
        if self.masked and structure != self.treedef:
            tree = jax.tree_util.tree_map(lambda m, x: m if _is_masked(m) else x,
                                          self.params, tree, is_leaf=_is_masked)  # fmt: skip
        return self.select(jax.tree_util.tree_leaves(tree), what)

    def insert(self, sub: Sequence, zeros: bool = False) -> list:
        it = iter(sub)
        return [
            next(it) if k else (_zero(p) if zeros else p)
            for p, k in zip(self.leaves, self.keep, strict=True)
        ]

    def masked_in(self) -> tuple[list[bool], list]:
        """Under ``optax.masked``: the floating leaves of the full parameters, and which
        of them are this transformation's variables (the masked-in ones)."""
        flags = jax.tree_util.tree_map(
            lambda m, f: jax.tree_util.tree_map(lambda _: not _is_masked(m), f),
            self.params, self.full, is_leaf=_is_masked,
        )  # fmt: skip
        full = jax.tree_util.tree_leaves(self.full)
        kept = jax.tree_util.tree_leaves(flags)
        if len(kept) != len(full):
            raise ValueError("full_params must have the structure of the parameters")
        pairs = [(k, a) for k, a in zip(kept, full, strict=True) if floating(a)]
        return [k for k, _ in pairs], [a for _, a in pairs]

    def tree(self, sub: Sequence) -> Any:
        tree = jax.tree_util.tree_unflatten(self.treedef, self.insert(sub))
        if self.masked:
            tree = jax.tree_util.tree_map(lambda m, f: f if _is_masked(m) else m,
                                          tree, self.full, is_leaf=_is_masked)  # fmt: skip
        return tree


def _value_fn_kwargs(value_fn: Callable, extra: dict) -> dict:
    """The extra arguments of ``update`` that ``value_fn`` takes, by name (as optax's line
    searches pass them: ``value_fn(params, **those)``; the others are for other members of
    the chain)."""
    if not extra:
        return {}
    try:
        parameters = inspect.signature(value_fn).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(extra)
    return {k: v for k, v in extra.items() if k in parameters}


def _curvature(value_fn, view: _ParamView, direction: str, has_aux: bool, kwargs: dict,
               grad=None, value=None, output_fn=None) -> Curvature:  # fmt: skip
    """The generated kernels for a :class:`NetworkObjective` (``direction="sgd"``: the
    low-rank route), else JAX autodiff of ``value_fn`` over the variables of ``view``
    (``output_fn``: ``params -> outputs``, for rules that read ``J d``)."""
    if isinstance(value_fn, NetworkObjective) and not (kwargs or has_aux):
        if view.masked:  # the kernels see every parameter, the direction only the kept
            keep, leaves = view.masked_in()
            sgd = False  # the direction is not -grad F of all parameters
        else:
            leaves = view.select(view.leaves)
            keep, sgd = None, direction == "sgd"
        params, ev = value_fn.sweeps(leaves)
        curv: Curvature = KernelCurvature(value_fn.layers, params, ev, sgd=sgd)
        if value_fn.leaf_of is not None or any(
            p.shape != q.shape for p, q in zip(params, leaves, strict=True)
        ):
            curv = _Reshaped(curv, value_fn, leaves)
        return curv if keep is None else _Embedded(curv, keep, leaves)

    def objective(sub):
        out = value_fn(view.tree(sub), **kwargs)
        return out[0] if has_aux else out

    outputs = None if output_fn is None else (lambda sub: output_fn(view.tree(sub)))
    sub = view.select(view.leaves)
    grads = None if grad is None else view.select_tree(grad, "grad")
    return AutodiffCurvature(objective, sub, grad=grads, value=value, output_fn=outputs)


#: Parameters above which per-variable CR on the ``jvp(grad)`` path warns of its cost.
PER_VARIABLE_LIMIT = 10_000


def _warn_per_variable(n: int) -> None:
    """Per-variable CR by autodiff takes one Hessian-vector product per parameter."""
    if n > PER_VARIABLE_LIMIT:
        warnings.warn(
            f"per-variable CR on the jvp(grad) path costs one Hessian-vector product per "
            f"parameter: {n} products (each about a gradient) per step; a NetworkObjective "
            "or numeric.adapters.objective takes the factored sweep instead",
            stacklevel=3,
        )


#: The sign conventions of the updates :func:`scale_by_cr` reads (its ``updates=``).
CONVENTIONS = ("gradient", "descent")


class ConventionError(ValueError):
    """The updates reaching :func:`scale_by_cr` are in the other sign convention."""


def _convention_message(convention: str) -> str:
    if convention == "gradient":
        return (
            "scale_by_cr got updates that point downhill (<updates, grad F> < 0): they are "
            "already a descent step (optax.sgd, optax.adam, scale_by_learning_rate negate "
            "the gradient), so d = -updates goes uphill and every step would be "
            "non-descent. Put scale_by_cr right after a scale_by_* base, e.g. "
            "optax.chain(optax.scale_by_adam(), scale_by_cr(sigma)), or say "
            "scale_by_cr(sigma, updates='descent') after optax.sgd(lr)"
        )
    return (
        "scale_by_cr(updates='descent') got updates that point uphill "
        "(<updates, grad F> > 0): they are gradient-like (a scale_by_* base or the raw "
        "gradient): use updates='gradient' (the default)"
    )


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_first_step(count, dgrad, flag, convention: str):
    """Whether this is the first step and it is flagged non-descent with
    ``d^T grad F > 0`` (the updates are in the other convention): raises :class:`ConventionError` when the values are concrete,
    else returns the flag (and prints a warning from the device when it is set)."""
    uphill = (count == 0) & (dgrad > 0) & (flag == FLAGS.index("nondescent"))
    if not (_is_traced(count) or _is_traced(dgrad)):
        if bool(uphill):
            raise ConventionError(_convention_message(convention))
        return jnp.asarray(uphill)

    def warn():
        jax.debug.callback(lambda: warnings.warn(_convention_message(convention), stacklevel=1))

    jax.lax.cond(uphill, warn, lambda: None)
    return uphill


def check_convention(opt_state) -> None:
    """Raise :class:`ConventionError` when a :func:`scale_by_cr` inside ``opt_state`` (a
    chain's nested state) recorded updates in the wrong sign convention under
    ``jax.jit`` (its ``convention_error``); call it outside ``jit`` after a step.

    Returns
    -------
    None
        When no such error was recorded.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, optax
    >>> loss = lambda p: jnp.sum((p - 1.0) ** 2)
    >>> params = jnp.zeros(2)
    >>> tx = optax.chain(optax.sgd(0.1), scale_by_cr(10.0))  # sgd negates: wrong here
    >>> step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p, value_fn=loss))
    >>> _, state = step(params, tx.init(params))
    >>> check_convention(state)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    numeric.optax.ConventionError: the first step's direction pointed uphill ...
    """
    for state in _find_cr_states(opt_state):
        if state.convention_error is not None and bool(state.convention_error):
            raise ConventionError(
                "the first step's direction pointed uphill (d^T grad F > 0): the updates "
                "reaching scale_by_cr are in the other sign convention than its updates= "
                f"says. {_convention_message('gradient')}"
            )


def _conform(out: Outcome, like: Outcome) -> Outcome:
    """``out`` with the dtypes and shapes of ``like`` (both branches of ``lax.cond``)."""
    return jax.tree_util.tree_map(
        lambda b, a: jnp.broadcast_to(jnp.asarray(a, b.dtype), b.shape), like, out
    )


def scale_by_cr(
    sigma: float,
    *,
    nondescent: str = "base",
    fallback: float = 0.0,
    averaging: str = "model",
    direction: str = "any",
    variant: str = "paper",
    every: int | None = None,
    arc: ARC | None = None,
    metric: str = "rms",
    updates: str = "gradient",
    has_aux: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """Scale the base transformation's direction by the CR step length (Eq 37).

    A thin adapter over the rules of :mod:`numeric.rules` (the same objects
    :class:`numeric.cr.CR` uses), reading the curvature from the generated kernels when
    ``value_fn`` is a :class:`NetworkObjective` and from ``jax.jvp(jax.grad(value_fn))``
    otherwise.

    Parameters
    ----------
    sigma : float
        Cubic weight ``sigma > 0`` (adaptive: its initial value).
    nondescent : {"base", "skip"}
        Step for a direction with ``d^T grad F >= 0``: ``fallback`` or none.
    fallback : float
        Step length of flagged steps (non-descent with ``"base"``, non-finite), finite
        and ``>= 0``; the base method's own learning rate is the natural choice.
    averaging : {"model"}
        One cubic model for the batch (Section 3.1's choice).  The per-sample options
        of :class:`numeric.cr.CR` need per-sample directions, which an optax chain does
        not have.
    direction : {"any", "sgd"}
        ``"sgd"``: the incoming updates are the mini-batch gradient itself (no base
        transformation), so the fast path reuses the adjoint sweep: per layer the
        per-sample factors (L1-L4) or the formed gradient, whichever is cheaper for the
        batch (:mod:`numeric.cost_model`), instead of a tangent sweep along ``d``.
    variant : {"paper", "adaptive", "scale-invariant", "per-layer", "per-variable"}
        As :class:`numeric.cr.CR`.  For any model, ``"per-layer"`` takes each leaf of the
        parameters as a block (one Hessian-vector product per leaf) and
        ``"per-variable"`` needs one Hessian-vector product per parameter (small models;
        a :class:`NetworkObjective` uses the factored sweep C42-C44).  ``"adaptive"``
        evaluates ``value_fn`` at the trial point (and at ``params`` unless ``value=``
        is passed).
    every : int, optional
        Compute the step length every ``every`` steps and reuse it in between (``None``:
        every step; it shapes the step, so name it in ``inject_hyperparams``'s
        ``static_args``).
    arc : numeric.rules.ARC, optional
        Parameters of the adaptive rule.
    metric : {"rms", "identity"}
        Scale-invariant CR's metric.  A chain hides its base's state, so ``"rms"``
        keeps the gradient's running RMS (``beta2 = 0.999``, ``eps = 1e-8``): Adam's
        preconditioner metric, for Adam- and RMSProp-like bases; ``"identity"`` for
        SGD (the paper's CR).  :class:`numeric.cr.CR` reads its base optimizer's own.
    updates : {"gradient", "descent"}
        The sign convention of the incoming updates.  ``"gradient"`` (optax's
        ``scale_by_*`` outputs, or the raw gradient): ``d = -updates``, so CR goes
        right after the base and carries the learning rate itself::

            optax.chain(optax.scale_by_adam(), scale_by_cr(sigma))   # right

        ``"descent"`` (a step already negated and scaled by ``optax.sgd(lr)``,
        ``optax.adam(lr)`` or ``scale_by_learning_rate``): ``d = updates``::

            optax.chain(optax.sgd(lr), scale_by_cr(sigma, updates="descent"))  # right
            optax.chain(optax.sgd(lr), scale_by_cr(sigma))  # wrong: raises, see below

        The applied step ``alpha d`` does not depend on the length of ``d`` (Eq 37 is
        invariant to ``d -> c d``, ``c > 0``: ``alpha`` becomes ``alpha / c``), so
        ``sigma`` keeps its meaning, the weight of ``||step||^3`` in parameter units,
        and ``lr`` only rescales the logged ``alpha``; ``fallback`` multiplies ``d``,
        so with ``"descent"``, ``fallback=1.0`` takes the base's own step on flagged
        steps.  A wrong convention shows on the first step as ``d^T grad F > 0``
        (every step would be non-descent: no step, or uphill): with concrete values it
        raises ``ValueError`` at once; under ``jax.jit`` the state's
        ``convention_error`` is set and a warning is printed
        (:func:`check_convention` raises on it).

    has_aux : bool
        ``value_fn`` returns ``(loss, aux)`` (as ``jax.value_and_grad(has_aux=True)``
        takes it); ``aux`` is dropped.

    ``sigma`` and ``fallback`` may be traced (``optax.inject_hyperparams(scale_by_cr)
    (sigma=...)`` under ``jax.jit``): their checks then wait for concrete values (adaptive
    CR: the injected ``sigma`` is the initial one, then the state's).  Only
    the floating leaves of ``params`` move: int and bool leaves get a zero update and are
    not part of ``d``.  Under ``optax.masked(scale_by_cr(...), mask)`` the masked-out
    leaves are constants of ``F`` and keep their updates; pass ``full_params=params``
    to ``update`` (``value_fn`` takes all parameters).  Other keyword arguments of
    ``update`` go to ``value_fn`` when it takes them by name, as optax's line searches
    do (``value_fn(params, x=..., y=...)``).

    Returns
    -------
    optax.GradientTransformationExtraArgs
        ``update(updates, state, params, *, value_fn, grad=None, value=None,
        full_params=None, **value_fn_args)`` returns
        ``alpha * d`` (``d = -updates``, or ``updates`` with ``updates="descent"``) and
        a :class:`ScaleByCRState`.  The update is
        always finite: a step whose direction is not finite is zero, a flagged step is
        ``fallback * d``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, optax
    >>> loss = lambda p: jnp.sum((p["w"] - 1.0) ** 2)
    >>> params = {"w": jnp.zeros(2)}
    >>> tx = optax.chain(optax.sgd(0.1), scale_by_cr(1e-3, updates="descent"))
    >>> state = tx.init(params)
    >>> updates, state = tx.update(jax.grad(loss)(params), state, params, value_fn=loss)
    >>> params = optax.apply_updates(params, updates)
    >>> [round(float(v), 3) for v in params["w"]], int(state[1].flag)  # ~ the Newton step
    ([1.0, 1.0], 0)
    >>> round(float(state[1].alpha), 3)  # the length along d = -0.1 grad F
    4.998
    """
    if averaging != "model" and averaging in AVERAGING:
        raise ValueError(
            f"averaging={averaging!r} needs per-sample directions; an optax chain has one "
            "direction for the batch: use averaging='model'"
        )
    if every is None:
        every = 1
    elif concrete(every) is None:
        raise ValueError("every shapes the step and cannot be traced: name it in "
                         "optax.inject_hyperparams(scale_by_cr, static_args=('every',))")  # fmt: skip
    rule = make_rule(sigma, variant=variant, every=every, averaging=averaging,
                     nondescent=nondescent, arc=arc, sgd=False)  # fmt: skip
    fallback = check_fallback(fallback)
    if direction not in ("any", "sgd"):
        raise ValueError(f"direction must be 'any' or 'sgd', got {direction!r}")
    if metric not in ("rms", "identity"):
        raise ValueError(f"metric must be 'rms' or 'identity', got {metric!r}")
    if updates not in CONVENTIONS:
        raise ValueError(f"updates must be one of {CONVENTIONS}, got {updates!r}")
    if direction == "sgd" and updates == "descent":
        raise ValueError("direction='sgd' says the updates are the gradient itself: "
                         "use updates='gradient'")  # fmt: skip
    convention = updates
    sign = -1.0 if convention == "gradient" else 1.0
    rms = rule.reads_metric and metric == "rms"

    def init_fn(params):
        ftype = jnp.result_type(float)
        zero = jnp.zeros((), dtype=ftype)
        leaves = _trainable(jax.tree_util.tree_leaves(params))
        rule_state = jax.tree_util.tree_map(
            lambda a: jnp.asarray(a, ftype if isinstance(a, float) else None),
            rule.init(leaves),
        )
        extra = {}
        if rms:
            extra["rms"] = [jnp.zeros_like(p) for p in leaves]
            extra["rms_count"] = jnp.zeros((), jnp.int32)
        return ScaleByCRState(jnp.zeros((), jnp.int32), zero, zero, zero, zero, zero,
                              jnp.zeros((), jnp.int32), rule_state,
                              convention_error=jnp.zeros((), bool), **extra)  # fmt: skip

    def update_fn(updates, state, params=None, *, value_fn=None, grad=None, value=None,
                  full_params=None, output_fn=None, **extra):  # fmt: skip
        if params is None or value_fn is None:
            raise ValueError("scale_by_cr needs params and value_fn=(params -> loss)")
        view = _ParamView(params, full_params)
        kwargs = _value_fn_kwargs(value_fn, extra)
        u_leaves, tree = jax.tree_util.tree_flatten(updates)
        d = [sign * u for u in view.select(u_leaves, "updates")]
        ftype = state.alpha.dtype
        curv = _curvature(value_fn, view, direction, has_aux, kwargs, grad, value, output_fn)
        if rule.name == "per-variable" and isinstance(curv, AutodiffCurvature):
            _warn_per_variable(sum(int(np.size(x)) for x in d))
        new = {}
        met = None
        if rms:
            new["rms"] = moments = rms_update(list(state.rms), curv.grad())
            new["rms_count"] = state.rms_count + 1
            met = rms_metric(moments, new["rms_count"])
        if isinstance(rule, Every):  # compute or reuse, decided on the device
            zero = jnp.zeros((), ftype)
            like = Outcome([jnp.zeros_like(x) for x in d], state.rule.alpha,
                           StepStats(zero, zero, zero, zero, zero, jnp.zeros((), jnp.int32)),
                           state.rule, jnp.zeros((), bool))  # fmt: skip
            out = jax.lax.cond(
                state.rule.age == 0,
                lambda: _conform(rule.apply(curv, d, fallback, state.rule, met), like),
                lambda: _conform(rule.reuse(curv, d, state.rule), like),
            )
        else:
            out = rule.apply(curv, d, fallback, state.rule, met)
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in d]))
        step = [
            jnp.where(finite, u, 0.0).astype(x.dtype) for u, x in zip(out.update, d, strict=True)
        ]
        stats = out.stats
        uphill = _check_first_step(state.count, stats.dgrad, stats.flag, convention)
        info = state._replace(
            count=state.count + 1,
            alpha=jnp.asarray(stats.alpha, ftype),
            lr_eff=jnp.asarray(jnp.where(finite, stats.lr_eff, 0.0), ftype),
            dgrad=jnp.asarray(stats.dgrad, ftype),
            dhd=jnp.asarray(stats.dhd, ftype),
            dnorm=jnp.asarray(stats.dnorm, ftype),
            flag=jnp.asarray(stats.flag, jnp.int32),
            rule=jax.tree_util.tree_map(
                lambda a, b: jnp.asarray(a, jnp.asarray(b).dtype), out.state, state.rule
            ),
            convention_error=state.convention_error | uphill,
            **new,
        )
        return jax.tree_util.tree_unflatten(tree, view.insert(step, zeros=True)), info

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _find_cr_states(state) -> list[ScaleByCRState]:
    """Every :class:`ScaleByCRState` inside an optax state (chains, wrappers)."""
    found = jax.tree_util.tree_leaves(state, is_leaf=lambda s: isinstance(s, ScaleByCRState))
    return [s for s in found if isinstance(s, ScaleByCRState)]


def find_cr_state(state) -> ScaleByCRState | None:
    """The first :class:`ScaleByCRState` inside an optax state (a chain's tuple), or ``None``."""
    if isinstance(state, ScaleByCRState):
        return state
    if isinstance(state, tuple | list):
        for s in state:
            found = find_cr_state(s)
            if found is not None:
                return found
    return None
