"""The methods of ``lowrank reproduce compare`` (:data:`METHODS`) and the constants its
runs and reports share (:mod:`numeric.compare` runs them, :mod:`numeric.compare_report`
renders them)."""

from __future__ import annotations

from dataclasses import dataclass

from numeric.tuning import geometric_grid

__all__ = ["CHANCE", "COST_BOUND", "LABELS", "LEFT_ACCURACY", "METHODS", "MODEL_BUILD", "Method"]

DATASETS = ("mnist-embedded", "fashion-mnist")
MODELS = ("mlp", "cnn", "mlp-6x256")
#: how each compared model is built: ``numeric.architectures.build``'s model and options
#: (``mlp-6x256``: a second MLP size, 6 hidden layers of 256, which has no plateau)
MODEL_BUILD: dict[str, tuple[str, dict | None]] = {
    "mlp": ("mlp", None),
    "cnn": ("cnn", None),
    "mlp-6x256": ("mlp", {"hidden": [256] * 6}),
}
STARTS = ("plateau", "normal")
THRESHOLDS = (2.0, 1.0)
PERIOD = 100  # moving-average period of the loss thresholds (as lowrank train)
#: a run "leaves the plateau" when its loss average falls below 2.0 and it ends with at
#: least this test accuracy (CR-SGD can fall below 2.0 and stay at 10 %)
LEFT_ACCURACY = 0.5
#: the goal's cost bound: a step at most this many SGD steps
COST_BOUND = 1.6
#: share of the training images held out as the validation split, and its seed
VALIDATION_FRACTION = 0.125
SPLIT_SEED = 0
#: the seed of the tuning runs
TUNE_SEED = 0
#: accuracy a diverged run counts as in the intervals (chance on 10 classes)
CHANCE = 0.1


@dataclass(frozen=True)
class Method:
    """One compared method.

    Attributes
    ----------
    name : str
    label : str
        For the tables.
    kind : {"numpy", "optax", "peer"}
    spec : dict
        ``numpy``: ``base``, ``lr`` and (for CR) ``sigma``, ``variant``, ``every``;
        ``optax``: ``name`` of :data:`numeric.optax_methods.BASELINES`; ``peer``: its name.
    group : str
        ``"sgd"`` / ``"adam"`` (tuned), ``"cr"`` (the paper's CR), ``"variant"`` (no
        learning rate to tune), ``"every"``, ``"optax"`` (default rate), ``"tuned"``
        (an optax method at a tuned rate), ``"peer"``, ``"cost"`` (the JAX SGD step).
    models : tuple of str
        Models the method runs on.
    grid : tuple of float
        Starting grid of the learning rate tuned on the validation split (empty: none).
    """

    name: str
    label: str
    kind: str
    spec: dict
    group: str
    models: tuple[str, ...] = MODELS
    grid: tuple[float, ...] = ()

    @property
    def backend(self) -> str:
        """``"numpy"`` or ``"jax"``: whose SGD step its cost is divided by."""
        return "numpy" if self.kind == "numpy" else "jax"


def _cr(name, label, base, sigma, lr=0.0, variant="paper", every=1, group="variant",
        models=None) -> Method:  # fmt: skip
    spec = {"base": base, "lr": lr, "sigma": sigma, "variant": variant, "every": every}
    if models is None:  # the reuse study on the MLP only (time)
        models = ("mlp",) if group == "every" else MODELS
    return Method(name, label, "numpy", spec, group, models)


#: optax methods also reported at a tuned rate, and the centre of their grids (defaults)
TUNED_OPTAX = {"schedule_free_sgd": 1.0, "schedule_free_adamw": 0.0025, "momo": 1.0}


def _methods() -> list[Method]:
    out = [
        Method(
            "sgd", "SGD", "numpy", {"base": "sgd"}, "sgd", grid=geometric_grid(10**-1.5, 1)
        ),  # fmt: skip
        Method(
            "adam", "Adam", "numpy", {"base": "adam"}, "adam", grid=geometric_grid(1e-3, 2)
        ),  # fmt: skip
        Method(
            "sgd-jax",
            "optax SGD (lr 0.01), the JAX cost reference",
            "jax-sgd",
            {"lr": 0.01},
            "cost",
        ),  # fmt: skip
    ]
    out += [
        _cr("cr-sgd", "CR-SGD, Eq 37 (sigma 100)", "sgd", 100.0, group="cr"),
        _cr("cr-adagrad", "CR-Adagrad (sigma 1000)", "adagrad", 1000.0, 0.1, group="cr"),
        _cr("cr-adadelta", "CR-Adadelta (sigma 1000)", "adadelta", 1000.0, 1.0, group="cr"),
        _cr("cr-adam", "CR-Adam (sigma 1000)", "adam", 1000.0, 1e-3, group="cr"),
        _cr("adaptive-sgd", "adaptive CR-SGD (sigma0 100)", "sgd", 100.0, variant="adaptive"),
        _cr(
            "adaptive-adam",
            "adaptive CR-Adam (sigma0 1000)",
            "adam",
            1000.0,
            1e-3,
            variant="adaptive",
        ),  # fmt: skip
        _cr(
            "si-adam",
            "scale-invariant CR-Adam (sigma 1e6)",
            "adam",
            1e6,
            1e-3,
            variant="scale-invariant",
        ),  # fmt: skip
        _cr("per-layer-sgd", "per-layer CR-SGD (sigma 100)", "sgd", 100.0, variant="per-layer"),
        _cr(
            "per-layer-adam",
            "per-layer CR-Adam (sigma 1000)",
            "adam",
            1000.0,
            1e-3,
            variant="per-layer",
        ),  # fmt: skip
        _cr(
            "per-variable-sgd",
            "per-variable CR-SGD (sigma 100)",
            "sgd",
            100.0,
            variant="per-variable",
            models=("mlp",),
        ),  # fmt: skip
        _cr(
            "per-variable-adam",
            "per-variable CR-Adam (sigma 1000)",
            "adam",
            1000.0,
            1e-3,
            variant="per-variable",
            models=("mlp",),
        ),  # fmt: skip
        _cr(
            "adaptive-adam-k4",
            "adaptive CR-Adam, every 4",
            "adam",
            1000.0,
            1e-3,
            variant="adaptive",
            every=4,
            group="every",
        ),  # fmt: skip
        _cr(
            "adaptive-adam-k16",
            "adaptive CR-Adam, every 16",
            "adam",
            1000.0,
            1e-3,
            variant="adaptive",
            every=16,
            group="every",
        ),  # fmt: skip
        _cr(
            "per-layer-sgd-k4",
            "per-layer CR-SGD, every 4",
            "sgd",
            100.0,
            variant="per-layer",
            every=4,
            group="every",
        ),  # fmt: skip
        _cr(
            "per-variable-sgd-k8",
            "per-variable CR-SGD, every 8",
            "sgd",
            100.0,
            variant="per-variable",
            every=8,
            group="every",
            models=("mlp",),
        ),  # fmt: skip
    ]
    for name in ("prodigy", "dadapt_adamw", "dog", "schedule_free_adamw", "schedule_free_sgd",
                 "momo", "linesearch", "sophia"):  # fmt: skip
        out.append(Method(name, f"optax {name}", "optax", {"name": name}, "optax"))
    for name, default in TUNED_OPTAX.items():
        out.append(Method(f"{name}-tuned", f"optax {name}, tuned", "optax", {"name": name},
                          "tuned", grid=geometric_grid(default, 1)))  # fmt: skip
    out.append(Method("kfac", "kfac-jax (adaptive lr, momentum)", "peer", {"name": "kfac"},
                      "peer", ("mlp",)))  # fmt: skip
    return out


#: every compared method, in table order
METHODS: list[Method] = _methods()
LABELS = {m.name: m.label for m in METHODS}
