"""Resume identity for every training method: a run interrupted after ``K`` of ``N`` steps
and resumed from its checkpoint records the same metric rows (every column but the wall
times), ends at the same weights and holds the same optimizer state, leaf by leaf with its
dtype, as the run that was never interrupted: bit for bit.

One table (:data:`METHODS`) names every method of ``lowrank train``: the project's
optimizers plain and with CR, each CR variant and averaging, on both backends, every optax
baseline (JAX backend); kfac-jax (the ``reproduce compare`` peer, not a ``lowrank train``
method) round-trips its state through the same named arrays.

Each JAX run starts the way a new process does, with JAX's float64 off: the state an optax
method makes before float64 is on, and a checkpoint's leaves cast to such a state's
dtypes, are what made resumed float64 runs differ.
"""

from __future__ import annotations

import numpy as np
import pytest

from numeric.optimizers import OPTIMIZERS
from numeric.training.checkpoints import _read_arrays, latest_checkpoint
from numeric.training.runs import resume, train
from tests.test_training import DATA, Interrupt, same_trajectory, tiny

N, K = 6, 3  # steps of a run; the interrupted run stops after K of them

#: the project's optimizers plain and with the paper's CR
_BASES = {
    **{name: dict(optimizer=name, lr=lr) for name, lr in
       (("sgd", 0.05), ("adagrad", 0.1), ("adadelta", 1.0), ("adam", 0.01))},
    **{f"{name}-cr": dict(optimizer=name, lr=lr, cr=True, sigma=sigma) for name, lr, sigma in
       (("sgd", 0.05, 10.0), ("adagrad", 0.1, 1000.0), ("adadelta", 1.0, 1000.0),
        ("adam", 0.01, 1000.0))},
}  # fmt: skip
#: CR's step-length rules, its step-length reuse and averagings, each on one base
_CR = {
    "adam-cr-adaptive": dict(optimizer="adam", lr=0.01, cr=True, sigma=100.0,
                             cr_variant="adaptive"),
    "adagrad-cr-scale-invariant": dict(optimizer="adagrad", lr=0.1, cr=True, sigma=1000.0,
                                       cr_variant="scale-invariant"),
    "sgd-cr-per-layer": dict(optimizer="sgd", lr=0.05, cr=True, sigma=10.0,
                             cr_variant="per-layer"),
    "sgd-cr-per-variable": dict(optimizer="sgd", lr=0.05, cr=True, sigma=10.0,
                                cr_variant="per-variable"),
    "sgd-cr-output-trust": dict(optimizer="sgd", lr=0.05, cr=True, sigma=10.0,
                                cr_variant="output-trust"),
    "adam-cr-every-2": dict(optimizer="adam", lr=0.01, cr=True, sigma=1000.0, cr_every=2),
    "sgd-cr-mean-alpha": dict(optimizer="sgd", lr=0.05, cr=True, sigma=10.0,
                              averaging="mean-alpha"),
    "sgd-cr-alpha-g": dict(optimizer="sgd", lr=0.05, cr=True, sigma=10.0, averaging="alpha-g"),
}  # fmt: skip

#: name -> TrainConfig fields (besides tiny()'s); the optax baselines take their own rates
METHODS: dict[str, dict] = {
    **{f"{name}-{backend}": dict(spec, backend=backend)
       for name, spec in {**_BASES, **_CR}.items() for backend in ("numpy", "jax")},
    **{name: dict(optimizer=name, lr=None, sigma=None, backend="jax")
       for name in ("prodigy", "dadapt_adamw", "dog", "schedule_free_adamw",
                    "schedule_free_sgd", "momo", "linesearch", "sophia")},
    "adagrad-cr-numpy-float32": dict(optimizer="adagrad", lr=0.1, cr=True, sigma=1000.0,
                                     dtype="float32"),
    "adam-cr-jax-float32": dict(optimizer="adam", lr=0.01, cr=True, sigma=1000.0,
                                backend="jax", dtype="float32"),
    "prodigy-float32": dict(optimizer="prodigy", lr=None, sigma=None, backend="jax",
                            dtype="float32"),
}  # fmt: skip


def test_the_table_names_every_method():
    """Every optimizer of ``lowrank train`` (and each CR variant) has a cell."""
    from numeric.rules import VARIANTS

    trained = {(c["optimizer"], c.get("cr", False), c.get("backend")) for c in METHODS.values()}
    for name in OPTIMIZERS:
        for cr in (False, True):
            for backend in ("numpy", "jax"):
                assert (name, cr, backend) in trained
    pytest.importorskip("optax")
    from numeric.optax_methods import BASELINES

    assert set(BASELINES) <= {c["optimizer"] for c in METHODS.values()}
    variants = {c.get("cr_variant", "paper") for c in METHODS.values() if c.get("cr")}
    assert variants == set(VARIANTS)
    assert {c.get("averaging") for c in METHODS.values()} >= {"mean-alpha", "alpha-g"}


@pytest.fixture
def fresh_jax():
    """Run a call as a new process would: JAX's float64 off until the run turns it on."""
    jax = pytest.importorskip("jax")
    pytest.importorskip("optax")
    before = bool(jax.config.jax_enable_x64)

    def call(fn, *args, **kwargs):
        jax.config.update("jax_enable_x64", False)
        return fn(*args, **kwargs)

    yield call
    jax.config.update("jax_enable_x64", before)


def _final_state(run_dir) -> dict[str, np.ndarray]:
    arrays = _read_arrays(latest_checkpoint(run_dir))
    return {k: v for k, v in arrays.items() if k.startswith(("opt/", "net/"))}


@pytest.mark.parametrize("name", list(METHODS))
def test_resume_is_bit_identical(tmp_path, request, name):
    spec = METHODS[name]
    call = request.getfixturevalue("fresh_jax") if spec.get("backend") == "jax" else None
    call = call or (lambda fn, *a, **kw: fn(*a, **kw))
    cfg = tiny(iterations=N, checkpoint_every=N, **spec)
    full = call(train, cfg, tmp_path / "full", dataset=DATA, progress=False, log=None)
    part = call(train, cfg, tmp_path / "part", dataset=DATA, progress=False, log=None,
                callback=Interrupt(K - 1))  # fmt: skip
    assert part.status == "interrupted" and part.iterations_done == K
    done = call(resume, tmp_path / "part", dataset=DATA, progress=False, log=None)
    assert full.status == done.status == "completed" and done.iterations_done == N
    same_trajectory(tmp_path / "full", tmp_path / "part")
    dtype = np.dtype(cfg.dtype)
    for a, b in zip(full.network.params, done.network.params, strict=True):
        assert np.asarray(a).dtype == np.asarray(b).dtype == dtype
        assert np.array_equal(np.asarray(a), np.asarray(b))
    # the optimizer state at the end: the same leaves, dtypes and bits
    ends = _final_state(tmp_path / "full"), _final_state(tmp_path / "part")
    assert sorted(ends[0]) == sorted(ends[1])
    for key, a in ends[0].items():
        b = ends[1][key]
        assert a.dtype == b.dtype and a.shape == b.shape, key
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), key
        if a.dtype.kind == "f":  # a float64 run keeps a float64 state (float32: float32)
            assert a.dtype == dtype, key


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kfac_state_round_trip_resumes_bit_identically(tmp_path, fresh_jax, dtype):
    """kfac-jax (no ``lowrank train`` method): ``N`` steps against ``K`` steps, the state
    written with ``np.savez`` and read into a new method object, then ``N - K`` more."""
    pytest.importorskip("kfac_jax")
    import jax

    from numeric.network import Network
    from verify.peers import KfacMethod

    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-0.5, 0.5, s).astype(dtype) for s in ((6, 12), (5, 6))]
    start = Network.mlp(weights, rng.uniform(-0.5, 0.5, (4, 5)).astype(dtype))
    batches = [rng.integers(0, len(DATA.labels), 8) for _ in range(N)]

    def steps(method, net, state, todo):
        infos = []
        for idx in todo:
            net, state, info = method.step(net, state, DATA.x[idx], DATA.labels[idx])
            infos.append(info)
        return net, state, infos

    method = KfacMethod(start.layers, seed=3)
    full, full_state, full_infos = steps(method, start, method.init(start), batches)

    first = KfacMethod(start.layers, seed=3)
    net, state, infos = steps(first, start, first.init(start), batches[:K])
    np.savez(tmp_path / "kfac.npz", **first.state_to_arrays(state))
    with np.load(tmp_path / "kfac.npz") as f:
        saved = dict(f)
    assert any(a.dtype == np.dtype(dtype) for a in saved.values())
    again = KfacMethod(start.layers, seed=3)
    restored = again.state_from_arrays(saved, net, batch_size=8)
    assert restored.step == K
    net, state, rest = steps(again, net, restored, batches[K:])

    numbers = [[np.array(i[:-1]) for i in run] for run in (infos + rest, full_infos)]
    assert np.array_equal(*numbers, equal_nan=True)
    assert [i.flag for i in infos + rest] == [i.flag for i in full_infos]
    for a, b in zip(full.params, net.params, strict=True):
        assert a.dtype == b.dtype == np.dtype(dtype) and np.array_equal(a, b)
    ends = first.state_to_arrays(full_state), again.state_to_arrays(state)
    assert sorted(ends[0]) == sorted(ends[1])
    for key, a in ends[0].items():
        assert a.dtype == ends[1][key].dtype and np.array_equal(a, ends[1][key]), key


def test_optax_state_leaves_keep_their_saved_dtype_and_shape(fresh_jax):
    """A leaf comes back with the dtype it was saved with, whatever the template's; a
    leaf of another shape, or another number of leaves, is refused."""
    import jax
    import optax

    from numeric.optax_state import state_from_arrays, state_to_arrays

    jax.config.update("jax_enable_x64", True)
    params = [np.ones((3, 2)), np.ones(2)]
    tx = optax.contrib.schedule_free_adamw(learning_rate=0.1)
    state = tx.init([p.astype(np.float32) for p in params])  # as made before float64 was on
    template = tx.init(params)  # all float64
    saved = state_to_arrays({"opt": state, "step": 7})
    back = state_from_arrays(saved, {"opt": template, "step": 0})
    assert back["step"] == 7 and type(back["step"]) is int
    leaves, ref = jax.tree_util.tree_leaves(back["opt"]), jax.tree_util.tree_leaves(state)
    assert {a.dtype for a in ref} >= {np.dtype(np.float32)}
    for a, b in zip(leaves, ref, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    wrong = dict(saved, **{"leaf.0": np.zeros(4)})
    with pytest.raises(ValueError, match="shape"):
        state_from_arrays(wrong, {"opt": template, "step": 0})
    with pytest.raises(ValueError, match="leaves"):
        state_from_arrays({k: v for k, v in saved.items() if k != "leaf.0"}, template)
