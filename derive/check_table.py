"""Every self-check by name, for the equation modules to attach to their equations:
Section 3 and B.1 (:mod:`derive.references`), B.2 and B.3 (:mod:`derive.layer_checks`),
the forms behind the CR variants (:mod:`derive.variant_checks`)."""

from __future__ import annotations

from derive.forms import SelfCheck
from derive.layer_checks import LAYER_CHECKS
from derive.references import B1_CHECKS
from derive.variant_checks import VARIANT_CHECKS

__all__ = ["CHECKS"]

#: check name -> :class:`SelfCheck`
CHECKS: dict[str, SelfCheck] = {**B1_CHECKS, **LAYER_CHECKS, **VARIANT_CHECKS}
if len(CHECKS) != len(B1_CHECKS) + len(LAYER_CHECKS) + len(VARIANT_CHECKS):
    raise ValueError("a check name is defined twice")
