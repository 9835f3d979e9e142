"""Entry-wise activation functions for Appendix B.3 (and Eq 11's ReLU).

Each :class:`Activation` is a SymPy expression ``A(z)``; its derivatives ``A'`` and
``A''`` come from :func:`sympy.diff`.  Optional *numeric forms* replace any of the
three by an equal expression that is cheaper or stabler in floating point; they may
use the output ``v = A(z)`` as well as ``z`` (``tanh' = 1 - v^2``).
:func:`check_activation` proves each numeric form equal to the SymPy original, and
the code generator prints the numeric forms into ``numeric/kernels/activations.py``.

Adding an activation is one call::

    register(Activation("elu", sp.Piecewise((z, z > 0), (sp.exp(z) - 1, True))))

(``numeric`` forms are optional; regenerate with ``python -m derive generate``.)

The ReLU is the special case of B.1: ``A'' = 0`` (Eq 29; the Dirac delta at the
origin is a removable singularity) and ``A'(0) = 0`` (Eq 17 leaves ``z = 0`` open;
the kernels take 0, as ``numeric/kernels/relu_mlp.py`` does).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import sympy as sp
from sympy.codegen.cfunctions import log1p

__all__ = ["Activation", "ACTIVATIONS", "register", "get", "names", "check_activation", "z", "v"]

#: the pre-activation and the output ``v = A(z)`` (numeric forms may use both)
z = sp.Symbol("z", real=True)
v = sp.Symbol("v", real=True)


@dataclass(frozen=True)
class Activation:
    """An entry-wise activation.

    Parameters
    ----------
    name : str
        Name used by the kernels and the command line (``--activation tanh``).
    expr : sympy.Expr
        ``A(z)`` in the symbol :data:`z`.
    numeric : dict
        Optional replacements ``{"A": ..., "A1": ..., "A2": ...}`` in ``z`` and
        ``v = A(z)``, proved equal to ``A``, ``A'``, ``A''`` by :func:`check_activation`.
    exact : dict
        Derivatives to use instead of :func:`sympy.diff` where ``diff`` returns a
        distribution (the ReLU's ``A'' = DiracDelta``, removable, Eq 29).
    doc : str
    """

    name: str
    expr: sp.Expr
    numeric: dict = field(default_factory=dict)
    exact: dict = field(default_factory=dict)
    doc: str = ""

    def derivative(self, order: int) -> sp.Expr:
        """``A`` (order 0), ``A'`` (1) or ``A''`` (2) as an expression in ``z``."""
        key = ("A", "A1", "A2")[order]
        if key in self.exact:
            return sp.sympify(self.exact[key])
        return sp.diff(self.expr, z, order) if order else self.expr

    def forms(self) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
        """The three expressions the kernels evaluate (numeric forms where given)."""
        return tuple(
            sp.sympify(self.numeric.get(key, self.derivative(o)))
            for o, key in enumerate(("A", "A1", "A2"))
        )

    @property
    def second_vanishes(self) -> bool:
        """Whether ``A'' = 0`` identically (B.3 then reduces to B.1)."""
        return sp.simplify(self.derivative(2)) == 0


ACTIVATIONS: dict[str, Activation] = {}


def register(act: Activation) -> Activation:
    """Add an activation (names are unique)."""
    if act.name in ACTIVATIONS:
        raise ValueError(f"activation {act.name!r} registered twice")
    ACTIVATIONS[act.name] = act
    return act


def get(name: str) -> Activation:
    """The activation called ``name``."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise KeyError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}") from None


def names() -> list[str]:
    """Registered activation names, in registration order."""
    return list(ACTIVATIONS)


_half_tanh = sp.tanh(z / 2)

register(
    Activation(
        "relu",
        sp.Max(z, 0),
        numeric={"A1": sp.Heaviside(z, 0)},
        exact={"A1": sp.Heaviside(z, 0), "A2": sp.S.Zero},
        doc="ReLU max(z, 0) (Eq 11); A'(0) = 0, A'' = 0 (Eq 29)",
    )
)
register(
    Activation(
        "tanh",
        sp.tanh(z),
        numeric={"A1": 1 - v**2, "A2": -2 * v * (1 - v**2)},
        doc="Hyperbolic tangent",
    )
)
register(
    Activation(
        "sigmoid",
        1 / (1 + sp.exp(-z)),
        numeric={"A": (1 + _half_tanh) / 2, "A1": v * (1 - v), "A2": v * (1 - v) * (1 - 2 * v)},
        doc="Logistic sigmoid 1 / (1 + exp(-z)), evaluated as (1 + tanh(z/2)) / 2",
    )
)
register(
    Activation(
        "softplus",
        sp.log(1 + sp.exp(z)),
        numeric={
            "A": sp.Max(z, 0) + log1p(sp.exp(-sp.Abs(z))),
            "A1": (1 + _half_tanh) / 2,
            "A2": (1 - _half_tanh**2) / 4,
        },
        doc="Softplus log(1 + exp(z)), evaluated as max(z, 0) + log1p(exp(-|z|))",
    )
)


def _points(count: int, seed: int) -> list[sp.Rational]:
    rng = random.Random(seed)
    pts = [sp.Rational(rng.randint(-400, 400), rng.randint(1, 97)) for _ in range(count)]
    return pts + [sp.Rational(1, 3), -sp.Rational(7, 2), sp.Integer(9), -sp.Integer(9)]


def check_activation(act: Activation, points: int = 24, seed: int = 0) -> list[str]:
    """Prove every numeric form of ``act`` equal to the SymPy original.

    Each difference is first simplified symbolically (with ``v = A(z)``
    substituted); where that does not reach 0 (``Max``, ``Abs``, ``log1p``), the two
    sides are compared at random rational points to 40 significant digits on both
    sides of the origin.  Also checks ``A'``/``A''`` against :func:`sympy.diff`
    where ``exact`` overrides it (away from the origin).

    Returns
    -------
    list of str
        Problems found (empty when the activation is consistent).
    """
    problems = []
    truth = [act.expr, sp.diff(act.expr, z), sp.diff(act.expr, z, 2)]
    for order, key in enumerate(("A", "A1", "A2")):
        candidates = []
        if key in act.numeric:
            candidates.append(("numeric", sp.sympify(act.numeric[key]).subs(v, act.expr)))
        if key in act.exact:
            candidates.append(("exact", sp.sympify(act.exact[key])))
        for label, form in candidates:
            diff = sp.simplify((form - truth[order]).rewrite(sp.exp))
            if diff == 0:
                continue
            for pt in _points(points, seed + order):
                if pt == 0:
                    continue
                lhs = sp.N(form.subs(z, pt), 40)
                rhs = sp.N(truth[order].subs(z, pt), 40)
                if rhs.has(sp.DiracDelta) or not rhs.is_number:
                    rhs = sp.N(truth[order].subs(z, pt).doit(), 40)
                if abs(lhs - rhs) > sp.Float(10) ** -30 * (1 + abs(rhs)):
                    problems.append(
                        f"{act.name}: {label} {key} differs at z = {pt}: {lhs} != {rhs}"
                    )
                    break
    return problems
