"""A small model someone else wrote, for the optax tests: a tanh MLP with dict parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def tanh_mlp_data(seed=0, n=24, d=5, h=7, c=3):
    """``(params, x, y)``: dict parameters, a batch of ``n`` inputs and one-hot labels."""
    rng = np.random.default_rng(seed)
    params = {
        "w1": jnp.asarray(rng.normal(size=(d, h)) * 0.5),
        "b1": jnp.asarray(rng.normal(size=h)),
        "w2": jnp.asarray(rng.normal(size=(h, c)) * 0.5),
    }
    x = jnp.asarray(rng.normal(size=(n, d)))
    y = jax.nn.one_hot(rng.integers(0, c, n), c)
    return params, x, y


def tanh_mlp_loss(p, x, y):
    """The batch-mean cross-entropy of the tanh MLP."""
    logits = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"]
    return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits), axis=1))
