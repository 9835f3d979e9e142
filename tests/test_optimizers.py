"""Tests for numeric.optimizers and numeric.schedules (TF1 update rules and defaults)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numeric.optimizers import (
    OPTIMIZERS,
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    apply,
    get_optimizer,
    load_state,
    save_state,
    state_from_arrays,
    state_to_arrays,
)
from numeric.schedules import Constant, ExponentialDecay, exponential_decay

# Tiny problem: two scalar parameters stored in arrays of different shapes.
PARAMS = [np.array([1.0]), np.array([[2.0]])]
G1 = [np.array([0.3]), np.array([[-2.0]])]
G2 = [np.array([0.1]), np.array([[0.5]])]


def scalars(arrays):
    """The two scalars of the tiny problem, (a, b)."""
    return float(arrays[0][0]), float(arrays[1][0, 0])


def two_steps(opt, lr):
    state = opt.init(PARAMS)
    d1, state = opt.direction(G1, state, lr)
    d2, state = opt.direction(G2, state, lr)
    return scalars(d1), scalars(d2), state


def all_optimizers():
    return [SGD(learning_rate=0.1), Adagrad(learning_rate=0.1), Adadelta(), Adam()]


# ------------------------------------------------------------- hand-computed updates


def test_sgd_two_steps_by_hand():
    d1, d2, state = two_steps(SGD(), lr=0.1)
    assert d1 == pytest.approx((-0.1 * 0.3, -0.1 * -2.0), rel=1e-15)
    assert d1 == pytest.approx((-0.03, 0.2), rel=1e-15)
    assert d2 == pytest.approx((-0.01, -0.05), rel=1e-15)
    assert state["step"] == 2


def test_adagrad_two_steps_by_hand():
    lr = 0.1
    d1, d2, state = two_steps(Adagrad(), lr=lr)
    # step 1: acc = 0.1 + g^2
    acc_a = 0.1 + 0.3**2  # 0.19
    acc_b = 0.1 + (-2.0) ** 2  # 4.1
    assert d1 == pytest.approx(
        (-lr * 0.3 / math.sqrt(acc_a), -lr * -2.0 / math.sqrt(acc_b)), rel=1e-14
    )
    assert d1 == pytest.approx((-0.06882472016116853, 0.09877295966495898), rel=1e-14)
    # step 2: acc += g^2
    acc_a = acc_a + 0.1**2  # 0.2
    acc_b = acc_b + 0.5**2  # 4.35
    assert d2 == pytest.approx(
        (-lr * 0.1 / math.sqrt(acc_a), -lr * 0.5 / math.sqrt(acc_b)), rel=1e-14
    )
    assert scalars(state["acc"]) == pytest.approx((0.2, 4.35), rel=1e-15)


@pytest.mark.parametrize("lr", [1.0, 0.001])
def test_adadelta_two_steps_by_hand(lr):
    rho, eps = 0.95, 1e-8
    d1, d2, state = two_steps(Adadelta(), lr=lr)

    def one(g, acc, acc_upd):
        acc = rho * acc + (1 - rho) * g**2
        upd = math.sqrt(acc_upd + eps) / math.sqrt(acc + eps) * g
        acc_upd = rho * acc_upd + (1 - rho) * upd**2
        return -lr * upd, acc, acc_upd

    # step 1 for a (g = 0.3): acc = 0.05 * 0.09 = 0.0045,
    # upd = sqrt(1e-8) / sqrt(0.0045 + 1e-8) * 0.3
    upd_a1 = math.sqrt(0.0 + eps) / math.sqrt(0.05 * 0.09 + eps) * 0.3
    assert d1[0] == pytest.approx(-lr * upd_a1, rel=1e-13)
    assert upd_a1 == pytest.approx(1e-4 / math.sqrt(0.00450001) * 0.3, rel=1e-13)
    # step 2 for a (g = 0.1): acc = 0.95 * 0.0045 + 0.05 * 0.01
    acc_upd_a1 = 0.05 * upd_a1**2
    upd_a2 = math.sqrt(acc_upd_a1 + eps) / math.sqrt(0.95 * 0.0045 + 0.05 * 0.01 + eps) * 0.1
    assert d2[0] == pytest.approx(-lr * upd_a2, rel=1e-13)

    # both scalars via the same explicit recursion
    da1, acc_a, au_a = one(0.3, 0.0, 0.0)
    db1, acc_b, au_b = one(-2.0, 0.0, 0.0)
    da2, acc_a, au_a = one(0.1, acc_a, au_a)
    db2, acc_b, au_b = one(0.5, acc_b, au_b)
    assert d1 == pytest.approx((da1, db1), rel=1e-13)
    assert d2 == pytest.approx((da2, db2), rel=1e-13)
    assert scalars(state["acc"]) == pytest.approx((acc_a, acc_b), rel=1e-13)
    assert scalars(state["acc_upd"]) == pytest.approx((au_a, au_b), rel=1e-13)


def test_adam_two_steps_by_hand():
    lr, b1, b2, eps = 0.001, 0.9, 0.999, 1e-8
    d1, d2, state = two_steps(Adam(), lr=lr)
    # step 1 (t = 1): m = 0.1 g, v = 0.001 g^2, lr_t = lr * sqrt(1 - 0.999) / (1 - 0.9)
    lr_t = lr * math.sqrt(1 - b2) / (1 - b1)
    m_a, v_a = 0.1 * 0.3, 0.001 * 0.3**2
    m_b, v_b = 0.1 * -2.0, 0.001 * (-2.0) ** 2
    assert d1 == pytest.approx(
        (-lr_t * m_a / (math.sqrt(v_a) + eps), -lr_t * m_b / (math.sqrt(v_b) + eps)), rel=1e-13
    )
    assert d1[0] == pytest.approx(-0.0009999989459085576, rel=1e-13)  # ~ -lr * sign(g)
    # step 2 (t = 2)
    lr_t = lr * math.sqrt(1 - b2**2) / (1 - b1**2)
    m_a, v_a = b1 * m_a + (1 - b1) * 0.1, b2 * v_a + (1 - b2) * 0.1**2
    m_b, v_b = b1 * m_b + (1 - b1) * 0.5, b2 * v_b + (1 - b2) * 0.5**2
    assert (m_a, v_a) == pytest.approx((0.037, 0.00009991), rel=1e-13)
    assert d2 == pytest.approx(
        (-lr_t * m_a / (math.sqrt(v_a) + eps), -lr_t * m_b / (math.sqrt(v_b) + eps)), rel=1e-13
    )
    assert scalars(state["m"]) == pytest.approx((m_a, m_b), rel=1e-14)
    assert scalars(state["v"]) == pytest.approx((v_a, v_b), rel=1e-14)
    assert state["step"] == 2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adagrad_matches_tf1_unit_test_values(dtype):
    # TF1's adagrad_test (testBasic): lr = 3.0, initial_accumulator_value = 0.1,
    # constant grads, three steps; TF publishes the resulting variables (computed in
    # float32, hence the float32-level tolerance TF itself uses).
    rtol = 1e-6
    opt = Adagrad(learning_rate=3.0)
    p = [np.array([1.0, 2.0], dtype=dtype), np.array([3.0, 4.0], dtype=dtype)]
    g = [np.array([0.1, 0.1], dtype=dtype), np.array([0.01, 0.01], dtype=dtype)]
    s = opt.init(p)
    for _ in range(3):
        p, s = opt.update(p, g, s)
    np.testing.assert_allclose(p[0], [-1.6026098728179932, -0.6026098728179932], rtol=rtol)
    np.testing.assert_allclose(p[1], [2.715679168701172, 3.715679168701172], rtol=rtol)


def test_tf1_defaults():
    assert get_optimizer("sgd").hyperparameters() == {"learning_rate": None}
    assert get_optimizer("adagrad").hyperparameters() == {
        "learning_rate": None,
        "initial_accumulator_value": 0.1,
    }
    assert get_optimizer("adadelta").hyperparameters() == {
        "learning_rate": 0.001,
        "rho": 0.95,
        "epsilon": 1e-8,
    }
    assert get_optimizer("Adam").hyperparameters() == {
        "learning_rate": 0.001,
        "beta1": 0.9,
        "beta2": 0.999,
        "epsilon": 1e-8,
    }
    assert set(OPTIMIZERS) == {"sgd", "adagrad", "adadelta", "adam"}
    assert isinstance(get_optimizer("adagrad", learning_rate=0.5), Adagrad)


def test_default_lr_used_when_lr_omitted():
    opt = Adam()
    s = opt.init(PARAMS)
    d_default, _ = opt.direction(G1, s)
    d_explicit, _ = opt.direction(G1, s, 0.001)
    for a, b in zip(d_default, d_explicit, strict=True):
        np.testing.assert_array_equal(a, b)
    d_ctor, _ = Adagrad(learning_rate=0.3).direction(G1, Adagrad().init(PARAMS))
    d_call, _ = Adagrad().direction(G1, Adagrad().init(PARAMS), 0.3)
    for a, b in zip(d_ctor, d_call, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------- linearity in lr


@st.composite
def grad_sequences(draw):
    shapes = [(2,), (1, 3)]
    n_steps = draw(st.integers(1, 4))
    elems = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
    seq = []
    for _ in range(n_steps):
        seq.append(
            [
                np.array(draw(st.lists(elems, min_size=int(np.prod(s)), max_size=int(np.prod(s)))))
                .reshape(s)
                .astype(np.float64)
                for s in shapes
            ]
        )
    return seq


@settings(max_examples=40, deadline=None)
@given(
    seq=grad_sequences(),
    lrs=st.lists(st.floats(0, 10, allow_nan=False), min_size=4, max_size=4),
    name=st.sampled_from(sorted(OPTIMIZERS)),
)
def test_direction_linear_in_lr_and_state_lr_free(seq, lrs, name):
    opt = get_optimizer(name)
    params = [np.zeros(g.shape) for g in seq[0]]
    s_unit = opt.init(params)
    s_lr = opt.init(params)
    for g, lr in zip(seq, lrs, strict=False):
        u, s_unit = opt.direction(g, s_unit, 1.0)
        d, s_lr = opt.direction(g, s_lr, lr)
        for di, ui in zip(d, u, strict=True):
            np.testing.assert_array_equal(di, lr * ui)  # exact: d = lr * u
        # accumulators never see lr
        a, b = state_to_arrays(s_unit), state_to_arrays(s_lr)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


@settings(max_examples=30, deadline=None)
@given(
    # |g| >= 1e-2 by construction: TF1's epsilon (1e-8, added to sqrt(v) before bias
    # correction) shortens the first step by eps / (sqrt(1 - beta2) |g|) < 1e-4 relative
    g=st.one_of(st.floats(1e-2, 1e3), st.floats(-1e3, -1e-2)),
    lr=st.floats(1e-6, 1.0),
)
def test_adam_first_step_bounded_by_lr(g, lr):
    d, _ = Adam().direction([np.array([g])], Adam().init([np.zeros(1)]), lr)
    assert abs(d[0][0]) <= lr
    assert abs(d[0][0]) == pytest.approx(lr, rel=1e-4)
    assert np.sign(d[0][0]) == -np.sign(g)


@settings(max_examples=30, deadline=None)
@given(seq=grad_sequences(), lr=st.floats(0, 5))
def test_sgd_is_minus_lr_g(seq, lr):
    opt = SGD()
    s = opt.init([np.zeros(g.shape) for g in seq[0]])
    for g in seq:
        d, s = opt.direction(g, s, lr)
        for di, gi in zip(d, g, strict=True):
            np.testing.assert_array_equal(di, lr * -gi)


# ------------------------------------------------------------ state and apply


def test_direction_does_not_mutate_state_or_grads():
    for opt in all_optimizers():
        s0 = opt.init(PARAMS)
        snapshot = {k: np.array(v, copy=True) for k, v in state_to_arrays(s0).items()}
        g = [a.copy() for a in G1]
        opt.direction(g, s0)
        after = state_to_arrays(s0)
        assert snapshot.keys() == after.keys()
        for k in snapshot:
            np.testing.assert_array_equal(snapshot[k], after[k])
        for a, b in zip(g, G1, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_state_roundtrip_npz_continues_identically(tmp_path, name, dtype):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((3,)).astype(dtype), rng.standard_normal((2, 2)).astype(dtype)]
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in params] for _ in range(5)]
    opt = get_optimizer(name, learning_rate=0.05)

    def run(p, s, gs):
        for g in gs:
            p, s = opt.update(p, g, s)
        return p, s

    p_ref, s_ref = run(params, opt.init(params), grads)

    p_mid, s_mid = run(params, opt.init(params), grads[:3])
    path = tmp_path / "state.npz"
    save_state(path, s_mid)
    np.savez(tmp_path / "params.npz", *p_mid)
    s_loaded = load_state(path)
    with np.load(tmp_path / "params.npz") as f:
        p_loaded = [f[f"arr_{i}"] for i in range(len(p_mid))]
    assert isinstance(s_loaded["step"], int) and s_loaded["step"] == 3
    assert sorted(s_loaded) == sorted(s_mid)
    p_end, s_end = run(p_loaded, s_loaded, grads[3:])

    for a, b in zip(p_end, p_ref, strict=True):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
    ra, rb = state_to_arrays(s_end), state_to_arrays(s_ref)
    assert ra.keys() == rb.keys()
    for k in ra:
        assert ra[k].dtype == rb[k].dtype
        np.testing.assert_array_equal(ra[k], rb[k])


def test_state_arrays_plain_npz_roundtrip(tmp_path):
    s = Adam().init(PARAMS)
    _, s = Adam().direction(G1, s)
    np.savez(tmp_path / "s.npz", **state_to_arrays(s))
    with np.load(tmp_path / "s.npz") as f:
        back = state_from_arrays(f)
    assert back["step"] == 1 and len(back["m"]) == 2
    np.testing.assert_array_equal(back["v"][1], s["v"][1])
    assert state_from_arrays(state_to_arrays({"x": 1.5, "n": 2})) == {"x": 1.5, "n": 2}


def test_apply_and_update():
    d = [np.array([0.5]), np.array([[-1.0]])]
    assert scalars(apply(PARAMS, d)) == (1.5, 1.0)
    assert scalars(apply(PARAMS, d, scale=2.0)) == (2.0, 0.0)
    opt = Adagrad(learning_rate=0.1)
    new, _ = opt.update(PARAMS, G1, opt.init(PARAMS))
    dd, _ = opt.direction(G1, opt.init(PARAMS))
    assert scalars(new) == pytest.approx((1.0 + scalars(dd)[0], 2.0 + scalars(dd)[1]))
    assert scalars(PARAMS) == (1.0, 2.0)  # inputs untouched


def test_float32_dtype_preserved():
    p32 = [p.astype(np.float32) for p in PARAMS]
    for opt in all_optimizers():
        s = opt.init(p32)
        d, s = opt.direction(G1, s)  # float64 grads are cast to the state dtype
        assert all(x.dtype == np.float32 for x in d) or opt.name == "sgd"
        assert all(x.dtype == np.float32 for x in apply(p32, d))
        for v in s.values():
            if isinstance(v, list) and v and v[0].dtype.kind == "f":
                assert all(x.dtype == np.float32 for x in v)


def test_zero_dim_and_empty_params_stay_arrays():
    p = [np.array(1.0), np.zeros((0, 3))]
    g = [np.array(0.5), np.zeros((0, 3))]
    for opt in all_optimizers():
        s = opt.init(p)
        d, s = opt.direction(g, s)
        assert [x.shape for x in d] == [(), (0, 3)]
        assert all(isinstance(x, np.ndarray) for x in d + apply(p, d))
        back = state_from_arrays(state_to_arrays(s))
        d2, _ = opt.direction(g, back)
        assert all(
            isinstance(x, np.ndarray) for v in back.values() if isinstance(v, list) for x in v
        )
        assert d2[0].shape == ()


def test_minimizes_quadratic():
    # Adadelta with eps = 1e-8 starts with steps of about sqrt(eps) = 1e-4 and only
    # slowly grows them, so it gets a looser target.
    cases = [(SGD(), 0.1, 0.5), (Adagrad(), 0.5, 0.5), (Adadelta(), 1.0, 2.9), (Adam(), 0.05, 0.5)]
    for opt, lr, target in cases:
        p = [np.array([3.0, -2.0]), np.array([[1.0]])]
        s = opt.init(p)
        for _ in range(300):
            p, s = opt.update(p, [x.copy() for x in p], s, lr)  # grad of 0.5 |p|^2
        assert max(float(np.abs(x).max()) for x in p) < target, opt.name


# ----------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "hyper"),
    [
        ("rmsprop", {}),
        ("", {}),
        ("adam", {"beta3": 0.5}),
        ("adam", {"rho": 0.5}),
        ("sgd", {"learning_rate": -0.1}),
        ("adam", {"learning_rate": float("nan")}),
        ("adadelta", {"rho": 0.0}),
        ("adadelta", {"rho": 1.0}),
        ("adadelta", {"rho": 1.5}),
        ("adadelta", {"rho": -0.1}),
        ("adadelta", {"epsilon": 0.0}),
        ("adam", {"beta1": 1.0}),
        ("adam", {"beta2": -0.1}),
        ("adam", {"epsilon": -1e-8}),
        ("adagrad", {"initial_accumulator_value": 0.0}),
        ("adagrad", {"initial_accumulator_value": "0.1"}),
    ],
)
def test_bad_optimizer_or_hyperparameters(name, hyper):
    with pytest.raises(ValueError):
        get_optimizer(name, **hyper)


def test_bad_lr_in_direction():
    for opt in all_optimizers():
        s = opt.init(PARAMS)
        for bad in (-1.0, float("nan"), float("inf"), "0.1"):
            with pytest.raises(ValueError, match="lr"):
                opt.direction(G1, s, bad)
    with pytest.raises(ValueError, match="learning rate"):
        SGD().direction(G1, SGD().init(PARAMS))
    with pytest.raises(ValueError, match="learning rate"):
        Adagrad().direction(G1, Adagrad().init(PARAMS))


@pytest.mark.parametrize(
    "grads",
    [
        [np.array([0.3])],  # too few
        [np.array([0.3]), np.array([[1.0]]), np.array([1.0])],  # too many
        [np.array([0.3, 0.1]), np.array([[1.0]])],  # wrong shape
        [np.array([0.3]), np.array([1.0])],  # wrong shape (ndim)
        [np.array([np.nan]), np.array([[1.0]])],
        [np.array([0.3]), np.array([[np.inf]])],
        [np.array([0.3]), np.array([[-np.inf]])],
        np.array([0.3, 1.0]),  # not a list
    ],
)
def test_bad_grads(grads):
    for opt in all_optimizers():
        with pytest.raises(ValueError):
            opt.direction(grads, opt.init(PARAMS))


def test_bad_params_and_state():
    with pytest.raises(ValueError):
        Adam().init([])
    with pytest.raises(ValueError):
        Adam().init(np.zeros(3))
    with pytest.raises(ValueError, match="state"):
        Adam().direction(G1, SGD().init(PARAMS))  # no moments in an SGD state
    with pytest.raises(ValueError, match="state"):
        Adam().direction(G1, {})
    with pytest.raises(ValueError):
        apply(PARAMS, [np.array([1.0])])
    with pytest.raises(ValueError):
        apply(PARAMS, G1, scale=float("nan"))
    with pytest.raises(ValueError):
        state_from_arrays({"a.0": np.zeros(1), "a.2": np.zeros(1)})


# -------------------------------------------------------------------- schedules


def test_exponential_decay_values():
    lr0 = 0.1
    assert exponential_decay(lr0, 0) == lr0
    assert exponential_decay(lr0, 100) == pytest.approx(lr0 * 0.95, rel=1e-15)
    assert exponential_decay(lr0, 250) == pytest.approx(lr0 * 0.95**2.5, rel=1e-15)
    assert exponential_decay(lr0, 250) == pytest.approx(0.08796481896190089, rel=1e-12)
    # staircase: exponent floor(step / 100)
    assert exponential_decay(lr0, 99, staircase=True) == lr0
    assert exponential_decay(lr0, 250, staircase=True) == pytest.approx(lr0 * 0.95**2, rel=1e-15)
    sched = ExponentialDecay(lr0)
    assert [sched(s) for s in (0, 100, 250)] == [exponential_decay(lr0, s) for s in (0, 100, 250)]
    assert ExponentialDecay(1.0, decay_steps=10, decay_rate=0.5)(20) == pytest.approx(0.25)
    assert ExponentialDecay(lr0, staircase=True)(250) == exponential_decay(lr0, 250, staircase=True)
    assert Constant(0.3)(1234) == 0.3


def test_schedule_feeds_optimizer():
    sched = ExponentialDecay(0.01)
    opt = Adam()
    s = opt.init(PARAMS)
    u, _ = opt.direction(G1, s, 1.0)
    d, s = opt.direction(G1, s, sched(s["step"]))
    np.testing.assert_array_equal(d[0], 0.01 * u[0])


@pytest.mark.parametrize(
    "args",
    [
        (0.1, -1),
        (0.1, float("nan")),
        (-0.1, 10),
        (0.1, 10, 0),
        (0.1, 10, 100, 0.0),
        (0.1, 10, 100, -0.5),
    ],
)
def test_exponential_decay_errors(args):
    with pytest.raises(ValueError):
        exponential_decay(*args)


def test_schedule_constructor_errors():
    with pytest.raises(ValueError):
        ExponentialDecay(-1.0)
    with pytest.raises(ValueError):
        ExponentialDecay(0.1, decay_steps=0)
    with pytest.raises(ValueError):
        Constant(float("inf"))
    with pytest.raises(ValueError):
        ExponentialDecay(0.1)(-5)
