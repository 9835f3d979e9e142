"""The optimization method a training config names: :func:`build_method`."""

from __future__ import annotations

from numeric.cr import CR, Baseline, Method
from numeric.optimizers import OPTAX_OPTIMIZERS, get_optimizer
from numeric.schedules import Constant, ExponentialDecay
from numeric.training.config import TrainConfig

__all__ = ["build_method"]


def build_method(config: TrainConfig) -> Method:
    """The :class:`~numeric.cr.Baseline` or :class:`~numeric.cr.CR` method of a config
    (or an optax method, :class:`numeric.optax.OptaxMethod`, on the JAX backend)."""
    cfg = config.resolved()
    if cfg.optimizer in OPTAX_OPTIMIZERS:
        from numeric import optax as nopt

        return nopt.baseline(cfg.optimizer, cfg.lr)
    opt = get_optimizer(cfg.optimizer)
    schedule = (
        ExponentialDecay(cfg.lr, cfg.decay_steps, cfg.decay_rate) if cfg.decay else Constant(cfg.lr)
    )
    if cfg.cr:
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
