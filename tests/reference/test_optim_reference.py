"""Optimizer features against closed forms and optax chains: weight-decay masks, SGD with momentum and
decoupled weight decay, AdamW with a mask. Tolerance: float32 rounding, ``rtol=1e-6, atol=1e-7``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jtricks import optim as O
from jtricks import regularize as R

PARAMS = {
    "dense": {"kernel": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "bias": jnp.array([0.25, -0.5])},
    "bn": {"scale": jnp.array([1.5, 0.5])},
}


def _grads(t: int):
    """A different gradient at every step (a fixed pseudo-random pytree)."""
    return jax.tree_util.tree_map(lambda p: jax.random.normal(jax.random.key(t), p.shape), PARAMS)


def _run(tx: optax.GradientTransformation, steps: int = 4):
    params, state = PARAMS, tx.init(PARAMS)
    for t in range(steps):
        updates, state = tx.update(_grads(t), state, params)
        params = optax.apply_updates(params, updates)
    return params


def _close(a, b) -> None:
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), a, b)


def test_momentum_with_decoupled_weight_decay_closed_form_and_optax_chain() -> None:
    """SGDW: ``m <- gamma m + g``, ``theta <- theta - eta (m + lambda theta)`` (numpy) = the optax chain."""
    lr, gamma, wd = 0.1, 0.9, 0.05
    spec = O.OptimizerSpec("momentum", weight_decay=True)
    ours = _run(O.build(spec, {"learning_rate": lr, "gamma": gamma, "weight_decay": wd}))
    chain = _run(optax.chain(optax.trace(decay=gamma), optax.add_decayed_weights(wd), optax.scale(-lr)))
    theta = jax.tree_util.tree_map(lambda p: np.asarray(p, np.float64), PARAMS)
    m = jax.tree_util.tree_map(np.zeros_like, theta)
    for t in range(4):
        g = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), _grads(t))
        m = jax.tree_util.tree_map(lambda m_, g_: gamma * m_ + g_, m, g)
        theta = jax.tree_util.tree_map(lambda th, m_: th - lr * (m_ + wd * th), theta, m)
    _close(ours, chain)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), ours, theta)
    # the decay matters: without it the result differs
    plain = _run(optax.sgd(lr, momentum=gamma))
    assert not np.allclose(plain["dense"]["kernel"], ours["dense"]["kernel"], atol=1e-3)


def test_weight_decay_mask_spares_the_masked_leaves() -> None:
    """With ``weight_decay_mask=decay_mask`` only kernels decay: biases and norm scales follow plain SGD."""
    lr, wd = 0.1, 0.5
    spec = O.OptimizerSpec("sgd", weight_decay=True, weight_decay_mask=R.decay_mask)
    ours = _run(O.build(spec, {"learning_rate": lr, "weight_decay": wd}))
    ref = _run(optax.chain(optax.add_decayed_weights(wd, R.decay_mask), optax.scale(-lr)))
    _close(ours, ref)
    plain = _run(optax.sgd(lr))
    _close(
        {"b": ours["dense"]["bias"], "s": ours["bn"]["scale"]}, {"b": plain["dense"]["bias"], "s": plain["bn"]["scale"]}
    )
    assert not np.allclose(ours["dense"]["kernel"], plain["dense"]["kernel"], atol=1e-3)
    unmasked = _run(O.build(O.OptimizerSpec("sgd", weight_decay=True), {"learning_rate": lr, "weight_decay": wd}))
    assert not np.allclose(unmasked["dense"]["bias"], plain["dense"]["bias"], atol=1e-3)


def test_adamw_with_mask_matches_optax_adamw() -> None:
    ours = _run(O.adamw(0.01, weight_decay=0.3, mask=R.decay_mask))
    ref = _run(optax.adamw(0.01, weight_decay=0.3, mask=R.decay_mask))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), ours, ref)
    spec = O.OptimizerSpec("adam", weight_decay=True, weight_decay_mask=R.decay_mask)
    built = _run(O.build(spec, {**O.default_hparams(spec), "learning_rate": 0.01, "weight_decay": 0.3}))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), built, ref)
