"""Equation modules; importing this package registers every equation."""

from derive.equations import (  # noqa: F401
    contracted,
    cubic_regularization,
    feedforward_relu,
)
from derive.equations import general_activation  # noqa: F401,E402
