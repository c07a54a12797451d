"""population_map: vmap and unrolled members equal separate calls of the member function."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import models as jmodels
from jtricks import optim as joptim
from jtricks import population as jpop
from jtricks import train as jtrain

pytestmark = pytest.mark.slow  # compiles populations / runs whole experiments: left out of `-m "not slow"`


def _leaves_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def _member(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def _setup(model, input_shape, n_train, batch, members):
    config = jtrain.TrainConfig(
        model=model, optimizer=joptim.OptimizerSpec("adam"), epochs=1, batch_size=batch, dropout=True, execution="loop"
    )
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n_train, *input_shape), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, 3, n_train).astype(np.int32))
    hps = [
        jtrain.as_arrays(jtrain.validate_hparams(config, {"learning_rate": lr, "dropout_rate": d})) for lr, d in members
    ]
    keys = [jax.random.PRNGKey(10 + i) for i in range(len(members))]
    init = jax.jit(lambda k, h: jtrain.init_state(config, k, h, input_shape))
    states = [init(k, h) for k, h in zip(keys, hps)]
    idx = [jnp.asarray(rng.permutation(n_train)[:batch].astype(np.int32)) for _ in members]
    return config, states, x, y, idx


CASES = {
    "mlp": (lambda: jmodels.mlp((16,), 3), (8,), 32, 8),
    "cnn": (lambda: jmodels.cnn(3, widths=(4, 6)), (10, 10, 1), 16, 4),
}


MEMBERS = [(1e-2, 0.0), (3e-3, 0.3), (1e-3, 0.5)]  # (learning rate, dropout rate)
N_STEPS = 2  # the second step starts from an updated optimizer state


@functools.cache
def _reference(case):
    """Setup of ``case`` and each member's separate run (jitted once, shared by both strategies)."""
    make_model, input_shape, n_train, batch = CASES[case]
    config, states, x, y, idx = _setup(make_model(), input_shape, n_train, batch, MEMBERS)
    step = jtrain.make_train_step(config)
    alone = jax.jit(step)
    runs, singles = [], list(states)
    for _ in range(N_STEPS):
        outs = [alone(s, x, y, b) for s, b in zip(singles, idx)]
        singles = [o[0] for o in outs]
        runs.append(outs)
    return step, states, x, y, idx, runs


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("strategy", ["vmap", "unroll"])
def test_population_equals_separate_calls_bitwise(case, strategy):
    step, states, x, y, idx, runs = _reference(case)
    n = 3 if strategy == "vmap" else 2  # vmap: a population of 3; unroll: 2 (its program grows with S)
    pop = jax.jit(jpop.population_map(step, strategy=strategy, in_axes=(0, None, None, 0)))
    pop_state = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states[:n])
    pop_idx = jnp.stack(idx[:n])
    for outs in runs:
        pop_state, pop_metrics = pop(pop_state, x, y, pop_idx)
        for i, (s, m) in enumerate(outs[:n]):
            if strategy == "vmap" and case == "cnn" and jax.default_backend() == "cpu":
                # vmap turns the convolutions into grouped convolutions, which XLA CPU rounds differently:
                # not bitwise (the reason "auto" unrolls CNN populations on CPU); agreement to float32 round-off
                for a, b in zip(
                    jax.tree_util.tree_leaves((s, m)),
                    jax.tree_util.tree_leaves((_member(pop_state, i), _member(pop_metrics, i))),
                ):
                    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
                continue
            assert _leaves_equal(s, _member(pop_state, i)), f"{strategy} member {i} state differs from its separate run"
            assert _leaves_equal(m, _member(pop_metrics, i)), f"{strategy} member {i} metrics differ"
    # the members really differ (the comparison could fail)
    assert not np.array_equal(
        np.asarray(pop_state.params["dense_0"]["kernel"][0]), np.asarray(pop_state.params["dense_0"]["kernel"][1])
    )


def test_unroll_and_vmap_agree_on_a_plain_function_with_mixed_in_axes():
    def f(w, x, c):
        return {"y": jnp.tanh(x @ w) * c, "s": jnp.sum(w)}

    w = jnp.arange(24.0).reshape(2, 3, 4) / 10
    x = jnp.ones((5, 3))
    c = jnp.array([1.0, -2.0])
    ref = jax.vmap(f, in_axes=(0, None, 0))(w, x, c)
    for strategy in ("vmap", "unroll"):
        got = jax.jit(jpop.population_map(f, strategy=strategy, in_axes=(0, None, 0)))(w, x, c)
        np.testing.assert_allclose(got["y"], ref["y"], rtol=1e-6)
        np.testing.assert_allclose(got["s"], ref["s"], rtol=1e-6)
        assert got["y"].shape == (2, 5, 4)
    serial = jax.jit(jpop.population_map(f, strategy="unroll", in_axes=(0, None, 0), serialize=True))(w, x, c)
    np.testing.assert_array_equal(
        serial["y"], jax.jit(jpop.population_map(f, strategy="unroll", in_axes=(0, None, 0)))(w, x, c)["y"]
    )


def test_unroll_maps_a_non_leading_axis():
    xs = jnp.arange(12.0).reshape(3, 4)  # members along axis 1
    got = jpop.population_map(lambda v: v * 2.0, strategy="unroll", in_axes=1)(xs)
    np.testing.assert_array_equal(got, (xs * 2.0).T)


def test_auto_rule_by_backend_and_model():
    assert jpop.resolve_strategy("auto", model="cnn", backend="cpu") == "unroll"
    assert jpop.resolve_strategy("auto", model="resnet", backend="cpu") == "unroll"
    assert jpop.resolve_strategy("auto", model="mlp", backend="cpu") == "vmap"
    assert jpop.resolve_strategy("auto", model="cnn", backend="gpu") == "vmap"
    assert jpop.resolve_strategy("vmap", model="cnn", backend="cpu") == "vmap"
    assert jpop.resolve_strategy("unroll", model="mlp", backend="gpu") == "unroll"


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="strategy"):
        jpop.population_map(lambda x: x, strategy="loop")
    with pytest.raises(TypeError, match="in_axes"):
        jpop.population_map(lambda x: x, strategy="unroll", in_axes="0")
    with pytest.raises(TypeError, match="callable"):
        jpop.population_map(3)
    f = jpop.population_map(lambda a, b: a + b, strategy="unroll", in_axes=(0, 0))
    with pytest.raises(ValueError, match="population size"):
        f(jnp.zeros((2, 3)), jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="in_axes"):
        f(jnp.zeros((2, 3)))
    g = jpop.population_map(lambda a: a, strategy="unroll", in_axes=None)
    with pytest.raises(ValueError, match="at least one mapped"):
        g(jnp.zeros(3))
    h = jpop.population_map(lambda a: a, strategy="unroll", in_axes=0)
    with pytest.raises(ValueError, match="member axis"):
        h(jnp.float32(1.0))
