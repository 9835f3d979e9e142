"""How a layer is declared for the deriver: :class:`Tensor`, :class:`Statement` and
:class:`LayerRule`.

A layer is its forward rule in index form, one :class:`Statement` per named quantity,
e.g. the dense layer of Eq 10 with a bias::

    z[m, j] = Sum(w[j, i] * v[m, i], i) + b[j]
    y[m, j] = A(z[m, j])

It names its parameters (``w[j, i]``, ``b[j]``), its input (``v[m, i]``), its output
(the target of the last statement) and the per-sample index (``m``).  ``A`` is
:data:`ACT`, an entry-wise activation left undefined: its derivatives are the free
values ``A'(z)`` and ``A''(z)`` (:data:`ACT1`, :data:`ACT2`), so the derived forms hold
for any activation and the ReLU is ``A'' = 0``.

:func:`LayerRule.validate` refuses what the deriver cannot handle, naming the construct:
data-dependent indexing (an index that is itself a tensor entry), index expressions
(``v[m, t + 1]``: shifted or strided indices), ``Max``/``Min``/
``Piecewise``/``Heaviside`` (max-pooling, argmax), and activations applied to anything
but one entry of a declared quantity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

__all__ = [
    "ACT",
    "ACT1",
    "ACT2",
    "Tensor",
    "Statement",
    "LayerRule",
    "UnsupportedConstruct",
    "ix",
]


class UnsupportedConstruct(NotImplementedError):
    """A forward rule uses a construct the deriver does not handle (it names it)."""


class ACT2(sp.Function):
    """``A''``, the second derivative of the activation (a free value per unit)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        raise UnsupportedConstruct(
            "a third derivative of the activation: the deriver stops at second order"
        )


class ACT1(sp.Function):
    """``A'``, the first derivative of the activation."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return ACT2(self.args[0])


class ACT(sp.Function):
    """The entry-wise activation ``A`` (undefined: ``A'`` and ``A''`` stay free)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return ACT1(self.args[0])


def ix(names: str) -> tuple[sp.Idx, ...]:
    """Indices by name, e.g. ``m, i, j = ix("m i j")``."""
    return tuple(sp.Idx(n) for n in names.split())


@dataclass(frozen=True)
class Tensor:
    """A named array with its index names, e.g. ``Tensor("w", ("j", "i"))``.

    ``direction`` is the name of its tangent (``phi`` for ``w``, as in the paper's
    Eq 38); empty means ``<name>dot``.
    """

    name: str
    indices: tuple[str, ...]
    doc: str = ""
    direction: str = ""

    @property
    def base(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.name)

    def __getitem__(self, idx) -> sp.Indexed:
        return self.base[idx]

    def at(self) -> sp.Indexed:
        """The tensor at its own indices: ``w[j, i]``."""
        return self.base[tuple(sp.Idx(i) for i in self.indices)]

    @property
    def dot(self) -> str:
        return self.direction or f"{self.name}dot"

    @property
    def bar(self) -> str:
        return f"{self.name}bar"


@dataclass(frozen=True)
class Statement:
    """``target[indices] = rhs``; ``rhs`` is an index form (``Indexed``, ``Sum``, scalars,
    :data:`ACT` of one entry, smooth functions such as ``sqrt`` of per-sample scalars)."""

    target: Tensor
    rhs: sp.Expr


_UNSUPPORTED = {
    sp.Max: "Max (max-pooling, ReLU written as max(z, 0): declare it as the activation A)",
    sp.Min: "Min",
    sp.Piecewise: "Piecewise (a case split on data)",
    sp.Heaviside: "Heaviside (a case split on data)",
    sp.Abs: "Abs (not differentiable at 0)",
    sp.sign: "sign",
    sp.floor: "floor",
    sp.ceiling: "ceiling",
}


@dataclass(frozen=True)
class LayerRule:
    """One layer declared by its forward rule.

    Parameters
    ----------
    name : str
        Short name (``dense_bias``); the registry numbers its forms ``A.<name>.<part>``.
    title : str
        One line on what it is.
    params : tuple of Tensor
        Trained parameters (no per-sample index), e.g. ``w[j, i]``, ``b[j]``.
    input : Tensor
        The layer's input, with the per-sample index first, e.g. ``v[m, i]``.
    statements : tuple of Statement
        The forward rule in order; the last target is the output ``y[m, j]``.
    sample : str
        The per-sample index (``"m"``).
    extents : dict
        ``index name -> extent symbol`` for indices whose extent enters a coefficient
        (the ``1/n`` of a mean); others are read off the arrays.
    cites : str
        Where the forward rule comes from (``"Eq 10"``), or ``""`` for a new layer.
    """

    name: str
    title: str
    params: tuple[Tensor, ...]
    input: Tensor
    statements: tuple[Statement, ...]
    sample: str = "m"
    extents: dict = field(default_factory=dict)
    cites: str = ""

    @property
    def source(self) -> str:
        """``"paper"`` when the forward rule is the paper's, else ``"new"``."""
        return "paper" if self.cites else "new"

    @property
    def output(self) -> Tensor:
        return self.statements[-1].target

    @property
    def intermediates(self) -> tuple[Tensor, ...]:
        return tuple(s.target for s in self.statements)

    def tensor(self, name: str) -> Tensor:
        for t in (*self.params, self.input, *self.intermediates):
            if t.name == name:
                return t
        raise KeyError(f"layer {self.name} has no tensor {name!r}")

    def forward_text(self) -> list[str]:
        """One line per statement, ``target[idx] = rhs``."""
        from derive.auto.algebra import plain

        return [f"{plain(s.target.at())} = {plain(s.rhs)}" for s in self.statements]

    def validate(self) -> None:
        """Refuse what the deriver cannot handle, naming the construct.

        Raises
        ------
        UnsupportedConstruct
            Data-dependent indexing, ``Max``/``Min``/``Piecewise``/..., an activation of
            something other than one entry of a declared quantity.
        ValueError
            An undeclared tensor, a parameter with the per-sample index, a per-sample
            quantity used at another sample, a statement that redefines a name.
        """
        known = {t.name: t for t in (*self.params, self.input)}
        for p in self.params:
            if self.sample in p.indices:
                raise ValueError(f"parameter {p.name} carries the per-sample index {self.sample}")
        if not self.input.indices or self.input.indices[0] != self.sample:
            raise ValueError(f"the input {self.input.name} must have the per-sample index first")
        for st in self.statements:
            self._check_expr(st, known)
            if st.target.name in known:
                raise ValueError(f"{st.target.name} is defined twice")
            if not st.target.indices or st.target.indices[0] != self.sample:
                raise ValueError(f"{st.target.name} must have the per-sample index first")
            known[st.target.name] = st.target

    def _check_expr(self, st: Statement, known: dict) -> None:
        where = f"in the rule for {st.target.name} of layer {self.name}"
        for kind, what in _UNSUPPORTED.items():
            if st.rhs.has(kind):
                raise UnsupportedConstruct(f"{what} {where}: the deriver differentiates smooth "
                                           "rules only")  # fmt: skip
        for fn in st.rhs.atoms(sp.Function):
            if isinstance(fn, ACT) and not isinstance(fn.args[0], sp.Indexed):
                raise UnsupportedConstruct(
                    f"the activation A of {fn.args[0]} {where}: declare the argument as a "
                    "quantity of its own and apply A to one entry of it"
                )
            if isinstance(fn, ACT1 | ACT2):
                raise ValueError(f"A' or A'' written into a forward rule {where}")
        # every entry's indices first: the atoms come as a set, so a gather's index tensor
        # must not be reported as an undeclared name before the gather itself is
        entries = sorted(st.rhs.atoms(sp.Indexed), key=sp.default_sort_key)
        for ind in entries:
            for sub in ind.indices:
                if sub.has(sp.Indexed):
                    raise UnsupportedConstruct(
                        f"data-dependent indexing {ind} {where} (gather, argmax, max-pooling "
                        "select entries by data; the deriver handles fixed index patterns only)"
                    )
                if not isinstance(sub, sp.Idx | sp.Symbol):
                    raise UnsupportedConstruct(
                        f"the index expression {sub} in {ind} {where} (shifted or strided "
                        "indices, as in a convolution; the deriver handles plain indices only)"
                    )
        for ind in entries:
            name = str(ind.base.label)
            if name not in known:
                raise ValueError(f"{name} {where} is neither a parameter, the input nor an "
                                 "earlier statement")  # fmt: skip
            tensor = known[name]
            if len(ind.indices) != len(tensor.indices):
                raise ValueError(f"{ind} {where}: {name} has {len(tensor.indices)} indices")
            if self.sample in tensor.indices and str(ind.indices[0]) != self.sample:
                raise ValueError(f"{ind} {where}: a per-sample quantity at another sample")
