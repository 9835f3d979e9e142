"""Equation modules; importing this package registers every equation."""

from derive.equations import cubic_regularization, feedforward_relu  # noqa: F401
