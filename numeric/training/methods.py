"""The optimization method a training config names: :func:`build_method`."""

from __future__ import annotations

from typing import cast

from numeric.cr import CR, Baseline, Method
from numeric.optimizers import OPTAX_OPTIMIZERS, get_optimizer
from numeric.schedules import Constant, ExponentialDecay
from numeric.training.config import TrainConfig

__all__ = ["build_method"]


def build_method(config: TrainConfig) -> Method:
    """The :class:`~numeric.cr.Baseline` or :class:`~numeric.cr.CR` method of a config
    (or an optax method, :class:`numeric.optax_methods.OptaxMethod`, on the JAX backend)."""
    cfg = config.resolved()
    if cfg.optimizer in OPTAX_OPTIMIZERS:
        from numeric import jax_backend as jb
        from numeric import optax_methods

        if cfg.dtype == "float64":  # before any state is made: optax makes it in JAX's dtype
            jb.enable_x64()

        # duck-typed: an OptaxMethod has Method's init, step and eval interface
        return cast(Method, optax_methods.baseline(cfg.optimizer, cfg.lr))
    lr = cfg.lr
    assert lr is not None, "resolved() fills in the learning rate"
    opt = get_optimizer(cfg.optimizer)
    schedule = ExponentialDecay(lr, cfg.decay_steps, cfg.decay_rate) if cfg.decay else Constant(lr)
    if cfg.cr:
        assert cfg.sigma is not None, "resolved() fills in sigma for this project's optimizers"
        return CR(
            opt,
            cfg.sigma,
            averaging=cfg.averaging,
            nondescent=cfg.nondescent,
            lr=schedule,
            variant=cfg.cr_variant,
            every=cfg.cr_every,
        )
    return Baseline(opt, schedule, curvature=cfg.curvature)
