"""Tests for jtricks.optim: optimizers vs optax and closed forms, clipping, schedules, builder, errors."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks import optim as O

# ----------------------------------------------------------------------------------------------
# a small separable quadratic  L(theta) = 0.5 * sum_leaves sum a * (theta - c)^2,  grad = a (theta - c)
# The data are passed as arguments (not closed-over constants) so XLA cannot fold them.
# ----------------------------------------------------------------------------------------------

_RNG = np.random.default_rng(0)
DATA = {
    "w": (
        jnp.asarray(_RNG.uniform(0.3, 3.0, size=(4,)), jnp.float32),
        jnp.asarray(_RNG.normal(size=(4,)), jnp.float32),
    ),
    "k": (
        jnp.asarray(_RNG.uniform(0.3, 3.0, size=(3, 2)), jnp.float32),
        jnp.asarray(_RNG.normal(size=(3, 2)), jnp.float32),
    ),
}
P0 = {"w": jnp.full((4,), 1.5, jnp.float32), "k": jnp.full((3, 2), -1.0, jnp.float32)}


def _grad(params: dict, data: dict) -> dict:
    return {k: data[k][0] * (params[k] - data[k][1]) for k in params}


def _trajectory(opt: optax.GradientTransformation, n: int, data: dict = DATA) -> dict:
    """Parameters after each of n steps (stacked along axis 0), jitted."""

    def run(data: dict) -> dict:
        def body(carry: Any, _: Any) -> Any:
            p, s = carry
            u, s = opt.update(_grad(p, data), s, p)
            p = optax.apply_updates(p, u)
            return (p, s), p

        (_, _), ps = jax.lax.scan(body, (P0, opt.init(P0)), None, length=n)
        return ps

    return jax.jit(run)(data)


def _assert_tree_allclose(a: Any, b: Any, rtol: float, atol: float) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def _assert_tree_equal(a: Any, b: Any) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ----------------------------------------------------------------------------------------------
# optimizers vs optax's own implementations
# ----------------------------------------------------------------------------------------------

_PER_EPOCH = O.per_epoch_decay(0.05, 0.9, steps_per_epoch=5)
_OPTAX_PER_EPOCH = optax.exponential_decay(0.05, 5, 0.9, staircase=True)

OPTAX_PAIRS: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
    "sgd": (lambda: O.sgd(0.1), lambda: optax.sgd(0.1)),
    "momentum": (lambda: O.momentum(0.05, 0.9), lambda: optax.sgd(0.05, momentum=0.9)),
    "nesterov": (lambda: O.nesterov(0.05, 0.8), lambda: optax.sgd(0.05, 0.8, nesterov=True)),
    "adagrad": (lambda: O.adagrad(0.3), lambda: optax.adagrad(0.3)),
    "rmsprop": (lambda: O.rmsprop(0.01, 0.9, 1e-8), lambda: optax.rmsprop(0.01, 0.9, 1e-8)),
    "rmsprop_torch_eps": (
        lambda: O.rmsprop(0.01, 0.99, 1e-8, eps_in_sqrt=False),
        lambda: optax.rmsprop(0.01, 0.99, 1e-8, eps_in_sqrt=False),
    ),
    "adam": (lambda: O.adam(0.05), lambda: optax.adam(0.05)),
    "adam_b": (lambda: O.adam(0.05, 0.8, 0.99, 1e-6), lambda: optax.adam(0.05, 0.8, 0.99, 1e-6)),
    "adamw": (
        lambda: O.adamw(0.05, weight_decay=0.1),
        lambda: optax.adamw(0.05, weight_decay=0.1),
    ),
    "normalized_sgd": (
        lambda: O.normalized_sgd(0.05),
        lambda: optax.chain(
            optax.normalize_by_update_norm(1.0, eps=O.NORMALIZED_SGD_EPS), optax.scale_by_learning_rate(0.05)
        ),
    ),
    "momentum_schedule": (
        lambda: O.momentum(_PER_EPOCH, 0.9),
        lambda: optax.sgd(_OPTAX_PER_EPOCH, momentum=0.9),
    ),
    "adam_schedule_clip": (
        lambda: O.chain(O.clip_by_global_norm(0.5), O.adam(O.cosine_decay(0.1, 30, alpha=0.1))),
        lambda: optax.chain(
            optax.clip_by_global_norm(0.5), optax.adam(optax.cosine_decay_schedule(0.1, 30, alpha=0.1))
        ),
    ),
    "sgd_clip": (
        lambda: O.chain(O.clip_by_global_norm(1.0), O.sgd(0.1)),
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1)),
    ),
}


@pytest.mark.parametrize("name", sorted(OPTAX_PAIRS))
def test_optimizer_matches_optax(name: str) -> None:
    ours, ref = OPTAX_PAIRS[name]
    a = _trajectory(ours(), 60)
    b = _trajectory(ref(), 60)
    # sanity: the run moves and does not blow up
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(a))
    assert not np.allclose(np.asarray(a["w"][-1]), np.asarray(P0["w"]))
    _assert_tree_allclose(a, b, rtol=1e-6, atol=1e-6)  # parameters are O(1)


def test_wrapped_optimizers_are_optax_exactly() -> None:
    """sgd / momentum / adagrad / rmsprop are optax's own objects: bit-identical trajectories."""
    for ours, ref in [
        (O.sgd(0.1), optax.sgd(0.1)),
        (O.momentum(0.05, 0.9), optax.sgd(0.05, momentum=0.9)),
        (O.adagrad(0.3), optax.adagrad(0.3)),
    ]:
        _assert_tree_equal(_trajectory(ours, 30), _trajectory(ref, 30))


# ----------------------------------------------------------------------------------------------
# closed forms in numpy
# ----------------------------------------------------------------------------------------------


def _np_grad(p: dict) -> dict:
    return {k: np.asarray(DATA[k][0]) * (p[k] - np.asarray(DATA[k][1])) for k in p}


def test_momentum_matches_guide_closed_form_constant_lr() -> None:
    """Guide: v = gamma v - eta g; theta += v. Same iteration as optax's m = gamma m + g, theta -= eta m."""
    eta, gamma, n = np.float32(0.05), np.float32(0.9), 60
    p = {k: np.asarray(v) for k, v in P0.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    ref = []
    for _ in range(n):
        g = _np_grad(p)
        v = {k: gamma * v[k] - eta * g[k] for k in p}
        p = {k: p[k] + v[k] for k in p}
        ref.append(p)
    got = _trajectory(O.momentum(float(eta), float(gamma)), n)
    for t in range(n):
        for k in p:
            np.testing.assert_allclose(np.asarray(got[k][t]), ref[t][k], rtol=2e-5, atol=2e-6)


def test_momentum_with_schedule_follows_torch_not_guide() -> None:
    """With a changing eta the lr multiplies the whole accumulated m (torch/optax), unlike the guide's v."""
    gamma, n, spe = np.float32(0.9), 12, 3
    sched = O.per_epoch_decay(0.1, 0.5, steps_per_epoch=spe)
    etas = [np.float32(0.1 * 0.5 ** (t // spe)) for t in range(n)]
    p_t = {k: np.asarray(v) for k, v in P0.items()}  # torch / optax convention
    m = {k: np.zeros_like(x) for k, x in p_t.items()}
    p_g = dict(p_t)  # guide convention
    v = {k: np.zeros_like(x) for k, x in p_g.items()}
    torch_traj, guide_traj = [], []
    for t in range(n):
        g = _np_grad(p_t)
        m = {k: g[k] + gamma * m[k] for k in p_t}
        p_t = {k: p_t[k] - etas[t] * m[k] for k in p_t}
        torch_traj.append(p_t)
        gg = _np_grad(p_g)
        v = {k: gamma * v[k] - etas[t] * gg[k] for k in p_g}
        p_g = {k: p_g[k] + v[k] for k in p_g}
        guide_traj.append(p_g)
    got = _trajectory(O.momentum(sched, float(gamma)), n)
    np.testing.assert_allclose(np.asarray(got["w"][-1]), torch_traj[-1]["w"], rtol=2e-5, atol=2e-6)
    # the guide's form differs once eta has changed (and only then)
    np.testing.assert_allclose(guide_traj[spe - 1]["w"], torch_traj[spe - 1]["w"], rtol=2e-5, atol=2e-6)
    assert np.max(np.abs(guide_traj[-1]["w"] - torch_traj[-1]["w"])) > 1e-3


def test_normalized_sgd_closed_form_global_norm() -> None:
    eta, n = np.float32(0.05), 40
    eps = np.float32(O.NORMALIZED_SGD_EPS)
    p = {k: np.asarray(v) for k, v in P0.items()}
    ref = []
    for _ in range(n):
        g = _np_grad(p)
        norm = np.sqrt(sum(np.sum(x.astype(np.float64) ** 2) for x in g.values()))  # ONE global norm
        p = {k: p[k] - eta * g[k] / np.float32(norm + eps) for k in p}
        ref.append(p)
    got = _trajectory(O.normalized_sgd(float(eta)), n)
    for t in range(n):
        for k in p:
            np.testing.assert_allclose(np.asarray(got[k][t]), ref[t][k], rtol=1e-5, atol=1e-6)
    # each step has length eta (as long as the gradient is not tiny)
    steps = [
        np.sqrt(sum(np.sum((np.asarray(got[k][t + 1]) - np.asarray(got[k][t])) ** 2) for k in p)) for t in range(5)
    ]
    np.testing.assert_allclose(steps, float(eta), rtol=1e-5)


def test_normalized_sgd_zero_gradient_gives_zero_step() -> None:
    opt = O.normalized_sgd(0.1)
    zeros = jax.tree.map(jnp.zeros_like, P0)
    u, _ = jax.jit(opt.update)(zeros, opt.init(P0), P0)
    for leaf in jax.tree.leaves(u):
        assert np.all(np.asarray(leaf) == 0.0)


# ----------------------------------------------------------------------------------------------
# clipping
# ----------------------------------------------------------------------------------------------


def _global_norm(tree: Any) -> float:
    return float(np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree.leaves(tree))))


def test_clip_caps_global_norm_and_keeps_direction() -> None:
    g = {"a": jnp.asarray([3.0, 4.0, 0.0]), "b": jnp.asarray([[12.0, 0.0], [0.0, 0.0]])}  # norm 13
    clip = O.clip_by_global_norm(1.3)
    out, _ = jax.jit(clip.update)(g, clip.init(g))
    np.testing.assert_allclose(_global_norm(out), 1.3, rtol=1e-6)
    _assert_tree_allclose(out, jax.tree.map(lambda x: x * 0.1, g), rtol=1e-6, atol=0)
    ref, _ = optax.clip_by_global_norm(1.3).update(g, optax.EmptyState())
    _assert_tree_allclose(out, ref, rtol=1e-6, atol=0)


def test_clip_leaves_small_gradients_unchanged() -> None:
    g = {"a": jnp.asarray([0.3, -0.4]), "b": jnp.asarray([[0.1, 0.2]])}
    clip = O.clip_by_global_norm(1.0)
    update = jax.jit(clip.update)
    out, _ = update(g, clip.init(g))
    _assert_tree_equal(out, g)
    zeros = jax.tree.map(jnp.zeros_like, g)
    out0, _ = update(zeros, clip.init(g))
    _assert_tree_equal(out0, zeros)  # no NaN from 0 / 0


def test_clip_is_vmap_invariant_per_call() -> None:
    """Each member of a vmapped clip equals the clip alone, bit for bit, clipping or not."""
    rng = np.random.default_rng(3)
    batch = {
        "a": jnp.asarray(rng.normal(size=(32, 5)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=(32, 3, 2)), jnp.float32),
    }
    max_norms = jnp.asarray(rng.uniform(0.5, 4.0, size=32), jnp.float32)

    def f(g: Any, m: jax.Array) -> Any:
        return O.clip_by_global_norm(m).update(g, optax.EmptyState())[0]

    together = jax.jit(jax.vmap(f))(batch, max_norms)
    alone = jax.jit(f)
    for i in range(32):
        _assert_tree_equal(
            jax.tree.map(lambda x: x[i], together), alone(jax.tree.map(lambda x: x[i], batch), max_norms[i])
        )


# ----------------------------------------------------------------------------------------------
# schedules
# ----------------------------------------------------------------------------------------------


def test_per_epoch_decay_values() -> None:
    spe, lr = 7, 0.1
    sched = O.per_epoch_decay(lr, steps_per_epoch=spe)  # default decay_rate 0.98 (the guide)
    rate = float(np.float32(0.98))  # the float32 value the schedule computes with
    ks = np.asarray([0, 1, spe - 1, spe, spe + 1, 2 * spe + 3, 10 * spe, 10 * spe - 1, 100 * spe])
    got = np.asarray(jax.jit(jax.vmap(sched))(jnp.asarray(ks, jnp.int32)))
    np.testing.assert_allclose(got, lr * rate ** (ks // spe), rtol=1e-6)
    np.testing.assert_allclose(got, lr * 0.98 ** (ks // spe), rtol=1e-5)


@pytest.mark.parametrize("staircase", [True, False])
def test_exponential_decay_matches_optax(staircase: bool) -> None:
    ours = O.exponential_decay(0.2, 0.9, 6, staircase=staircase)
    ref = optax.exponential_decay(0.2, 6, 0.9, staircase=staircase)
    steps = jnp.arange(0, 200, 7, dtype=jnp.int32)
    np.testing.assert_allclose(np.asarray(jax.vmap(ours)(steps)), np.asarray(jax.vmap(ref)(steps)), rtol=1e-6)


def test_step_decay_every_epochs_and_boundaries() -> None:
    s = O.step_decay(0.1, every_epochs=3, factor=0.1, steps_per_epoch=10)
    for k, want in [(0, 0.1), (29, 0.1), (30, 0.01), (59, 0.01), (60, 0.001)]:
        np.testing.assert_allclose(float(s(jnp.int32(k))), want, rtol=1e-6)
    b = O.step_decay(0.1, {10: 0.5, 20: 0.1})
    ref = optax.piecewise_constant_schedule(0.1, {10: 0.5, 20: 0.1})
    for k in [0, 9, 10, 11, 19, 20, 50]:
        np.testing.assert_allclose(float(b(jnp.int32(k))), float(ref(jnp.int32(k))), rtol=1e-6)
    np.testing.assert_allclose(float(b(jnp.int32(25))), 0.1 * 0.5 * 0.1, rtol=1e-6)


def test_cosine_decay_values() -> None:
    s = O.cosine_decay(0.2, 100, alpha=0.1)
    ref = optax.cosine_decay_schedule(0.2, 100, alpha=0.1)
    for k in [0, 25, 50, 99, 100, 150]:
        np.testing.assert_allclose(float(s(jnp.int32(k))), float(ref(jnp.int32(k))), rtol=1e-6)
        want = 0.2 * (0.9 * 0.5 * (1 + math.cos(math.pi * min(k, 100) / 100)) + 0.1)
        np.testing.assert_allclose(float(s(jnp.int32(k))), want, rtol=1e-6)


def test_warmup_cosine_matches_optax() -> None:
    s = O.warmup_cosine(0.5, warmup_steps=10, decay_steps=50, init_value=0.01, end_value=0.02)
    ref = optax.warmup_cosine_decay_schedule(0.01, 0.5, 10, 50, end_value=0.02)
    steps = jnp.arange(0, 81, dtype=jnp.int32)
    got = np.asarray(jax.jit(jax.vmap(s))(steps))
    np.testing.assert_allclose(got[:60], np.asarray(jax.jit(jax.vmap(ref))(steps[:60])), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(got[[0, 5, 10, 50, 80]], [0.01, 0.01 + 0.49 * 0.5, 0.5, 0.02, 0.02], rtol=1e-6)


def test_schedules_accept_traced_parameters() -> None:
    f = jax.jit(lambda lr, r: O.per_epoch_decay(lr, r, steps_per_epoch=10)(25))
    np.testing.assert_allclose(float(f(0.1, 0.5)), 0.1 * 0.25, rtol=1e-6)
    rates = jnp.asarray([0.5, 0.9, 0.98])
    got = jax.vmap(lambda r: O.exponential_decay(1.0, r, 4)(jnp.int32(9)))(rates)
    np.testing.assert_allclose(np.asarray(got), np.asarray(rates) ** 2, rtol=1e-6)
    w = jax.jit(lambda peak: O.warmup_cosine(peak, 2, 10)(jnp.int32(2)))(0.3)
    np.testing.assert_allclose(float(w), 0.3, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# builder
# ----------------------------------------------------------------------------------------------


def _f32(hp: dict) -> dict:
    return {k: jnp.float32(v) for k, v in hp.items()}


def test_hparam_names_and_defaults() -> None:
    for name in O.OPTIMIZERS:
        for schedule in O.SCHEDULES:
            for clip in (False, True):
                wd = name != "adamw"
                spec = O.OptimizerSpec(name, schedule, clip=clip, weight_decay=wd, total_steps=20, warmup_steps=2)
                names = O.hparam_names(spec)
                assert names[0] == "learning_rate"
                assert len(set(names)) == len(names)
                assert ("clip_norm" in names) == clip
                assert ("weight_decay" in names) == (wd or name == "adamw")
                assert set(O.default_hparams(spec)) == set(names)
    spec = O.OptimizerSpec("momentum", "per_epoch_decay", clip=True)
    assert O.hparam_names(spec) == ("learning_rate", "gamma", "decay_rate", "clip_norm")
    assert O.default_hparams(spec) == {"learning_rate": 0.1, "gamma": 0.9, "decay_rate": 0.98, "clip_norm": 1.0}


PUBLIC_EQUIVALENT = {
    "sgd": lambda hp: O.sgd(hp["learning_rate"]),
    "momentum": lambda hp: O.momentum(hp["learning_rate"], hp["gamma"]),
    "nesterov": lambda hp: O.nesterov(hp["learning_rate"], hp["gamma"]),
    "adagrad": lambda hp: O.adagrad(hp["learning_rate"], hp["initial_accumulator_value"], hp["eps"]),
    "rmsprop": lambda hp: O.rmsprop(hp["learning_rate"], hp["decay"], hp["eps"]),
    "adam": lambda hp: O.adam(hp["learning_rate"], hp["b1"], hp["b2"], hp["eps"]),
    "adamw": lambda hp: O.adamw(hp["learning_rate"], hp["b1"], hp["b2"], hp["eps"], hp["weight_decay"]),
    "normalized_sgd": lambda hp: O.normalized_sgd(hp["learning_rate"], hp["eps"]),
}


@pytest.mark.parametrize("name", sorted(O.OPTIMIZERS))
def test_build_matches_public_optimizer(name: str) -> None:
    """build(spec, hp) == the public optimizer given the same float32 values (constant schedule)."""
    spec = O.OptimizerSpec(name)
    hp = O.default_hparams(spec)
    hp["learning_rate"] = 0.05
    if name == "adamw":
        hp["weight_decay"] = 0.1
    hp = _f32(hp)
    a = _trajectory(O.build(spec, hp), 40)
    b = _trajectory(PUBLIC_EQUIVALENT[name](hp), 40)
    _assert_tree_allclose(a, b, rtol=1e-6, atol=1e-6)  # parameters are O(1)


def test_build_with_schedule_clip_and_weight_decay_matches_chain() -> None:
    spec = O.OptimizerSpec("adam", "warmup_cosine", clip=True, weight_decay=True, total_steps=30, warmup_steps=5)
    hp = _f32({**O.default_hparams(spec), "learning_rate": 0.1, "alpha": 0.1, "clip_norm": 0.5, "weight_decay": 0.05})
    ref = O.chain(
        O.clip_by_global_norm(hp["clip_norm"]),
        O.adamw(
            O.warmup_cosine(hp["learning_rate"], 5, 30, init_value=0.0, end_value=hp["alpha"] * hp["learning_rate"]),
            b1=hp["b1"],
            b2=hp["b2"],
            eps=hp["eps"],
            weight_decay=hp["weight_decay"],
        ),
    )
    _assert_tree_allclose(_trajectory(O.build(spec, hp), 40), _trajectory(ref, 40), rtol=1e-6, atol=1e-6)
    # ... and adam + weight_decay=True is optax.adamw given the same float32 values (to rounding)
    spec2 = O.OptimizerSpec("adam", weight_decay=True)
    hp2 = _f32({**O.default_hparams(spec2), "learning_rate": 0.05, "weight_decay": 0.1})
    ref2 = optax.adamw(hp2["learning_rate"], hp2["b1"], hp2["b2"], hp2["eps"], weight_decay=hp2["weight_decay"])
    _assert_tree_allclose(_trajectory(O.build(spec2, hp2), 40), _trajectory(ref2, 40), rtol=1e-6, atol=1e-6)


def test_build_per_epoch_decay_learning_rates() -> None:
    spec = O.OptimizerSpec("sgd", "per_epoch_decay", steps_per_epoch=4)
    hp = {"learning_rate": 0.1, "decay_rate": 0.5}
    opt = O.build(spec, hp)
    g = {"x": jnp.ones(3)}
    state = opt.init(g)
    for k in range(10):
        u, state = opt.update(g, state, g)
        np.testing.assert_allclose(np.asarray(u["x"]), -0.1 * 0.5 ** (k // 4), rtol=1e-6)
    sched = O.build_schedule(spec, state.hyperparams)
    np.testing.assert_allclose(float(sched(jnp.int32(9))), 0.1 * 0.25, rtol=1e-6)


def test_hyperparams_live_in_state() -> None:
    spec = O.OptimizerSpec("momentum", "cosine", clip=True, total_steps=10)
    opt = O.build(spec, O.default_hparams(spec))
    state = opt.init(P0)
    assert set(state.hyperparams) == set(O.hparam_names(spec))
    assert all(isinstance(v, jax.Array) and v.shape == () for v in state.hyperparams.values())
    g = _grad(P0, DATA)
    state.hyperparams["learning_rate"] = jnp.float32(0.0)
    u, _ = opt.update(g, state, P0)
    assert all(np.all(np.asarray(x) == 0.0) for x in jax.tree.leaves(u))


def test_new_hyperparameter_values_do_not_recompile() -> None:
    spec = O.OptimizerSpec("adam", "per_epoch_decay", clip=True, steps_per_epoch=3)

    @jax.jit
    def run(hp: dict) -> Any:
        opt = O.build(spec, hp)
        u, _ = opt.update(_grad(P0, DATA), opt.init(P0), P0)
        return u

    a = run(_f32({**O.default_hparams(spec), "learning_rate": 0.1}))
    b = run(_f32({**O.default_hparams(spec), "learning_rate": 0.2, "b1": 0.5, "decay_rate": 0.7}))
    assert run._cache_size() == 1
    assert not np.allclose(np.asarray(a["w"]), np.asarray(b["w"]))


VMAP_SPECS = {
    "sgd": (O.OptimizerSpec("sgd", "per_epoch_decay", clip=True, steps_per_epoch=3), {}),
    "momentum": (
        O.OptimizerSpec("momentum", "step", clip=True, steps_per_epoch=2, decay_every_epochs=2),
        {"gamma": [0.9, 0.5, 0.95, 0.0]},
    ),
    "momentum_weight_decay": (
        O.OptimizerSpec("momentum", "per_epoch_decay", clip=True, weight_decay=True, steps_per_epoch=4),
        {"gamma": [0.9, 0.5, 0.95, 0.0], "weight_decay": [1e-3, 1e-2, 0.0, 0.1]},
    ),
    "nesterov": (O.OptimizerSpec("nesterov", "cosine", clip=True, total_steps=15), {"gamma": [0.9, 0.5, 0.95, 0.0]}),
    "adam": (
        O.OptimizerSpec("adam", "warmup_cosine", clip=True, total_steps=20, warmup_steps=4),
        {"b1": [0.9, 0.8, 0.95, 0.5], "alpha": [0.0, 0.1, 0.5, 0.0]},
    ),
    "adamw": (
        O.OptimizerSpec("adamw", "per_epoch_decay", clip=True, steps_per_epoch=4),
        {"b2": [0.999, 0.99, 0.9, 0.999], "weight_decay": [1e-4, 1e-2, 0.1, 0.0]},
    ),
}


@pytest.mark.parametrize("name", sorted(VMAP_SPECS))
def test_vmapped_population_equals_separate_runs_exactly(name: str) -> None:
    """jax.vmap over stacked hyperparameters == each run alone with 0-d float32 hparams, bit for bit."""
    spec, extra = VMAP_SPECS[name]
    lrs = [0.01, 0.1, 0.3, 0.05]
    clip_norms = [0.5, 100.0, 1.0, 0.2]  # clipping active in some members / steps only
    hps = []
    for i, lr in enumerate(lrs):
        hp = {**O.default_hparams(spec), "learning_rate": lr, "clip_norm": clip_norms[i]}
        hp.update({k: v[i] for k, v in extra.items()})
        hp.setdefault("decay_rate", 0.98)
        hps.append(_f32({k: hp[k] for k in O.hparam_names(spec)}))

    def run(hp: dict, data: dict) -> dict:
        opt = O.build(spec, hp)

        def body(carry: Any, _: Any) -> Any:
            p, s = carry
            u, s = opt.update(_grad(p, data), s, p)
            p = optax.apply_updates(p, u)
            return (p, s), p

        (_, _), ps = jax.lax.scan(body, (P0, opt.init(P0)), None, length=20)
        return ps

    alone = [jax.jit(run)(hp, DATA) for hp in hps]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *hps)
    together = jax.jit(jax.vmap(run, in_axes=(0, None)))(stacked, DATA)
    for i in range(len(lrs)):
        _assert_tree_equal(jax.tree.map(lambda x: x[i], together), alone[i])
    # the members really differ from each other
    assert not np.allclose(np.asarray(together["w"][0]), np.asarray(together["w"][1]))


# ----------------------------------------------------------------------------------------------
# bad inputs
# ----------------------------------------------------------------------------------------------

BAD_CALLS = [
    (lambda: O.sgd(-0.1), "learning_rate"),
    (lambda: O.sgd(float("nan")), "learning_rate"),
    (lambda: O.momentum(0.1, gamma=1.0), "gamma"),
    (lambda: O.momentum(0.1, gamma=-0.1), "gamma"),
    (lambda: O.nesterov(-1.0), "learning_rate"),
    (lambda: O.adagrad(0.1, initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (lambda: O.adagrad(0.1, eps=0.0), "eps"),
    (lambda: O.rmsprop(0.1, decay=1.0), "decay"),
    (lambda: O.rmsprop(0.1, eps=-1e-8), "eps"),
    (lambda: O.adam(0.1, b1=1.0), "b1"),
    (lambda: O.adam(0.1, b2=1.5), "b2"),
    (lambda: O.adam(0.1, eps=0.0), "eps"),
    (lambda: O.adamw(0.1, weight_decay=-1e-4), "weight_decay"),
    (lambda: O.normalized_sgd(0.1, eps=0.0), "eps"),
    (lambda: O.clip_by_global_norm(0.0), "max_norm"),
    (lambda: O.clip_by_global_norm(-1.0), "max_norm"),
    (lambda: O.constant(-1.0), "value"),
    (lambda: O.exponential_decay(0.1, 0.0, 10), "decay_rate"),
    (lambda: O.exponential_decay(0.1, 1.5, 10), "decay_rate"),
    (lambda: O.exponential_decay(0.1, 0.5, 0), "transition_steps"),
    (lambda: O.exponential_decay(-0.1, 0.5, 10), "init_value"),
    (lambda: O.per_epoch_decay(0.1, 0.98, steps_per_epoch=0), "steps_per_epoch"),
    (lambda: O.per_epoch_decay(0.1, 2.0, steps_per_epoch=10), "decay_rate"),
    (lambda: O.step_decay(0.1, every_epochs=0), "every_epochs"),
    (lambda: O.step_decay(0.1, every_epochs=2, factor=0.0), "factor"),
    (lambda: O.step_decay(0.1), "boundaries_and_scales"),
    (lambda: O.cosine_decay(0.1, 0), "decay_steps"),
    (lambda: O.cosine_decay(0.1, 10, alpha=2.0), "alpha"),
    (lambda: O.warmup_cosine(0.1, 10, 5), "decay_steps"),
    (lambda: O.warmup_cosine(-0.1, 1, 5), "peak_value"),
]


@pytest.mark.parametrize("i", range(len(BAD_CALLS)))
def test_bad_python_numbers_raise_value_error_naming_parameter(i: int) -> None:
    call, name = BAD_CALLS[i]
    with pytest.raises(ValueError, match=re.escape(name)):
        call()


def test_bad_types_raise_type_error() -> None:
    with pytest.raises(TypeError, match="learning_rate"):
        O.sgd(True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="transition_steps"):
        O.exponential_decay(0.1, 0.5, 10.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="nesterov"):
        O.momentum(0.1, 0.9, nesterov=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="argument 1"):
        O.chain(O.sgd(0.1), "adam")  # type: ignore[arg-type]


def test_traced_values_pass_through_unvalidated() -> None:
    g = {"x": jnp.asarray([1.0, -2.0])}

    @jax.jit
    def step(lr: jax.Array, gamma: jax.Array, max_norm: jax.Array) -> Any:
        opt = O.chain(O.clip_by_global_norm(max_norm), O.momentum(lr, gamma))
        return opt.update(g, opt.init(g))[0]

    # a negative learning rate as a traced value is not rejected (it is data, e.g. for a grid)
    u = step(jnp.float32(-0.1), jnp.float32(0.9), jnp.float32(10.0))
    np.testing.assert_allclose(np.asarray(u["x"]), [0.1, -0.2], rtol=1e-6)
    us = jax.vmap(lambda gm: step(jnp.float32(0.1), gm, jnp.float32(10.0)))(jnp.asarray([0.0, 0.5]))
    assert us["x"].shape == (2, 2)


def test_builder_rejects_bad_specs_and_hparams() -> None:
    with pytest.raises(ValueError, match=r"unknown optimizer name 'sgdd'.*'adam'"):
        O.OptimizerSpec("sgdd")
    with pytest.raises(ValueError, match=r"unknown schedule 'linear'.*'per_epoch_decay'"):
        O.OptimizerSpec("sgd", "linear")
    with pytest.raises(ValueError, match="total_steps"):
        O.OptimizerSpec("adam", "cosine")
    with pytest.raises(ValueError, match="warmup_steps"):
        O.OptimizerSpec("adam", "warmup_cosine", total_steps=5, warmup_steps=5)
    with pytest.raises(ValueError, match="adamw"):
        O.OptimizerSpec("adamw", weight_decay=True)
    with pytest.raises(TypeError, match="steps_per_epoch"):
        O.OptimizerSpec("sgd", "per_epoch_decay", steps_per_epoch=2.5)  # type: ignore[arg-type]
    spec = O.OptimizerSpec("momentum", "per_epoch_decay")
    with pytest.raises(ValueError, match=r"unknown hyperparameter 'b1'.*'gamma'"):
        O.build(spec, {**O.default_hparams(spec), "b1": 0.9})
    with pytest.raises(ValueError, match=r"missing hyperparameter 'decay_rate'.*'learning_rate'"):
        O.build(spec, {"learning_rate": 0.1, "gamma": 0.9})
    with pytest.raises(ValueError, match="gamma"):
        O.build(spec, {**O.default_hparams(spec), "gamma": 1.2})
    with pytest.raises(ValueError, match="learning_rate"):
        O.build(spec, {**O.default_hparams(spec), "learning_rate": -0.1})
    with pytest.raises(TypeError, match="learning_rate"):
        O.build(spec, {**O.default_hparams(spec), "learning_rate": O.constant(0.1)})


# ---------------------------------------------------------------- defaults and bounds (mutation-found)
def test_trace_nesterov_default_gamma_is_0_9():
    g = {"w": jnp.asarray([1.0, -2.0])}
    ours, ref = O.trace_nesterov(), optax.trace(decay=0.9, nesterov=True)
    s_o, s_r = ours.init(g), ref.init(g)
    for _ in range(3):
        u_o, s_o = ours.update(g, s_o)
        u_r, s_r = ref.update(g, s_r)
    np.testing.assert_allclose(np.asarray(u_o["w"]), np.asarray(u_r["w"]), rtol=1e-6)


def test_schedule_defaults():
    """step_decay: factor 0.1 every ``every_epochs`` epochs of 1 step; warmup_cosine ends at 0."""
    s = O.step_decay(1.0, every_epochs=1)
    np.testing.assert_allclose([float(s(t)) for t in (0, 1, 2)], [1.0, 0.1, 0.01], rtol=1e-6)
    s = O.step_decay(1.0, every_epochs=2)  # steps_per_epoch defaults to 1: the drop is at step 2
    np.testing.assert_allclose([float(s(t)) for t in (1, 2)], [1.0, 0.1], rtol=1e-6)
    w = O.warmup_cosine(1.0, warmup_steps=2, decay_steps=10)
    assert float(w(10)) == 0.0 and float(w(50)) == 0.0
    e = O.exponential_decay(1.0, 0.5, 1)  # one step per transition is allowed
    np.testing.assert_allclose([float(e(t)) for t in (0, 1, 2)], [1.0, 0.5, 0.25])


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: O.cosine_decay(1.0, 0), "decay_steps must be an int >= 1"),
        (lambda: O.step_decay(1.0, every_epochs=1, steps_per_epoch=0), "steps_per_epoch"),
        (lambda: O.step_decay(1.0, every_epochs=0), "every_epochs"),
        (lambda: O.exponential_decay(1.0, 0.5, 0), "transition_steps"),
    ],
)
def test_schedule_lengths_must_be_at_least_one(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_weight_decay_mask_is_only_passed_to_a_decaying_factory():
    """A mask with a factory that has no weight decay is not passed on (the factory takes no ``mask``)."""

    def plain_sgd(learning_rate: float = 0.1) -> optax.GradientTransformation:
        return optax.sgd(learning_rate)

    spec = O.OptimizerSpec(plain_sgd, weight_decay_mask=lambda p: jax.tree_util.tree_map(lambda _: True, p))
    tx = O.build(spec, O.default_hparams(spec))
    params = {"w": jnp.ones(3)}
    u, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(u["w"]), -0.1 * np.ones(3), rtol=1e-6)


def test_default_hparams_strict_and_lenient():
    """A factory without a default learning rate: strict → error naming it; lenient → the other defaults."""
    spec = O.OptimizerSpec(optax.lion)
    with pytest.raises(ValueError, match="learning_rate"):
        O.default_hparams(spec)
    lenient = O.default_hparams(spec, strict=False)
    assert "learning_rate" not in lenient and lenient["b1"] == 0.9


def test_inverse_global_norm_adds_eps():
    """``u = g / (‖g‖ + eps)``: a gradient of norm eps becomes g / (2 eps) (finite, half of unit norm)."""
    g = {"w": jnp.asarray([3e-8, 4e-8])}  # norm 5e-8
    u, _ = O.scale_by_inverse_global_norm(eps=5e-8).update(g, optax.EmptyState())
    np.testing.assert_allclose(np.asarray(u["w"]), [0.3, 0.4], rtol=1e-5)


def test_adam_and_adamw_defaults_match_optax():
    """scale_by_adam(b1=0.9, b2=0.999, eps=1e-8) and adamw's weight_decay=1e-4, against optax's defaults."""
    params = {"w": jnp.asarray([0.5, -1.5, 2.0])}
    grads = [{"w": jnp.asarray([0.1, -0.2, 0.3]) * (i + 1)} for i in range(3)]
    for ours, ref in (
        (O.scale_by_adam(), optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)),
        (O.adamw(0.1), optax.adamw(0.1, weight_decay=1e-4)),
    ):
        s_o, s_r = ours.init(params), ref.init(params)
        for g in grads:
            u_o, s_o = ours.update(g, s_o, params)
            u_r, s_r = ref.update(g, s_r, params)
        np.testing.assert_allclose(np.asarray(u_o["w"]), np.asarray(u_r["w"]), rtol=1e-5)


def test_schedule_edges_and_defaults():
    """Smallest allowed lengths work, the defaults are the documented ones, boundaries at step 0 are allowed."""
    np.testing.assert_allclose(float(O.cosine_decay(1.0, 10)(10)), 0.0, atol=1e-7)  # alpha defaults to 0
    assert float(O.cosine_decay(1.0, 1)(0)) == 1.0
    assert float(O.warmup_cosine(1.0, 2, 10)(0)) == 0.0  # init_value defaults to 0
    assert float(O.warmup_cosine(1.0, 0, 10)(0)) == 1.0  # no warm-up
    assert float(O.warmup_cosine(1.0, 0, 1)(0)) == 1.0
    np.testing.assert_allclose([float(O.per_epoch_decay(1.0, 0.5, steps_per_epoch=1)(t)) for t in (0, 1)], [1.0, 0.5])
    s = O.step_decay(1.0, {0: 0.5})
    assert float(s(0)) == 0.5
    for bad in ({-1: 0.5}, {2: -0.5}):
        with pytest.raises(ValueError):
            O.step_decay(1.0, bad)
    with pytest.raises(ValueError, match="warmup_steps"):
        O.warmup_cosine(1.0, -1, 10)
    with pytest.raises(ValueError, match="decay_steps must be an int >= 1"):
        O.warmup_cosine(1.0, 0, 0)
    with pytest.raises(ValueError, match="decay_steps must be > warmup_steps"):
        O.warmup_cosine(1.0, 5, 5)


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        O.step_decay(1.0, None, 2)
    with pytest.raises(TypeError):
        O.default_hparams(O.OptimizerSpec("sgd"), False)


def test_per_epoch_schedule_is_a_staircase_and_missing_keys_are_named():
    spec = O.OptimizerSpec("sgd", "per_epoch_decay", steps_per_epoch=4)
    sched = O.build_schedule(spec, {"learning_rate": 0.1, "decay_rate": 0.5})
    np.testing.assert_allclose([float(sched(t)) for t in (0, 2, 3, 4)], [0.1, 0.1, 0.1, 0.05], rtol=1e-6)
    with pytest.raises(ValueError, match="missing hyperparameter 'decay_rate'"):
        O.build_schedule(spec, {"learning_rate": 0.1})
    step = O.OptimizerSpec("sgd", "step", decay_every_epochs=2, steps_per_epoch=2)
    sched = O.build_schedule(step, {"learning_rate": 0.1, "decay_rate": 0.5})
    np.testing.assert_allclose([float(sched(t)) for t in (0, 2, 3, 4)], [0.1, 0.1, 0.1, 0.05], rtol=1e-6)


def test_a_foreign_factory_returning_no_transformation_fails_at_build():
    class OnlyInit:
        def init(self, params):
            return ()

    def bad(learning_rate: float = 0.1):
        return OnlyInit()

    spec = O.OptimizerSpec(bad)
    with pytest.raises(TypeError, match="must return an optax GradientTransformation"):
        O.build(spec, O.default_hparams(spec))
