"""The shipped entry-wise activations by name (generated in :mod:`numeric.kernels.activations`)."""

from __future__ import annotations

from numeric.kernels import activations as _act

__all__ = ["SECOND_VANISHES", "get_activation", "activation_names"]

#: names whose ``A''`` vanishes identically (B.3 then reduces to B.1)
SECOND_VANISHES = _act.SECOND_VANISHES


def activation_names() -> list[str]:
    """Names of the shipped activations."""
    return list(_act.ACTIVATIONS)


def get_activation(name: str):
    """The function ``z, second=True -> (A, A', A'')`` called ``name``; a ``ValueError``
    naming the choices for an unknown name."""
    try:
        return _act.ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; choose one of {', '.join(_act.ACTIVATIONS)}"
        ) from None
