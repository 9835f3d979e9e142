"""JAX, imported late: availability, device choice and the numeric settings of a run.

Nothing here imports JAX at module import time, so ``import verify`` works without it;
:func:`require_jax` gives the install hint when it is missing.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "INSTALL_HINT",
    "BackendError",
    "JaxMissingError",
    "Backend",
    "require_jax",
    "select_backend",
    "run_settings",
    "versions",
    "jax_activation",
    "COMPILE_FLAGS",
    "quick_compile",
]

INSTALL_HINT = "JAX is needed for the verification: pip install '.[verify]'"


#: XLA options for the verification's graphs: each is small and runs a few times, so
#: compiling it costs more than running it (LLVM's optimisation passes, about half of
#: each compilation).  They change speed only: XLA keeps IEEE arithmetic (no fast-math)
#: at every optimisation level.
COMPILE_FLAGS = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")


def quick_compile(environ: dict[str, str] | None = None) -> list[str]:
    """Add :data:`COMPILE_FLAGS` to ``XLA_FLAGS`` (``os.environ`` by default), leaving an
    option the user set there alone.  XLA reads the variable when JAX starts its first
    backend, so this is called before that (``verify report``, the test suite).
    Returns the flags added."""
    env = os.environ if environ is None else environ
    have = env.get("XLA_FLAGS", "").split()
    names = {f.split("=", 1)[0] for f in have}
    added = [f for f in COMPILE_FLAGS if f.split("=", 1)[0] not in names]
    if added:
        env["XLA_FLAGS"] = " ".join([*have, *added])
    return added


class BackendError(RuntimeError):
    """The requested JAX backend is not available."""


class JaxMissingError(BackendError):
    """JAX is not installed."""


def require_jax() -> Any:
    """Import and return the ``jax`` module, or raise :class:`JaxMissingError`."""
    try:
        import jax
    except ImportError as exc:  # pragma: no cover - exercised through a stub in the tests
        raise JaxMissingError(INSTALL_HINT) from exc
    return jax


@dataclass(frozen=True)
class Backend:
    """Where the JAX references run."""

    name: str  # "cpu" or "gpu"
    device: Any  # a jax Device

    def describe(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "device": str(self.device),
            "device_kind": str(getattr(self.device, "device_kind", "")),
            "platform": str(getattr(self.device, "platform", self.name)),
        }


def select_backend(name: str = "cpu") -> Backend:
    """The first device of JAX backend ``name`` (``"cpu"`` or ``"gpu"``).

    Raises
    ------
    JaxMissingError
        Without JAX.
    BackendError
        When JAX has no such backend (e.g. ``"gpu"`` without JAX's CUDA build or a GPU).
    """
    if name not in ("cpu", "gpu"):
        raise BackendError(f"backend must be 'cpu' or 'gpu'; got {name!r}")
    jax = require_jax()
    try:
        devices = jax.devices(name)
    except RuntimeError as exc:
        hint = (
            " (install JAX's CUDA build, e.g. pip install -U 'jax[cuda12]', on a machine with "
            "an NVIDIA GPU)"
            if name == "gpu"
            else ""
        )
        raise BackendError(f"no JAX {name} backend: {exc}{hint}") from exc
    if not devices:
        raise BackendError(f"JAX lists no {name} devices")
    return Backend(name, devices[0])


@contextlib.contextmanager
def run_settings(backend: Backend) -> Iterator[dict[str, Any]]:
    """Enable float64 and full-precision matmuls for the run, on ``backend``'s device.

    ``jax_default_matmul_precision`` is pinned to ``"highest"``: on GPUs the default lets
    float32 matmuls run in TF32 (errors near 1e-2).  The previous settings are restored
    on exit.  Yields the settings as read back from ``jax.config``.
    """
    jax = require_jax()
    old_x64 = bool(jax.config.jax_enable_x64)
    old_prec = jax.config.jax_default_matmul_precision
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    try:
        with jax.default_device(backend.device):
            yield {
                "x64": bool(jax.config.jax_enable_x64),
                "matmul_precision": str(jax.config.jax_default_matmul_precision),
                **backend.describe(),
            }
    finally:
        jax.config.update("jax_enable_x64", old_x64)
        jax.config.update("jax_default_matmul_precision", old_prec)


def versions() -> dict[str, str]:
    """Versions of the software a report depends on."""
    out = {
        "python_version": sys.version.split()[0],
        "numpy_version": np.__version__,
        "os": platform.platform(),
    }
    try:
        import jax
        import jaxlib

        out["jax_version"] = jax.__version__
        out["jaxlib_version"] = getattr(jaxlib, "__version__", "")
    except ImportError:
        out["jax_version"] = "not installed"
    return out


def jax_activation(name: str):
    """The JAX function of a shipped activation (the references' own, independent of the
    generated kernels)."""
    jax = require_jax()
    import jax.numpy as jnp

    return {
        "tanh": jnp.tanh,
        "sigmoid": jax.nn.sigmoid,
        "softplus": jax.nn.softplus,
        "relu": jax.nn.relu,
    }[name]
