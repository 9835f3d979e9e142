"""The configuration of a training run: :class:`TrainConfig`, the paper's defaults, and
how a run directory's ``config.json`` is read back (:func:`load_config`) and compared
(:func:`config_key`)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from numeric.architectures import model_arch
from numeric.cr import VARIANTS
from numeric.layers import get_activation
from numeric.network import init_bound
from numeric.optimizers import OPTAX_OPTIMIZERS, OPTIMIZERS
from numeric.training.rundir import RunDirError, read_json

__all__ = [
    "DEFAULT_LR",
    "DEFAULT_SIGMA",
    "OPTAX_LR",
    "PLATEAU_SGD_LR",
    "TrainConfig",
    "config_key",
    "default_lr",
    "load_config",
]

#: The paper's initial learning rates per optimizer (Figures 1, 4, 5; Adam: TF default).
DEFAULT_LR = {"sgd": 0.01, "adagrad": 0.1, "adadelta": 1.0, "adam": 0.001}
#: optax's learning-rate-free methods take their own defaults (1.0 for most of them)
OPTAX_LR = {"schedule_free_adamw": 0.0025, "sophia": 0.001}
#: SGD's initial rate from the plateau start (Figure 2, the plateau experiment).
PLATEAU_SGD_LR = 0.02
#: The paper's sigma per optimizer (100 for SGD, 1000 for the adaptive ones).
DEFAULT_SIGMA = {"sgd": 100.0, "adagrad": 1000.0, "adadelta": 1000.0, "adam": 1000.0}


def default_lr(optimizer: str, init: str | float = "plateau") -> float:
    """The paper's initial learning rate for ``optimizer`` from the start ``init``.

    SGD from the plateau start uses Figure 2's 0.02 (the plateau experiment), SGD from
    any other start Figure 1's 0.01; the adaptive optimizers use :data:`DEFAULT_LR`
    (Figures 4 and 5 start on the plateau with those rates).
    """
    optimizer = str(optimizer).lower()
    if optimizer == "sgd" and isinstance(init, str) and init.strip().lower() == "plateau":
        return PLATEAU_SGD_LR
    if optimizer in OPTAX_OPTIMIZERS:
        return OPTAX_LR.get(optimizer, 1.0)
    return DEFAULT_LR[optimizer]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run (saved as ``config.json``).

    Attributes
    ----------
    dataset : str
        ``"mnist-embedded"`` (default), ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"``
        (see :func:`numeric.data.load_dataset`; each name is that dataset, never another).
    data_dir : str or None
        Directory with the dataset's files (None: the dataset's standard location).
    hidden : tuple of int
        Hidden widths; the paper's networks are ``(128,) * 12`` (12 layers of 128).
    activation : str
        Hidden activation, a name of :func:`numeric.layers.activation_names`:
        ``"relu"`` (the paper's, default), ``"tanh"``, ``"sigmoid"``, ``"softplus"``.
        CR's ``d^T H d`` then includes the B.3 term of the activation's ``A''``.
    init : str or float
        ``"plateau"`` (uniform in +-0.1), ``"normal"`` (+-0.2) or a bound.
    seed : int
        Seed of the initial weights and of the batch order.
    batch_size : int
        Mini-batch size (the paper: 32).
    optimizer : str
        ``"sgd"``, ``"adagrad"``, ``"adadelta"`` or ``"adam"`` (TF1 defaults).
    lr : float or None
        Initial learning rate; None: :func:`default_lr` (the paper's rate for the
        optimizer and start: SGD 0.02 from the plateau start as in Figure 2, else
        :data:`DEFAULT_LR`).
    decay : bool
        Exponential decay ``lr * decay_rate ** (step / decay_steps)`` (TF1
        ``exponential_decay``, not staircase).  Under CR it only affects flagged steps.
    decay_rate, decay_steps : float
        0.95 per 100 iterations (Appendix A).
    cr : bool
        Wrap the optimizer with cubic regularization (:class:`numeric.cr.CR`).
    sigma : float or None
        CR's cubic weight; None: :data:`DEFAULT_SIGMA`.
    averaging : str
        ``"model"``, ``"mean-alpha"`` or ``"alpha-g"`` (:mod:`numeric.cr`).
    nondescent : str
        ``"base"`` or ``"skip"`` (:mod:`numeric.cr`).
    cr_variant : str
        CR's step-length rule (:mod:`numeric.rules`): ``"paper"`` (Eq 37, default),
        ``"adaptive"``, ``"scale-invariant"``, ``"per-layer"`` or ``"per-variable"``.
    cr_every : int
        Compute CR's step length every ``cr_every`` steps and reuse it in between.
    curvature : bool
        Record ``d^T H d`` for a base-optimizer run too.
    iterations : int
        Number of steps.
    checkpoint_every : int
        Steps between checkpoints.
    eval_every : int
        Steps between evaluations on the test split (and after the last step); 0: never.
    dtype : str
        ``"float64"`` (default) or ``"float32"``.
    model : str
        ``"mlp"`` (the paper's network, default), ``"cnn"`` or ``"rnn"``
        (:mod:`numeric.architectures`); ``hidden`` sizes the MLP only.
    bias : bool or None
        Biases on every layer; None: the model's default (none for the MLP, on for the
        CNN and the RNN).
    arch : dict
        Sizes of the CNN or RNN (:data:`numeric.architectures.DEFAULTS`; missing ones default).
    backend : str
        ``"numpy"`` (default) or ``"jax"``: the same kernels and drivers under
        ``jax.jit`` (:mod:`numeric.jax_backend`), on the CPU or a GPU.
    devices : int
        JAX backend: split each batch over this many local devices (0: all of them).
        Results do not depend on it beyond rounding.
    """

    dataset: str = "mnist-embedded"
    data_dir: str | None = None
    hidden: tuple[int, ...] = (128,) * 12
    activation: str = "relu"
    init: str | float = "plateau"
    seed: int = 0
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float | None = None
    decay: bool = True
    decay_rate: float = 0.95
    decay_steps: float = 100.0
    cr: bool = False
    sigma: float | None = None
    averaging: str = "model"
    nondescent: str = "base"
    cr_variant: str = "paper"
    cr_every: int = 1
    curvature: bool = False
    iterations: int = 3000
    checkpoint_every: int = 500
    eval_every: int = 500
    dtype: str = "float64"
    model: str = "mlp"
    bias: bool | None = None
    arch: dict = field(default_factory=dict)
    backend: str = "numpy"
    devices: int = 0

    def __post_init__(self) -> None:
        if self.data_dir is not None:  # recorded absolute: a resume elsewhere reads the same
            object.__setattr__(self, "data_dir", os.path.abspath(os.path.expanduser(self.data_dir)))
        object.__setattr__(self, "model", str(self.model).lower())
        object.__setattr__(self, "arch", model_arch(self.model, self.arch))
        object.__setattr__(self, "bias", (self.model != "mlp") if self.bias is None else self.bias)
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "optimizer", str(self.optimizer).lower())
        object.__setattr__(self, "backend", str(self.backend).lower())
        if self.backend not in ("numpy", "jax"):
            raise ValueError(f"backend must be 'numpy' or 'jax', got {self.backend!r}")
        if self.optimizer in OPTAX_OPTIMIZERS:
            if self.backend != "jax":
                raise ValueError(
                    f"{self.optimizer} is optax's: it runs on the JAX backend (--backend jax)"
                )
            if self.cr or self.curvature:
                raise ValueError(
                    f"CR and --curvature wrap this project's optimizers, not {self.optimizer}"
                )
        elif self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; choose from "
                f"{sorted(OPTIMIZERS)} or, with the JAX backend, {list(OPTAX_OPTIMIZERS)}"
            )
        if isinstance(self.devices, bool) or int(self.devices) != self.devices:
            raise ValueError(f"devices must be an integer, got {self.devices!r}")
        object.__setattr__(self, "devices", int(self.devices))
        if self.devices < 0 or (self.devices > 1 and self.backend != "jax"):
            raise ValueError("devices must be >= 0, and more than 1 needs the JAX backend")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden widths must be positive, got {self.hidden}")
        object.__setattr__(self, "activation", str(self.activation).lower())
        get_activation(self.activation)
        init_bound(self.init)
        if self.cr_variant not in VARIANTS:
            raise ValueError(f"cr_variant must be one of {VARIANTS}, got {self.cr_variant!r}")
        for name in (
            "seed", "batch_size", "iterations", "checkpoint_every", "eval_every", "cr_every",
        ):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value:
                raise ValueError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.seed < 0 or self.batch_size < 1 or self.iterations < 1:
            raise ValueError("seed must be >= 0, batch_size >= 1 and iterations >= 1")
        if self.cr_every < 1:
            raise ValueError(f"cr_every must be >= 1, got {self.cr_every}")
        if (self.cr_variant != "paper" or self.cr_every != 1) and not self.cr:
            raise ValueError("cr_variant and cr_every choose CR's step length; they need cr")
        if self.averaging != "model" and (self.cr_variant != "paper" or self.cr_every != 1):
            raise ValueError(
                f"averaging={self.averaging!r} is defined for the paper's CR only "
                "(cr_variant='paper', cr_every=1)"
            )
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")
        if self.eval_every < 0:
            raise ValueError("eval_every must be >= 0 (0: no evaluation)")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr >= 0):
            raise ValueError(f"lr must be finite and >= 0, got {self.lr!r}")
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be positive, got {self.sigma!r}")
        if self.averaging != "model" and (self.model != "mlp" or self.bias):
            raise ValueError(
                f"averaging={self.averaging!r} needs per-sample curvature, implemented for the "
                "bias-free mlp only; use averaging='model'"
            )

    def resolved(self) -> TrainConfig:
        """A copy with ``lr`` and ``sigma`` filled in from the paper's defaults."""
        lr = default_lr(self.optimizer, self.init) if self.lr is None else float(self.lr)
        sigma = DEFAULT_SIGMA.get(self.optimizer, 0.0) if self.sigma is None else float(self.sigma)
        return replace(self, lr=lr, sigma=sigma or None)

    def label(self) -> str:
        """Short human-readable name, e.g. ``"SGD with CR"`` or ``"SGD with CR (tanh)"``."""
        names = {"sgd": "SGD", "adagrad": "Adagrad", "adadelta": "Adadelta", "adam": "Adam"}
        base = names.get(self.optimizer, self.optimizer)
        if self.cr:
            extra = "" if self.averaging == "model" else f", {self.averaging}"
            extra += "" if self.cr_variant == "paper" else f", {self.cr_variant}"
            extra += "" if self.cr_every == 1 else f", every {self.cr_every}"
            base = f"{base} with CR{extra}"
        if self.model != "mlp":
            base = f"{base}, {self.model}"
        return base if self.activation == "relu" else f"{base} ({self.activation})"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_json` (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}")
        return cls(**data)


def load_config(run_dir: str | os.PathLike[str]) -> TrainConfig:
    """The :class:`TrainConfig` of a run directory.

    Raises
    ------
    FileNotFoundError
        No ``config.json``.
    RunDirError
        ``config.json`` is unreadable, not JSON, or not a run configuration (the message
        names the file).
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a run directory (no config.json)")
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise RunDirError(f"{path}: not a run configuration (no 'config' object)")
    try:
        return TrainConfig.from_json(record["config"])
    except (TypeError, ValueError) as exc:
        raise RunDirError(f"{path}: invalid configuration ({exc})") from exc


def config_key(config: TrainConfig) -> str:
    """Identity of a run's trajectory: the resolved config without its length.

    Two configs with equal keys produce the same iterates; only ``iterations``,
    ``checkpoint_every``, ``eval_every`` and ``devices`` (data parallelism changes results
    by rounding only) may differ between a run and its resumption.  The default ``activation="relu"`` is left out, so the key of a ReLU run
    equals the one stored in checkpoints written before configs had an activation (they
    still resume).
    """
    d = config.resolved().to_json()
    for name in ("iterations", "checkpoint_every", "eval_every", "devices"):
        d.pop(name)
    if d["backend"] == "numpy":  # keys as before backends
        d.pop("backend")
    if d["activation"] == "relu":
        d.pop("activation")
    if d["cr_variant"] == "paper" and d["cr_every"] == 1:  # the paper's CR: keys as before
        d.pop("cr_variant")
        d.pop("cr_every")
    if d["model"] == "mlp" and not d["bias"]:  # the paper's network: keys as before
        for key in ("model", "bias", "arch"):
            d.pop(key)
    return json.dumps(d, sort_keys=True)
