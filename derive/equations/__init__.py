"""Equation modules; importing this package registers every equation."""

from derive.equations import (  # noqa: F401
    auto,
    bias,
    contracted,
    convolution,
    cubic_regularization,
    feedforward_relu,
    general_activation,
    recurrent,
    section2,
    stacking,
    variants,
)
