"""Self-check references for the derived bias and stacking forms
(:mod:`derive.equations.bias`, :mod:`derive.equations.stacking`).

Each reference is an explicit network or layer differentiated by exact second-order
forward jets (:class:`Jet`): every parameter group is a leaf seeded with the identity
(for gradients and Hessian blocks) or with a direction (for tangents and ``g^T H g``),
and the activation of every unit has free values ``A``, ``A'``, ``A''`` (symbols in
symbolic mode, random rationals in rational mode), as in :mod:`derive.layer_checks`.
Nothing here uses the adjoint or tangent recursions the forms state: adjoints are
derivatives of ``vbar . v`` by probes (zero-valued additive leaves on a pre-activation or
an output), tangents are first jet components, curvature terms second ones.

* dense stacks with biases: the context's network (widths, weights, activation values,
  ``df/dp``, ``d2f/dp2`` of :class:`derive.selfcheck.Context`) with a bias leaf per layer
  and on the logits;
* a conv layer with C input and O output channels, a bias, and its input as a leaf;
* a recurrent layer ``z_(t) = w v_(t-1) + U x_(t) + b`` with an initial state ``x_0``.
"""

from __future__ import annotations

import random
import weakref
from fractions import Fraction

import numpy as np
import sympy as sp

from derive.checking import Context
from derive.forms import SelfCheck
from derive.layer_checks import evaluate_form, resolve

__all__ = ["Jet", "bilinear", "activate", "CONV_CASES", "REC_CASES"]

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


#: check name -> :class:`~derive.forms.SelfCheck` of the bias and stacking forms
STACK_CHECKS: dict[str, SelfCheck] = {}


def register_check(name: str, reference, lhs=None) -> None:
    """Add the check ``name``: ``reference(ctx, labels)`` and optionally
    ``lhs(ctx, form, labels)`` (default: evaluate the form at the labels)."""
    if name in STACK_CHECKS:
        raise ValueError(f"check {name!r} defined twice")
    STACK_CHECKS[name] = SelfCheck(name, reference=reference, lhs=lhs)


def _store(ctx: Context) -> dict:
    if ctx not in _CACHE:
        _CACHE[ctx] = {}
    return _CACHE[ctx]


def _zeros(shape) -> np.ndarray:
    arr = np.empty(shape, dtype=object)
    arr[...] = 0
    return arr


def _sympy(arr) -> np.ndarray:
    """Object array with every entry a SymPy number or expression."""
    arr = np.asarray(arr, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    for pos in np.ndindex(*arr.shape):
        val = arr[pos]
        out[pos] = (
            sp.Rational(val.numerator, val.denominator)
            if isinstance(val, Fraction)
            else (sp.sympify(val))
        )
    return out


class _Values:
    """Free values: symbols (symbolic mode) or random rationals (``Fraction``)."""

    def __init__(self, mode: str, seed: int):
        self.mode = mode
        self.rng = random.Random(seed)

    def __call__(self, tag: str, shape) -> np.ndarray:
        arr = np.empty(shape, dtype=object)
        for pos in np.ndindex(*shape):
            if self.mode == "symbolic":
                arr[pos] = sp.Symbol(f"{tag}_" + "_".join(map(str, pos)), real=True)
            else:
                arr[pos] = Fraction(self.rng.randint(-40, 40), self.rng.randint(1, 17))
        return arr


# ---------------------------------------------------------------------- jets
class Jet:
    """Value ``val``, first derivatives ``d1 = val.shape + (P,)`` and second ``d2 = val.shape
    + (P, P)`` (``None`` for first-order jets) along ``P`` seeded directions."""

    def __init__(self, val: np.ndarray, d1: np.ndarray, d2: np.ndarray | None):
        self.val, self.d1, self.d2 = val, d1, d2

    @classmethod
    def leaf(cls, val: np.ndarray, seed: np.ndarray | None, P: int, order: int = 2) -> Jet:
        """A leaf with tangent ``seed`` (``val.shape + (P,)``; ``None``: a constant)."""
        val = np.asarray(val, dtype=object)
        d1 = _zeros(val.shape + (P,)) if seed is None else np.asarray(seed, dtype=object)
        d2 = _zeros(val.shape + (P, P)) if order == 2 else None
        return cls(val, d1, d2)

    def __add__(self, other: Jet) -> Jet:
        d2 = None if self.d2 is None else self.d2 + other.d2
        return Jet(self.val + other.val, self.d1 + other.d1, d2)

    def map(self, fn) -> Jet:
        """A linear map of the leading (value) axes, e.g. a gather."""
        return Jet(fn(self.val), fn(self.d1), None if self.d2 is None else fn(self.d2))


def bilinear(spec: str, a: Jet, b: Jet) -> Jet:
    """``einsum(spec, a, b)`` with its product-rule derivatives."""
    ins, out = spec.split("->")
    sa, sb = ins.split(",")
    p, q = "PQ"
    val = np.einsum(spec, a.val, b.val)
    d1 = np.einsum(f"{sa}{p},{sb}->{out}{p}", a.d1, b.val) + np.einsum(
        f"{sa},{sb}{p}->{out}{p}", a.val, b.d1
    )
    d2 = None
    if a.d2 is not None:
        d2 = (
            np.einsum(f"{sa}{p}{q},{sb}->{out}{p}{q}", a.d2, b.val)
            + np.einsum(f"{sa}{p},{sb}{q}->{out}{p}{q}", a.d1, b.d1)
            + np.einsum(f"{sa}{q},{sb}{p}->{out}{p}{q}", a.d1, b.d1)
            + np.einsum(f"{sa},{sb}{p}{q}->{out}{p}{q}", a.val, b.d2)
        )
    return Jet(val, d1, d2)


def activate(z: Jet, v, a1, a2) -> Jet:
    """``A`` applied entry-wise, with free values ``v = A(z)``, ``a1 = A'``, ``a2 = A''``."""
    d1 = a1[..., None] * z.d1
    d2 = None
    if z.d2 is not None:
        d2 = a1[..., None, None] * z.d2 + a2[..., None, None] * (
            z.d1[..., :, None] * z.d1[..., None, :]
        )
    return Jet(np.asarray(v, dtype=object), d1, d2)


def _eye_seed(shape, P: int, offset: int) -> np.ndarray:
    size = int(np.prod(shape))
    seed = _zeros((size, P))
    for e in range(size):
        seed[e, offset + e] = 1
    return seed.reshape(tuple(shape) + (P,))


class _Seeds:
    """Tangent seeds of parameter groups: identities (``groups``) or one direction (P = 1)."""

    def __init__(self, shapes: dict, groups=(), direction: dict | None = None):
        self.shapes = shapes
        self.offsets: dict = {}
        pos = 0
        for g in groups:
            if g not in self.offsets:
                self.offsets[g] = pos
                pos += int(np.prod(shapes[g]))
        self.direction = direction
        self.P = 1 if direction is not None else max(pos, 1)

    def __call__(self, g):
        if self.direction is not None:
            d = self.direction.get(g)
            return None if d is None else np.asarray(d, dtype=object)[..., None]
        if g in self.offsets:
            return _eye_seed(self.shapes[g], self.P, self.offsets[g])
        return None

    def block(self, arr: np.ndarray, g) -> np.ndarray:
        """The derivative axis of group ``g`` of a ``d1`` array, reshaped to the group."""
        n = int(np.prod(self.shapes[g]))
        lead = arr.shape[:-1]
        return arr[..., self.offsets[g] : self.offsets[g] + n].reshape(lead + tuple(self.shapes[g]))

    def block2(self, arr: np.ndarray, g1, g2) -> np.ndarray:
        n1, n2 = int(np.prod(self.shapes[g1])), int(np.prod(self.shapes[g2]))
        o1, o2 = self.offsets[g1], self.offsets[g2]
        lead = arr.shape[:-2]
        blk = arr[..., o1 : o1 + n1, o2 : o2 + n2]
        return blk.reshape(lead + tuple(self.shapes[g1]) + tuple(self.shapes[g2]))


def _expand(arr: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda e: sp.expand(e) if isinstance(e, sp.Basic) else e, otypes=[object])(
        arr
    )


# ====================================================================== dense with biases
def _general(ctx: Context) -> bool:
    return bool(getattr(ctx.reference, "second", False))


def _bias_values(ctx: Context) -> dict:
    """Directions of the biases (``psi(k)``, ``omegab``), fixed per context."""
    store = _store(ctx)
    if "bias_dirs" not in store:
        vals = _Values(ctx.mode, 4242)
        W, n = ctx.sizes.widths, ctx.sizes.n
        dirs = {f"psi({k})": vals(f"psi{k}", (W[k],)) for k in range(1, n + 1)}
        dirs["omegab"] = vals("omegab", (ctx.sizes.classes,))
        store["bias_dirs"] = {name: ctx.to_sympy(arr) for name, arr in dirs.items()}
    return store["bias_dirs"]


def _dense_shapes(ctx: Context) -> dict:
    W, n, c = ctx.sizes.widths, ctx.sizes.n, ctx.sizes.classes
    shapes = {("u",): (c, W[-1]), ("c",): (c,)}
    for k in range(1, n + 1):
        shapes[("w", k)] = (W[k], W[k - 1])
        shapes[("b", k)] = (W[k],)
    return shapes


def _dense_run(ctx: Context, seeds: _Seeds) -> dict:
    """Jets of every ``z^(k)``, ``v^(k)`` and ``p`` of the network with biases."""
    base, n, P = ctx.base, ctx.sizes.n, seeds.P
    general = _general(ctx)
    v = Jet.leaf(base["x"], None, P)
    out = {}
    for k in range(1, n + 1):
        W = Jet.leaf(base[f"w({k})"], seeds(("w", k)), P)
        bk = Jet.leaf(_zeros(base[f"a1({k})"].shape), seeds(("b", k)), P)
        z = bilinear("ji,i->j", W, v) + bk
        a2 = base[f"a2({k})"] if general else _zeros(base[f"a2({k})"].shape)
        v = activate(z, base[f"v({k})"], base[f"a1({k})"], a2)
        out[("z", k)], out[("v", k)] = z, v
    U = Jet.leaf(base["u"], seeds(("u",)), P)
    cb = Jet.leaf(_zeros((ctx.sizes.classes,)), seeds(("c",)), P)
    out["p"] = bilinear("ji,i->j", U, v) + cb
    return out


def _dense_groups(ctx: Context, *groups) -> tuple[dict, _Seeds]:
    key = ("dense", groups)
    store = _store(ctx)
    if key not in store:
        seeds = _Seeds(_dense_shapes(ctx), groups)
        store[key] = (_dense_run(ctx, seeds), seeds)
    return store[key]


def _dense_direction(ctx: Context) -> tuple[dict, _Seeds]:
    store = _store(ctx)
    if "dense_dir" not in store:
        dirs = _bias_values(ctx)
        n = ctx.sizes.n
        direction = {("u",): ctx.base["omega"], ("c",): dirs["omegab"]}
        for k in range(1, n + 1):
            direction[("w", k)] = ctx.base[f"phi({k})"]
            direction[("b", k)] = dirs[f"psi({k})"]
        seeds = _Seeds(_dense_shapes(ctx), direction=direction)
        store["dense_dir"] = (_dense_run(ctx, seeds), seeds)
    return store["dense_dir"]


def _grad(ctx, g) -> np.ndarray:
    run, seeds = _dense_groups(ctx, g)
    return np.einsum("a,a...->...", ctx.base["dfdp"], seeds.block(run["p"].d1, g))


def _hess(ctx, g1, g2) -> np.ndarray:
    run, seeds = _dense_groups(ctx, g1, g2)
    p = run["p"]
    j1, j2 = seeds.block(p.d1, g1), seeds.block(p.d1, g2)
    nd1, nd2 = len(seeds.shapes[g1]), len(seeds.shapes[g2])
    s1 = "ijkl"[:nd1]
    s2 = "mnop"[:nd2]
    gn = np.einsum(f"ab,a{s1},b{s2}->{s1}{s2}", ctx.base["d2fdp2"], j1, j2)
    cur = np.einsum(f"a,a{s1}{s2}->{s1}{s2}", ctx.base["dfdp"], seeds.block2(p.d2, g1, g2))
    return _expand(gn + cur)


#: Hessian-block checks: name -> (group of slot 1, group of slot 2) from the labels
_HESS = {
    "bias_hessian_cu": lambda L: (("c",), ("u",)),
    "bias_hessian_cc": lambda L: (("c",), ("c",)),
    "bias_hessian_ub": lambda L: (("u",), ("b", L["k"])),
    "bias_hessian_cw": lambda L: (("c",), ("w", L["k"])),
    "bias_hessian_cb": lambda L: (("c",), ("b", L["k"])),
    "bias_hessian_wb": lambda L: (("w", L["k"]), ("b", L["r"])),
    "bias_hessian_bb": lambda L: (("b", L["k"]), ("b", L["r"])),
}
#: second derivatives of v^(n) (B.3): name -> groups
_D2V = {
    "bias_d2v_wb": lambda L: (("w", L["k"]), ("b", L["q"])),
    "bias_d2v_bw": lambda L: (("b", L["k"]), ("w", L["q"])),
    "bias_d2v_bb": lambda L: (("b", L["k"]), ("b", L["q"])),
}


def _dense_resolver(ctx: Context, name: str) -> np.ndarray:
    dirs = _bias_values(ctx)
    if name in dirs:
        return dirs[name]
    fam, _, rest = name.partition("(")
    labels = [int(x) for x in rest.rstrip(")").split(",")] if rest else []
    if fam in ("vdot", "zdot"):
        run, _ = _dense_direction(ctx)
        if fam == "vdot" and labels[0] == 0:
            return _zeros((ctx.sizes.widths[0],))
        key = ("v" if fam == "vdot" else "z", labels[0])
        return _expand(run[key].d1[..., 0])
    if fam == "pdot":
        run, _ = _dense_direction(ctx)
        return _expand(run["p"].d1[..., 0])
    return resolve(ctx, name)


def _register_dense(check: str, reference) -> None:
    def lhs(ctx, form, labels):
        ref = np.asarray(reference(ctx, labels), dtype=object)
        return evaluate_form(ctx, form, labels, ref.shape, _dense_resolver)

    register_check(check, reference, lhs)


def _ref_dv(ctx, lab):
    k, l_ = lab["k"], lab["l"]  # noqa: E741
    run, seeds = _dense_groups(ctx, ("b", l_))
    return _expand(seeds.block(run[("v", k)].d1, ("b", l_)))


def _d2v_ref(groups):
    def ref(ctx, lab):
        g1, g2 = groups(lab)
        run, seeds = _dense_groups(ctx, g1, g2)
        return _expand(seeds.block2(run[("v", ctx.sizes.n)].d2, g1, g2))

    return ref


def _ref_ghg(ctx, lab):
    run, _ = _dense_direction(ctx)
    p = run["p"]
    pdot, pddot = p.d1[..., 0], p.d2[..., 0, 0]
    val = np.einsum("a,ab,b->", pdot, ctx.base["d2fdp2"], pdot) + np.einsum(
        "a,a->", ctx.base["dfdp"], pddot
    )
    return np.asarray(sp.expand(val), dtype=object)


def _ref_gtg(ctx, lab):
    run, _ = _dense_direction(ctx)
    return np.asarray(sp.expand(np.einsum("a,a->", ctx.base["dfdp"], run["p"].d1[..., 0])), object)


def _ref_zdot(ctx, lab):
    run, _ = _dense_direction(ctx)
    return _expand(run[("z", lab["k"])].d1[..., 0])


def _ref_lowrank_bias(ctx, lab):
    """The bias part of ``-grad F`` over a mini-batch whose per-sample bias gradients are
    the factors ``Db(k)`` (``df/db = delta``, Eq 28.b) or ``Pb`` (``df/dc = df/dp``)."""
    key = f"Db({lab['k']})" if "k" in lab else "Pb"
    rows = ctx.base[key]
    return -sum(rows[c_] for c_ in range(rows.shape[0])) / sp.Integer(rows.shape[0])


_register_dense("bias_dv", _ref_dv)
_register_dense("bias_grad_c", lambda ctx, lab: _expand(_grad(ctx, ("c",))))
_register_dense("bias_grad_b", lambda ctx, lab: _expand(_grad(ctx, ("b", lab["k"]))))
_register_dense("bias_zdot", _ref_zdot)
_register_dense("bias_g_hess_g", _ref_ghg)
_register_dense("bias_g_dot_grad", _ref_gtg)
register_check(
    "lowrank_bias", _ref_lowrank_bias, lambda ctx, form, labels: ctx.evaluate(form, labels)
)
for _name, _groups in _HESS.items():
    _register_dense(_name, lambda ctx, lab, _groups=_groups: _hess(ctx, *_groups(lab)))
for _name, _groups in _D2V.items():
    _register_dense(_name, _d2v_ref(_groups))


# ====================================================================== conv layer in a stack
#: (C, O, H, W, K_h, K_w, sigma, tau); the first symbolic case is a kernel that just fits
CONV_CASES = {
    "symbolic": [(1, 2, 2, 3, 2, 3, 1, 1), (2, 2, 3, 4, 2, 2, 1, 2)],
    "rational": [(2, 3, 4, 5, 3, 2, 1, 2), (2, 2, 5, 4, 2, 3, 3, 1)],
}


class _Given:
    """Explicit tangent seeds per group (``P`` directions)."""

    def __init__(self, P: int, seeds: dict):
        self.P, self.seeds = P, seeds

    def __call__(self, g):
        return self.seeds.get(g)


def _stack_dirs(*arrays) -> np.ndarray:
    """Seeds ``shape + (P,)`` with the ``P`` given arrays as directions (``None``: zero)."""
    shape = next(a for a in arrays if a is not None).shape
    out = _zeros(shape + (len(arrays),))
    for p_, a in enumerate(arrays):
        if a is not None:
            out[..., p_] = a
    return out


class _ConvRef:
    """A conv layer ``v_ost = A(sum_clk x[c, sigma s + l, tau t + k] w[o, c, l, k] + b_o)``
    (0-based, VALID) with free values at every output and its input ``x`` as a leaf.

    The adjoint of the pre-activation is ``delta = A' vbar`` with ``vbar = df/dv`` free."""

    def __init__(self, config: tuple, mode: str, seed: int):
        C, O, H, W, Kh, Kw, sigma, tau = config
        S, T = (H - Kh) // sigma + 1, (W - Kw) // tau + 1
        self.shape = (O, S, T)
        vals = _Values(mode, seed * 7919 + sum(config))
        self.x, self.w = vals("x", (C, H, W)), vals("w", (O, C, Kh, Kw))
        self.v, self.a1, self.a2 = (vals(tag, (O, S, T)) for tag in ("v", "a1", "a2"))
        self.vbar = vals("vbar", (O, S, T))
        self.phi, self.psi = vals("phi", self.w.shape), vals("psi", (O,))
        self.xdot = vals("xd", self.x.shape)
        rows = sigma * np.arange(S)[:, None, None, None] + np.arange(Kh)[None, None, :, None]
        cols = tau * np.arange(T)[None, :, None, None] + np.arange(Kw)[None, None, None, :]
        self.rows = np.broadcast_to(rows, (S, T, Kh, Kw))
        self.cols = np.broadcast_to(cols, (S, T, Kh, Kw))
        self.shapes = {"x": self.x.shape, "w": self.w.shape, "b": (O,), "z": (C, S, T, Kh, Kw)}
        self._memo: dict = {}

    def patches(self, arr: np.ndarray) -> np.ndarray:
        return arr[:, self.rows, self.cols]

    def run(self, seeds, order: int = 2, z_leaf: bool = False) -> tuple[Jet, Jet]:
        """Jets of the pre-activation and of the output."""
        P = seeds.P
        O, S, T = self.shape
        if z_leaf:
            z = Jet.leaf(self.patches(self.x), seeds("z"), P, order)
        else:
            z = Jet.leaf(self.x, seeds("x"), P, order).map(self.patches)
        w = Jet.leaf(self.w, seeds("w"), P, order)
        b = Jet.leaf(_zeros((O,)), seeds("b"), P, order).map(
            lambda a: np.broadcast_to(a[:, None, None], (O, S, T) + a.shape[1:])
        )
        pre = bilinear("cstlk,oclk->ost", z, w) + b
        return pre, activate(pre, self.v, self.a1, self.a2)

    def dz_dx(self) -> np.ndarray:
        """Eq 48's selection tensor ``[s, t, l, k, i, j]`` (one channel)."""
        _, H, W = self.x.shape
        out = _zeros(self.rows.shape + (H, W))
        for pos in np.ndindex(*self.rows.shape):
            out[pos + (self.rows[pos], self.cols[pos])] = 1
        return out

    def direction_run(self) -> tuple[Jet, Jet]:
        """Jets along the direction ``(Phi, psi, xdot)``."""
        if "dir" not in self._memo:
            seeds = _Seeds(self.shapes, direction={"w": self.phi, "b": self.psi, "x": self.xdot})
            self._memo["dir"] = self.run(seeds)
        return self._memo["dir"]

    def delta(self) -> np.ndarray:
        return self.a1 * self.vbar

    def adjoint(self, group: str) -> np.ndarray:
        """``sum_ost delta_ost d pre_ost / d group`` (first-order jets)."""
        seeds = _Seeds(self.shapes, [group])
        pre, _ = self.run(seeds, order=1, z_leaf=group == "z")
        return np.einsum("ost,ost...->...", self.delta(), seeds.block(pre.d1, group))

    def input_tangent(self) -> np.ndarray:
        pre, _ = self.run(_Seeds(self.shapes, direction={"x": self.xdot}), order=1)
        return pre.d1[..., 0]

    def cross(self) -> np.ndarray:
        """``2 delta . d2 pre [Phi, xdot]``."""
        given = _Given(2, {"w": _stack_dirs(self.phi, None), "x": _stack_dirs(None, self.xdot)})
        pre, _ = self.run(given)
        return np.asarray(2 * np.einsum("ost,ost->", self.delta(), pre.d2[..., 0, 1]), object)

    def layer_curvature(self) -> np.ndarray:
        """``vbar . d2 v [(Phi, psi, xdot), (Phi, psi, xdot)]``."""
        _, v = self.direction_run()
        return np.asarray(np.einsum("ost,ost->", self.vbar, v.d2[..., 0, 0]), dtype=object)

    def arrays(self) -> dict:
        if "arrays" not in self._memo:
            pre, _ = self.direction_run()
            self._memo["arrays"] = {
                name: _sympy(arr)
                for name, arr in {
                    "mw": self.w,
                    "mz": self.patches(self.x),
                    "mzx": self.patches(self.xdot),
                    "mphi": self.phi,
                    "mdelta": self.delta(),
                    "mvbar": self.vbar,
                    "ma2": self.a2,
                    "mzdot": pre.d1[..., 0],
                    "mzbar": self.adjoint("z"),
                    "cdz": self.dz_dx(),
                }.items()  # fmt: skip
            }
        return self._memo["arrays"]


def _conv(ctx: Context, labels: dict) -> _ConvRef:
    config = CONV_CASES[ctx.mode][labels["case"]]
    store = _store(ctx)
    if ("conv", config) not in store:
        store[("conv", config)] = _ConvRef(config, ctx.mode, getattr(ctx, "seed", 0))
    return store[("conv", config)]


_CONV_REFS = {
    "sconv_input_tangent": lambda R: R.input_tangent(),
    "sconv_cross": lambda R: R.cross(),
    "sconv_patch_adjoint": lambda R: R.adjoint("z"),
    "sconv_input_adjoint": lambda R: R.adjoint("x"),
    "sconv_grad_bias": lambda R: R.adjoint("b"),
    "sconv_layer_curvature": lambda R: R.layer_curvature(),
}


def _register_layer(check: str, fn, ref_of) -> None:
    """A check whose reference and arrays come from the layer ``ref_of(ctx, labels)``."""

    def reference(ctx, labels):
        return _expand(_sympy(fn(ref_of(ctx, labels))))

    def lhs(ctx, form, labels):
        R = ref_of(ctx, labels)
        ref = reference(ctx, labels)
        return evaluate_form(ctx, form, labels, ref.shape, lambda _c, name: R.arrays()[name])

    register_check(check, reference, lhs)


for _check, _fn in _CONV_REFS.items():
    _register_layer(_check, _fn, _conv)


# ====================================================================== recurrent with inputs
#: (d, d_in, T): the first case of each mode is a one-step recurrence
REC_CASES = {"symbolic": [(2, 1, 1), (2, 2, 2)], "rational": [(3, 2, 1), (3, 2, 3)]}


class _RecRef:
    """``z_(t) = w v_(t-1) + U x_(t) + b``, ``v_(t) = A(z_(t))``, ``t = 1..T``, from an
    initial state ``x_0`` (a leaf, so the paper's Eqs 58-59 are the case U = 0, b = 0), with
    free activation values at every step and a free output adjoint ``vbar_(T)``.

    Adjoints come from zero-valued probes added to each ``z_(t)`` (``delta_(t)``) and each
    ``v_(t)`` (``vbar_(t)``): ``delta_(t) = vbar_(T) . dv_(T)/d probe``."""

    def __init__(self, config: tuple, mode: str, seed: int):
        d, din, T = config
        self.T = T
        vals = _Values(mode, seed * 104729 + sum(config))
        self.w, self.U = vals("w", (d, d)), vals("U", (d, din))
        self.x0, self.xs = vals("x0", (d,)), vals("xs", (T, din))
        self.v, self.a1, self.a2 = (vals(tag, (T, d)) for tag in ("v", "a1", "a2"))
        self.vbar = vals("vbar", (d,))
        self.phi, self.phiu, self.psi = (
            vals("phi", (d, d)),
            vals("phiu", (d, din)),
            vals("psi", (d,)),
        )
        self.x0dot, self.xsdot = vals("x0d", (d,)), vals("xsd", (T, din))
        self.shapes = {"w": (d, d), "U": (d, din), "b": (d,), "x0": (d,), "xs": (T, din)}
        for t_ in range(1, T + 1):
            self.shapes[("ez", t_)] = (d,)
            self.shapes[("ev", t_)] = (d,)
        self._memo: dict = {}

    def run(self, seeds, order: int = 2) -> dict:
        P, d = seeds.P, self.w.shape[0]
        W = Jet.leaf(self.w, seeds("w"), P, order)
        U = Jet.leaf(self.U, seeds("U"), P, order)
        b = Jet.leaf(_zeros((d,)), seeds("b"), P, order)
        xs = Jet.leaf(self.xs, seeds("xs"), P, order)
        v = Jet.leaf(self.x0, seeds("x0"), P, order)
        out = {("v", 0): v}
        for t_ in range(1, self.T + 1):
            x_t = xs.map(lambda a, t_=t_: a[t_ - 1])
            z = bilinear("ji,i->j", W, v) + bilinear("ji,i->j", U, x_t) + b
            z = z + Jet.leaf(_zeros((d,)), seeds(("ez", t_)), P, order)
            v = activate(z, self.v[t_ - 1], self.a1[t_ - 1], self.a2[t_ - 1])
            v = v + Jet.leaf(_zeros((d,)), seeds(("ev", t_)), P, order)
            out[("z", t_)], out[("v", t_)] = z, v
        return out

    def direction(self) -> dict:
        if "dir" not in self._memo:
            dirs = {
                "w": self.phi,
                "U": self.phiu,
                "b": self.psi,
                "x0": self.x0dot,
                "xs": self.xsdot,
            }
            self._memo["dir"] = self.run(_Seeds(self.shapes, direction=dirs))
        return self._memo["dir"]

    def adjoint(self, group) -> np.ndarray:
        """``vbar_(T) . d v_(T) / d group``."""
        seeds = _Seeds(self.shapes, [group])
        out = self.run(seeds, order=1)
        return np.einsum("m,m...->...", self.vbar, seeds.block(out[("v", self.T)].d1, group))

    def source(self) -> np.ndarray:
        """Each step's partial tangent with the state ``v_(t-1)`` held fixed."""
        P, rows = 1, []
        for t_ in range(1, self.T + 1):
            v_prev = self.x0 if t_ == 1 else self.v[t_ - 2]
            W = Jet.leaf(self.w, self.phi[..., None], P, 1)
            U = Jet.leaf(self.U, self.phiu[..., None], P, 1)
            x_t = Jet.leaf(self.xs[t_ - 1], self.xsdot[t_ - 1][..., None], P, 1)
            z = bilinear("ji,i->j", W, Jet.leaf(v_prev, None, P, 1)) + bilinear("ji,i->j", U, x_t)
            rows.append(z.d1[..., 0])
        return np.stack(rows)

    def zdot_minus_psi(self) -> np.ndarray:
        run = self.direction()
        return np.stack([run[("z", t_)].d1[..., 0] - self.psi for t_ in range(1, self.T + 1)])

    def layer_curvature(self) -> np.ndarray:
        v = self.direction()[("v", self.T)]
        return np.asarray(np.einsum("m,m->", self.vbar, v.d2[..., 0, 0]), dtype=object)

    def arrays(self) -> dict:
        if "arrays" not in self._memo:
            T = self.T
            run = self.direction()
            sv = np.stack([self.x0, *self.v[: T - 1]])
            svdot = np.stack([run[("v", t_)].d1[..., 0] for t_ in range(T)])
            szdot = np.stack([run[("z", t_)].d1[..., 0] for t_ in range(1, T + 1)])
            sdelta = np.stack([self.adjoint(("ez", t_)) for t_ in range(1, T + 1)])
            svbar = np.stack([self.adjoint(("ev", t_)) for t_ in range(1, T + 1)])
            self._memo["arrays"] = {
                name: _sympy(arr)
                for name, arr in {
                    "wr": self.w,
                    "ur": self.U,
                    "phir": self.phi,
                    "phiu": self.phiu,
                    "sx": self.xs,
                    "sxdot": self.xsdot,
                    "sv": sv,
                    "svdot": svdot,
                    "sdelta": sdelta,
                    "svbar": svbar,
                    "sa2": self.a2,
                    "szdot": szdot,
                }.items()  # fmt: skip
            }
        return self._memo["arrays"]


def _rec(ctx: Context, labels: dict) -> _RecRef:
    config = REC_CASES[ctx.mode][labels["case"]]
    store = _store(ctx)
    if ("rec", config) not in store:
        store[("rec", config)] = _RecRef(config, ctx.mode, getattr(ctx, "seed", 0))
    return store[("rec", config)]


_REC_REFS = {
    "srec_grad_w": lambda R: R.adjoint("w"),
    "srec_grad_u": lambda R: R.adjoint("U"),
    "srec_grad_b": lambda R: R.adjoint("b"),
    "srec_input_adjoint": lambda R: R.adjoint("xs"),
    "srec_source": lambda R: R.source(),
    "srec_zdot": lambda R: R.zdot_minus_psi(),
    "srec_layer_curvature": lambda R: R.layer_curvature(),
}
for _check, _fn in _REC_REFS.items():
    _register_layer(_check, _fn, _rec)
