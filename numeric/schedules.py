"""Learning-rate schedules as plain callables ``schedule(step) -> float``.

The paper trains with TensorFlow 1.x's ``tf.train.exponential_decay`` using
``decay_steps=100`` and ``decay_rate=0.95``; those are the defaults here.

Only NumPy-free standard-library arithmetic is used; all values are Python floats
(IEEE double precision), so a schedule's output can be fed straight to
:meth:`numeric.optimizers.Optimizer.direction` without changing the parameters' dtype.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = [
    "Constant",
    "ExponentialDecay",
    "exponential_decay",
]


def _check_step(global_step: float) -> float:
    """Validate a step counter and return it as a float."""
    if isinstance(global_step, bool) or not isinstance(global_step, numbers.Real):
        raise ValueError(f"step must be a real number, got {global_step!r}")
    step = float(global_step)
    if not math.isfinite(step) or step < 0:
        raise ValueError(f"step must be finite and >= 0, got {global_step!r}")
    return step


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return v


def exponential_decay(
    lr0: float,
    global_step: float,
    decay_steps: float = 100,
    decay_rate: float = 0.95,
    staircase: bool = False,
) -> float:
    """Exponentially decayed learning rate, as TF1's ``tf.train.exponential_decay``.

    ``lr = lr0 * decay_rate ** (global_step / decay_steps)``; with ``staircase=True``
    the exponent is ``floor(global_step / decay_steps)`` (piecewise-constant decay).

    Parameters
    ----------
    lr0 : float
        Initial learning rate, ``>= 0``.
    global_step : int or float
        Number of updates done so far, ``>= 0``.
    decay_steps : float, default 100
        Steps per decay period, ``> 0``.
    decay_rate : float, default 0.95
        Multiplicative decay per period, ``> 0``.
    staircase : bool, default False
        Decay in discrete intervals instead of continuously.

    Returns
    -------
    float
        The learning rate at ``global_step``.

    Raises
    ------
    ValueError
        On a negative or non-finite ``lr0``/``global_step`` or a non-positive
        ``decay_steps``/``decay_rate``.
    """
    lr0 = _check_positive("lr0", lr0, allow_zero=True)
    step = _check_step(global_step)
    decay_steps = _check_positive("decay_steps", decay_steps)
    decay_rate = _check_positive("decay_rate", decay_rate)
    p = step / decay_steps
    if staircase:
        p = math.floor(p)
    return lr0 * decay_rate**p


@dataclass(frozen=True)
class ExponentialDecay:
    """Callable exponential-decay schedule; see :func:`exponential_decay`.

    Parameters
    ----------
    lr0 : float
        Initial learning rate, ``>= 0``.
    decay_steps : float, default 100
        Steps per decay period, ``> 0``.
    decay_rate : float, default 0.95
        Multiplicative decay per period, ``> 0``.
    staircase : bool, default False
        Use ``floor(step / decay_steps)`` as the exponent.

    Examples
    --------
    >>> sched = ExponentialDecay(0.1)
    >>> sched(0), round(sched(100), 12)
    (0.1, 0.095)
    """

    lr0: float
    decay_steps: float = 100
    decay_rate: float = 0.95
    staircase: bool = False

    def __post_init__(self) -> None:
        _check_positive("lr0", self.lr0, allow_zero=True)
        _check_positive("decay_steps", self.decay_steps)
        _check_positive("decay_rate", self.decay_rate)

    def __call__(self, step: float) -> float:
        """Learning rate after ``step`` updates (``step >= 0``)."""
        return exponential_decay(
            self.lr0, step, self.decay_steps, self.decay_rate, staircase=self.staircase
        )


@dataclass(frozen=True)
class Constant:
    """Constant learning rate ``schedule(step) = lr`` (``lr >= 0``)."""

    lr: float

    def __post_init__(self) -> None:
        _check_positive("lr", self.lr, allow_zero=True)

    def __call__(self, step: float) -> float:
        """Return ``lr`` for any valid ``step >= 0``."""
        _check_step(step)
        return float(self.lr)
