"""The JAX backend runs the same layers, kernels and CR rules as NumPy, under jax.jit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from numeric import jax_backend as jb  # noqa: E402
from numeric.cr import CR, Baseline  # noqa: E402
from numeric.network import Network  # noqa: E402
from numeric.optimizers import SGD, Adadelta, Adagrad, Adam  # noqa: E402

jb.enable_x64()

METHODS = {
    "cr-sgd": lambda: CR(SGD(), sigma=100.0, lr=0.02),
    "cr-adam": lambda: CR(Adam(), sigma=1000.0),
    "cr-adagrad": lambda: CR(Adagrad(), sigma=1000.0, lr=0.1),
    "cr-adadelta": lambda: CR(Adadelta(), sigma=1000.0, lr=1.0),
    "cr-sgd-alpha-g": lambda: CR(SGD(), sigma=100.0, lr=0.02, averaging="alpha-g"),
    "cr-sgd-mean-alpha": lambda: CR(SGD(), sigma=100.0, lr=0.02, averaging="mean-alpha"),
    "sgd": lambda: Baseline(SGD(), lr=0.02),
}


def _data(seed=0, n=96, d=20, classes=4):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, d)), rng.integers(0, classes, n)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_numpy_and_jax_agree_for_100_iterations(name, activation):
    """Same seed, float64: losses, step lengths and every logged quantity to 1e-10."""
    x, y = _data()
    net = Network.create(20, [12, 12, 12], 4, init="plateau", seed=3, activation=activation)
    method = METHODS[name]()
    a_net, a_state = net, method.init(net)
    b_net, b_state = jb.to_jax(net), method.init(net)
    rng = np.random.default_rng(5)
    for _ in range(100):
        rows = rng.integers(0, len(y), 16)
        a_net, a_state, a = method.step(a_net, a_state, x[rows], y[rows])
        b_net, b_state, b = method.step(b_net, b_state, x[rows], y[rows])
        assert a.flag == b.flag
        for field in ("loss", "alpha", "lr_eff", "dgrad", "dhd", "dnorm"):
            va, vb = getattr(a, field), getattr(b, field)
            if np.isnan(va):
                assert np.isnan(vb)
            else:
                assert vb == pytest.approx(va, rel=1e-10, abs=1e-300), field
    for pa, pb in zip(a_net.params, b_net.params, strict=True):
        np.testing.assert_allclose(np.asarray(pb), pa, rtol=1e-9, atol=1e-12)


def test_jax_step_keeps_dtype_and_refuses_float64_without_x64():
    net = Network.create(6, [5], 3, seed=0, dtype=np.float32)
    jnet = jb.to_jax(net)
    method = CR(SGD(), sigma=10.0)
    x, y = _data(d=6, classes=3)
    new, _, info = method.step(jnet, method.init(net), x[:8], y[:8])
    assert all(p.dtype == np.float32 for p in new.params) and np.isfinite(info.alpha)
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(ValueError, match="enable_x64"):
            jb.to_jax(Network.create(6, [5], 3, seed=0))
    finally:
        jb.enable_x64()


def test_sharded_batch_gives_the_single_device_step():
    """1, 2 and 4 (forced host) devices: the same alpha and loss to 1e-12 relative."""
    code = textwrap.dedent(
        """
        import numpy as np
        from numeric import jax_backend as jb
        jb.enable_x64()
        from numeric.network import Network
        from numeric.optimizers import SGD, Adam
        from numeric.cr import CR
        rng = np.random.default_rng(0)
        x = rng.random((64, 30)); y = rng.integers(0, 5, 64)
        out = {}
        for opt in (SGD(), Adam()):
            for nd in (1, 2, 4):
                sh = jb.batch_sharding(nd)
                net = jb.replicate(jb.to_jax(Network.create(30, [16] * 3, 5, seed=0)), sh)
                m = CR(opt, sigma=100.0, lr=0.02)
                st = m.init(net)
                r = np.random.default_rng(1)
                rows = []
                for _ in range(20):
                    idx = r.integers(0, 64, 16)
                    net, st, info = jb.step(m, net, st, x[idx], y[idx], sharding=sh)
                    rows.append((info.loss, info.alpha, info.dhd))
                out[(opt.name, nd)] = np.array(rows)
            for nd in (2, 4):
                a, b = out[(opt.name, 1)], out[(opt.name, nd)]
                err = np.max(np.abs(a - b) / np.abs(a))
                assert err < 1e-12, (opt.name, nd, err)
        print("ok")
        """
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]


def test_batch_sharding_validates_device_counts():
    with pytest.raises(ValueError, match="devices"):
        jb.batch_sharding(len(jax.local_devices()) + 1)
    assert jb.batch_sharding(1) is None


def test_count_collectives_reads_tuples_and_async_starts():
    from verify.collectives import count_collectives

    text = "\n".join(
        [
            "%a = f32[32,128]{1,0} all-gather(%p), dimensions={0}",
            "%b = (f32[128,784]{1,0}, f32[10]{0}, f32[]) all-reduce(%x, %y, %z), to_apply=%sum",
            "%c = (f32[4,8]{1,0}, f32[16,8]{1,0}) all-gather-start(%q)",
            "%d = f32[16,8]{1,0} all-gather-done(%c)",
            "%e = f32[8,8]{1,0} dot(%a, %b)",
        ]
    )
    found = count_collectives(text)
    assert found.ops == {"all-gather": 2, "all-reduce": 1}
    assert found.total("all-gather") == 32 * 128 + (4 * 8 + 16 * 8) // 2
    assert found.total("all-reduce") == 128 * 784 + 10 + 1


def test_sharded_steps_move_the_gradient_and_cr_over_adam_little_more():
    """4 forced host devices: every step all-reduces the gradient; CR over a general
    direction (the tangent sweep on the replicated direction) adds per-sample reductions
    only, a few percent of the gradient (``python -m verify.collectives`` at 12x128)."""
    code = textwrap.dedent(
        """
        from verify.collectives import step_collectives
        sgd, weights = step_collectives("sgd", 4, widths=(16, 16, 16), batch=16)
        adam, _ = step_collectives("cr-adam", 4, widths=(16, 16, 16), batch=16)
        assert sgd.total("all-reduce") >= weights, (sgd, weights)
        moved = lambda c: sum(c.elements.values())
        assert moved(adam) <= 1.1 * moved(sgd), (adam, sgd)
        print("ok")
        """
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]
