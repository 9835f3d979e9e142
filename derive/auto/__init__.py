"""The deriver: a layer declared by its forward rule, its derivative forms derived
symbolically (:mod:`derive.auto.deriver`) and proved against ``sympy.diff`` of the
explicit layer (:mod:`derive.auto.proof`)."""
