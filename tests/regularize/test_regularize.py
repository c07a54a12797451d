"""Tests for jtricks.regularize: penalties, jittable early stopping, EMA / SWA, BN re-estimation, ensembles."""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training.early_stopping import EarlyStopping

from jtricks import norm
from jtricks import regularize as jreg

KEY = jax.random.key(0)


def _params() -> dict:
    k1, k2, k3 = jax.random.split(KEY, 3)
    return {
        "conv": {"kernel": jax.random.normal(k1, (3, 3, 2, 4)), "bias": jax.random.normal(k2, (4,))},
        "dense": {"kernel": jax.random.normal(k3, (5, 3)), "bias": jnp.arange(3.0) - 1.0},
        "bn": {"scale": jnp.full((4,), 2.0), "bias": jnp.full((4,), -0.5)},
    }


# ------------------------------------------------------------------------------------------ penalties


def test_decay_mask_kernels_only() -> None:
    mask = jreg.decay_mask(_params())
    assert mask == {
        "conv": {"kernel": True, "bias": False},
        "dense": {"kernel": True, "bias": False},
        "bn": {"scale": False, "bias": False},
    }


def test_l2_l1_against_numpy_with_and_without_mask() -> None:
    p = _params()
    npp = jax.tree.map(lambda x: np.asarray(x, np.float64), p)
    kernels = [npp["conv"]["kernel"], npp["dense"]["kernel"]]
    every = jax.tree.leaves(npp)
    mask = jreg.decay_mask(p)
    np.testing.assert_allclose(jreg.l2_penalty(p, mask), 0.5 * sum((k**2).sum() for k in kernels), rtol=1e-6)
    np.testing.assert_allclose(jreg.l1_penalty(p, mask), sum(np.abs(k).sum() for k in kernels), rtol=1e-6)
    # mask=None: every leaf (optax convention); a callable mask is applied to params
    np.testing.assert_allclose(jreg.l2_penalty(p), 0.5 * sum((x**2).sum() for x in every), rtol=1e-6)
    np.testing.assert_allclose(jreg.l1_penalty(p), sum(np.abs(x).sum() for x in every), rtol=1e-6)
    assert jreg.l2_penalty(p, jreg.decay_mask) == jreg.l2_penalty(p, mask)
    # array masks: a traced scalar switch and an elementwise mask
    elem = jax.tree.map(lambda x: jnp.asarray(x) > 0, p)
    expected = sum(np.abs(np.where(x > 0, x, 0)).sum() for x in every)
    np.testing.assert_allclose(jax.jit(jreg.l1_penalty)(p, elem), expected, rtol=1e-6)
    off = jax.tree.map(lambda _: jnp.asarray(False), p)
    assert float(jreg.l2_penalty(p, off)) == 0.0


def test_l2_gradient_is_masked_weights() -> None:
    p = _params()
    mask = jreg.decay_mask(p)
    g = jax.grad(jreg.l2_penalty)(p, mask)
    for gl, pl, ml in zip(jax.tree.leaves(g), jax.tree.leaves(p), jax.tree.leaves(mask)):
        np.testing.assert_allclose(gl, pl if ml else np.zeros_like(pl), rtol=1e-6)


def test_penalty_mask_structure_error() -> None:
    p = _params()
    with pytest.raises(ValueError, match="mask"):
        jreg.l2_penalty(p, {"conv": True})
    with pytest.raises(ValueError, match="mask"):
        jreg.l1_penalty(p, {"conv": {"kernel": True}, "dense": {"kernel": True, "bias": True}, "bn": True})


# ------------------------------------------------------------------------------------------ early stopping


def _reference_early_stopping(curve, patience, min_delta=0.0, mode="min"):
    """Plain-Python Keras-style rule: (best, best_epoch, stop_epoch)."""
    best, best_epoch, count = (math.inf if mode == "min" else -math.inf), -1, 0
    for epoch, m in enumerate(curve):
        better = m < best - min_delta if mode == "min" else m > best + min_delta
        if better:  # False for NaN
            best, best_epoch, count = m, epoch, 0
        else:
            count += 1
            if count >= patience:
                return best, best_epoch, epoch
    return best, best_epoch, -1


def _epoch_params(member, epoch):
    """Params that identify (member, epoch): every entry equals 100 * member + epoch."""
    v = 100.0 * member + epoch
    return {"w": jnp.full((2, 3), v, jnp.float32), "b": jnp.full((3,), v, jnp.float32)}


def _run_population(curves, patience, min_delta, mode):
    """jit(vmap(scan(early_stopping_update))) over members; params[e] identify (member, epoch)."""
    members = jnp.arange(curves.shape[0], dtype=jnp.float32)

    def run(curve, member, patience, min_delta):
        state = jreg.early_stopping_init(_epoch_params(member, -1.0), mode=mode)

        def step(s, xs):
            metric, epoch = xs
            s = jreg.early_stopping_update(
                s,
                metric,
                _epoch_params(member, epoch.astype(jnp.float32)),
                epoch,
                patience=patience,
                min_delta=min_delta,
            )
            return s, s.should_stop

        return jax.lax.scan(step, state, (curve, jnp.arange(curve.shape[0])))

    return jax.jit(jax.vmap(run))(curves, members, patience, min_delta)


NAN = float("nan")
CURVES_MIN = [
    [5.0, 4.0, 3.0, 2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.7],  # never stops
    [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 1.0, 0.5, 0.4, 0.3],  # best at 2, stops at 4 (later gains ignored)
    [2.0, NAN, 1.5, NAN, NAN, NAN, 0.1, 0.1, 0.1, 0.1],  # NaN is no improvement: best 2, stops at 4
]


def test_early_stopping_population_jit_vmap_matches_reference_and_flax() -> None:
    curves = jnp.asarray(CURVES_MIN, jnp.float32)
    patience = jnp.array([2, 2, 2])
    state, stops = _run_population(curves, patience, jnp.zeros(3), "min")
    for m, curve in enumerate(CURVES_MIN):
        best, best_epoch, stop_epoch = _reference_early_stopping(np.float32(curve), 2)
        assert int(state.best_epoch[m]) == best_epoch
        assert float(state.best_metric[m]) == pytest.approx(float(np.float32(best)), abs=0)
        assert int(state.stop_epoch[m]) == stop_epoch
        assert bool(state.should_stop[m]) == (stop_epoch >= 0)
        # the member's own best params, frozen after stopping
        np.testing.assert_array_equal(state.best_params["w"][m], np.full((2, 3), 100.0 * m + best_epoch))
        np.testing.assert_array_equal(state.best_params["b"][m], np.full((3,), 100.0 * m + best_epoch))
        # should_stop stays True from stop_epoch on
        expected_flags = [stop_epoch >= 0 and e >= stop_epoch for e in range(len(curve))]
        assert [bool(f) for f in stops[m]] == expected_flags
    assert [int(e) for e in state.stop_epoch] == [-1, 4, 4]
    assert [int(e) for e in state.best_epoch] == [9, 2, 2]

    # flax's EarlyStopping(patience=p-1) stops at the same epoch (finite curves; flax cannot run in jit)
    for m in (0, 1):
        es = EarlyStopping(min_delta=0.0, patience=1)
        flax_stop = -1
        for epoch, metric in enumerate(CURVES_MIN[m]):
            es = es.update(metric)
            if es.should_stop:
                flax_stop = epoch
                break
        assert flax_stop == int(state.stop_epoch[m])


def test_early_stopping_traced_patience_and_min_delta() -> None:
    curve = [1.0, 0.95, 0.96, 0.85, 0.84, 0.83, 0.5, 0.49, 0.48, 0.47]
    curves = jnp.asarray([curve] * 4, jnp.float32)
    patience = jnp.array([1, 2, 3, 0])
    min_delta = jnp.array([0.0, 0.03, 0.03, 0.2])
    state, _ = _run_population(curves, patience, min_delta, "min")
    for m, (p, d) in enumerate([(1, 0.0), (2, 0.03), (3, 0.03), (0, 0.2)]):
        best, best_epoch, stop_epoch = _reference_early_stopping(np.float32(curve), p, np.float32(d))
        assert (int(state.best_epoch[m]), int(state.stop_epoch[m])) == (best_epoch, stop_epoch)
    assert [int(e) for e in state.stop_epoch] == [2, 5, 9, 1]


def test_early_stopping_max_mode() -> None:
    acc = [0.1, 0.5, 0.7, 0.69, 0.7, 0.71, 0.65, 0.9]
    state, _ = _run_population(jnp.asarray([acc], jnp.float32), jnp.array([3]), jnp.array([0.0]), "max")
    best, best_epoch, stop_epoch = _reference_early_stopping(np.float32(acc), 3, mode="max")
    assert (int(state.best_epoch[0]), int(state.stop_epoch[0])) == (best_epoch, stop_epoch) == (7, -1)
    assert float(state.best_metric[0]) == float(np.float32(0.9))
    # with patience 2 and min_delta 0.015: 0.71 is not enough over 0.7 -> stops at epoch 4
    state, _ = _run_population(jnp.asarray([acc], jnp.float32), jnp.array([2]), jnp.array([0.015]), "max")
    assert (int(state.best_epoch[0]), int(state.stop_epoch[0])) == (2, 4)
    init = jreg.early_stopping_init({"w": jnp.zeros(2)}, mode="max")
    assert float(init.best_metric) == -math.inf and init.mode == "max"


def test_early_stopping_python_ints_outside_jit() -> None:
    params = {"w": jnp.zeros(3)}
    s = jreg.early_stopping_init(params)
    s = jreg.early_stopping_update(s, 1.0, {"w": jnp.ones(3)}, 0, patience=1)
    s = jreg.early_stopping_update(s, 2.0, {"w": 2 * jnp.ones(3)}, 1, patience=1)
    assert bool(s.should_stop) and int(s.stop_epoch) == 1 and int(s.best_epoch) == 0
    np.testing.assert_array_equal(s.best_params["w"], np.ones(3))
    frozen = jreg.early_stopping_update(s, 0.0, {"w": 3 * jnp.ones(3)}, 2, patience=1)
    for a, b in zip(jax.tree.leaves(frozen), jax.tree.leaves(s)):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_errors() -> None:
    params = {"w": jnp.zeros(3)}
    with pytest.raises(ValueError, match="mode"):
        jreg.early_stopping_init(params, mode="minimize")
    s = jreg.early_stopping_init(params)
    with pytest.raises(ValueError, match="patience"):
        jreg.early_stopping_update(s, 1.0, params, 0, patience=-1)
    with pytest.raises(TypeError, match="patience"):
        jreg.early_stopping_update(s, 1.0, params, 0, patience=1.5)
    with pytest.raises(TypeError, match="patience"):
        jreg.early_stopping_update(s, 1.0, params, 0, patience=True)
    with pytest.raises(ValueError, match="min_delta"):
        jreg.early_stopping_update(s, 1.0, params, 0, patience=1, min_delta=-0.1)
    with pytest.raises(ValueError, match="mode"):
        jreg.early_stopping_update(s, 1.0, params, 0, patience=1, mode="max")
    with pytest.raises(ValueError, match="mode"):
        jreg.early_stopping_update(s, 1.0, params, 0, patience=1, mode="best")
    with pytest.raises(ValueError, match="shape"):
        jreg.early_stopping_update(s, 1.0, {"w": jnp.zeros(4)}, 0, patience=1)
    with pytest.raises(ValueError, match="structure"):
        jreg.early_stopping_update(s, 1.0, {"v": jnp.zeros(3)}, 0, patience=1)
    with pytest.raises(ValueError, match="scalar"):
        jreg.early_stopping_update(s, jnp.ones(2), params, 0, patience=1)


# ------------------------------------------------------------------------------------------ EMA / SWA


def _param_sequence(n: int = 8) -> list[dict]:
    keys = jax.random.split(jax.random.key(3), n)
    return [{"w": jax.random.normal(k, (3, 2)), "b": jax.random.normal(jax.random.fold_in(k, 1), (2,))} for k in keys]


def test_ema_debiased_matches_optax_ema() -> None:
    seq = _param_sequence()
    decay = 0.9
    tx = optax.ema(decay, debias=True)
    ostate = tx.init(seq[0])
    state = jreg.ema_init(seq[0])
    np.testing.assert_array_equal(jreg.ema_params(state)["w"], seq[0]["w"])  # before any update: the init params
    for p in seq:
        expected, ostate = tx.update(p, ostate)
        state = jreg.ema_update(state, p, decay)
        for a, b in zip(jax.tree.leaves(jreg.ema_params(state)), jax.tree.leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(state.count) == len(seq)
    np.testing.assert_allclose(state.decay_product, decay ** len(seq), rtol=1e-6)


@pytest.mark.parametrize("debias", [True, False])
def test_ema_warmup_against_numpy(debias: bool) -> None:
    seq = _param_sequence()
    init = {"w": jnp.full((3, 2), 7.0), "b": jnp.full((2,), -3.0)}
    decay = 0.95
    state = jreg.ema_init(init)
    update = jax.jit(partial(jreg.ema_update, debias=debias, warmup=True))
    biased = {k: np.zeros_like(np.asarray(v, np.float64)) for k, v in init.items()}  # zero-init EMA
    tf = {k: np.asarray(v, np.float64) for k, v in init.items()}  # TF: shadow starts at the variable
    prod = 1.0
    for t, p in enumerate(seq):
        d = min(decay, (1 + t) / (10 + t))
        prod *= d
        for k in init:
            biased[k] = d * biased[k] + (1 - d) * np.asarray(p[k], np.float64)
            tf[k] = d * tf[k] + (1 - d) * np.asarray(p[k], np.float64)
        state = update(state, p, decay)
        for k in init:
            expected = biased[k] / (1 - prod) if debias else tf[k]
            np.testing.assert_allclose(jreg.ema_params(state)[k], expected, rtol=1e-5, atol=1e-6)


def test_ema_vmapped_decays_equal_standalone() -> None:
    seq = _param_sequence(5)
    decays = jnp.array([0.0, 0.5, 0.9, 0.99])

    def run(decay):
        s = jreg.ema_init(seq[0])
        for p in seq:
            s = jreg.ema_update(s, p, decay, warmup=True)
        return jreg.ema_params(s)

    pop = jax.jit(jax.vmap(run))(decays)
    for i, d in enumerate([0.0, 0.5, 0.9, 0.99]):
        alone = jax.jit(run)(jnp.float32(d))
        for a, b in zip(jax.tree.leaves(pop), jax.tree.leaves(alone)):
            np.testing.assert_array_equal(a[i], b)  # member i == the standalone run, bit for bit
    # decay 0: the average is the last params
    np.testing.assert_allclose(pop["w"][0], seq[-1]["w"], rtol=1e-6)


def test_ema_errors() -> None:
    s = jreg.ema_init({"w": jnp.zeros(3)})
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="decay"):
            jreg.ema_update(s, {"w": jnp.zeros(3)}, bad)
    with pytest.raises(ValueError, match="shape"):
        jreg.ema_update(s, {"w": jnp.zeros(2)}, 0.9)


def test_swa_against_numpy() -> None:
    seq = _param_sequence(10)
    start, every = 3, 2
    state = jreg.swa_init(seq[0])
    update = jax.jit(partial(jreg.swa_update, start=start, every=every))
    snapshots = []
    for step, p in enumerate(seq):
        state = update(state, p, step)
        if step < start:
            np.testing.assert_array_equal(jreg.swa_params(state)["w"], p["w"])  # tracks current params
            assert int(state.count) == 0
            continue
        if (step - start) % every == 0:
            snapshots.append(p)
        assert int(state.count) == len(snapshots)
        for k in ("w", "b"):
            expected = np.mean([np.asarray(s[k], np.float64) for s in snapshots], axis=0)
            np.testing.assert_allclose(jreg.swa_params(state)[k], expected, rtol=1e-5, atol=1e-6)
    assert len(snapshots) == 4  # steps 3, 5, 7, 9


def test_swa_traced_start_under_vmap() -> None:
    seq = _param_sequence(6)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *seq)

    def run(start):
        def step(s, xs):
            p, i = xs
            return jreg.swa_update(s, p, i, start=start), None

        s, _ = jax.lax.scan(step, jreg.swa_init(seq[0]), (stacked, jnp.arange(len(seq))))
        return jreg.swa_params(s)

    out = jax.jit(jax.vmap(run))(jnp.array([0, 2, 5]))
    for i, start in enumerate([0, 2, 5]):
        expected = np.mean([np.asarray(p["w"]) for p in seq[start:]], axis=0)
        np.testing.assert_allclose(out["w"][i], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(out["w"][i], jax.jit(run)(jnp.int32(start))["w"])  # bit for bit


def test_swa_errors() -> None:
    s = jreg.swa_init({"w": jnp.zeros(3)})
    with pytest.raises(ValueError, match="start"):
        jreg.swa_update(s, {"w": jnp.zeros(3)}, 0, start=-1)
    with pytest.raises(ValueError, match="every"):
        jreg.swa_update(s, {"w": jnp.zeros(3)}, 0, start=0, every=0)
    with pytest.raises(TypeError, match="start"):
        jreg.swa_update(s, {"w": jnp.zeros(3)}, 0, start=1.5)
    with pytest.raises(ValueError, match="structure"):
        jreg.swa_update(s, {"v": jnp.zeros(3)}, 0, start=0)


# ------------------------------------------------------------------------------------------ BN re-estimation

FEATURES = 3


def _bn_model(momentum: float):
    """x -> dense -> batch_norm -> relu -> dense; state = {"bn": {mean, var}, "calls": int}."""

    def init(key):
        k1, k2 = jax.random.split(key)
        bn_params, bn_state = norm.batch_norm_init(FEATURES)
        params = {
            "dense_0": {"kernel": jax.random.normal(k1, (4, FEATURES)), "bias": jnp.array([1.0, -2.0, 0.5])},
            "bn": bn_params,
            "dense_1": {"kernel": jax.random.normal(k2, (FEATURES, 2)), "bias": jnp.zeros(2)},
        }
        return params, {"bn": bn_state, "calls": jnp.asarray(0, jnp.int32)}

    def features(params, x):
        return x @ params["dense_0"]["kernel"] + params["dense_0"]["bias"]

    def apply(params, state, x, *, key, train):
        del key
        h = features(params, x)
        h, bn_state = norm.batch_norm(h, params["bn"], state["bn"], train=train, momentum=momentum)
        out = jax.nn.relu(h) @ params["dense_1"]["kernel"] + params["dense_1"]["bias"]
        return out, {"bn": bn_state, "calls": state["calls"] + 1}

    return init, apply, features


def _batches(num: int = 4, size: int = 32) -> jax.Array:
    x = jax.random.normal(jax.random.key(5), (num, size, 4))
    return 3.0 * x + jnp.array([1.0, -1.0, 2.0, 0.0])


@pytest.mark.parametrize("momentum", [0.9, 0.99])
def test_reestimate_batch_norm_recovers_feature_statistics(momentum: float) -> None:
    init, apply, features = _bn_model(momentum)
    params, state = init(jax.random.key(1))
    stale = {"bn": {"mean": jnp.full((FEATURES,), 50.0), "var": jnp.full((FEATURES,), 1e3)}, "calls": jnp.asarray(7)}
    batches = _batches()
    new = jreg.reestimate_batch_norm(apply, params, stale, batches, key=KEY, momentum=momentum)
    h = np.asarray(jax.vmap(lambda x: features(params, x))(batches), np.float64)  # (K, B, F)
    np.testing.assert_allclose(new["bn"]["mean"], h.reshape(-1, FEATURES).mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new["bn"]["var"], h.var(axis=1).mean(0), rtol=1e-5)  # mean of batch variances
    np.testing.assert_allclose(new["bn"]["var"], h.reshape(-1, FEATURES).var(0), rtol=0.1)  # ~ data variance
    assert int(new["calls"]) == 7  # non-BN state untouched
    # independent of the stale statistics; the iterable path and jit give the same result
    other = jreg.reestimate_batch_norm(apply, params, state, batches, key=KEY, momentum=momentum)
    np.testing.assert_array_equal(other["bn"]["mean"], new["bn"]["mean"])
    np.testing.assert_array_equal(other["bn"]["var"], new["bn"]["var"])
    listed = jreg.reestimate_batch_norm(apply, params, stale, list(batches), key=KEY, momentum=momentum)
    np.testing.assert_allclose(listed["bn"]["mean"], new["bn"]["mean"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(listed["bn"]["var"], new["bn"]["var"], rtol=1e-6)
    jitted = jax.jit(partial(jreg.reestimate_batch_norm, apply, momentum=momentum))(params, stale, batches, key=KEY)
    np.testing.assert_allclose(jitted["bn"]["mean"], new["bn"]["mean"], rtol=1e-6, atol=1e-6)


def test_reestimate_batch_norm_after_swa() -> None:
    """SWA of two weight settings, then eval-mode BN uses the statistics of the averaged model's features."""
    init, apply, features = _bn_model(0.9)
    p1, state = init(jax.random.key(1))
    p2, _ = init(jax.random.key(2))
    s = jreg.swa_init(p1)
    s = jreg.swa_update(s, p1, 0, start=0)
    s = jreg.swa_update(s, p2, 1, start=0)
    avg = jreg.swa_params(s)
    batches = _batches(2, 64)
    new = jreg.reestimate_batch_norm(apply, avg, state, batches, key=KEY)
    h = np.asarray(jax.vmap(lambda x: features(avg, x))(batches), np.float64)
    np.testing.assert_allclose(new["bn"]["mean"], h.reshape(-1, FEATURES).mean(0), rtol=1e-5, atol=1e-5)
    # eval-mode normalized features of the whole data have mean ~0 with these statistics
    y, _ = norm.batch_norm(jnp.asarray(h.reshape(-1, FEATURES), jnp.float32), avg["bn"], new["bn"], train=False)
    np.testing.assert_allclose(np.mean(np.asarray(y), 0), avg["bn"]["bias"], atol=1e-4)


def test_reestimate_batch_norm_errors() -> None:
    init, apply, _ = _bn_model(0.9)
    params, state = init(jax.random.key(1))
    with pytest.raises(ValueError, match="batch-norm"):
        jreg.reestimate_batch_norm(apply, params, {"calls": jnp.asarray(0)}, _batches(), key=KEY)
    with pytest.raises(ValueError, match="empty"):
        jreg.reestimate_batch_norm(apply, params, state, [], key=KEY)
    with pytest.raises(ValueError, match="momentum"):
        jreg.reestimate_batch_norm(apply, params, state, _batches(), key=KEY, momentum=1.0)


# ------------------------------------------------------------------------------------------ ensembles


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_ensemble_logits_predict_accuracy_against_numpy() -> None:
    m, n, d, c = 3, 16, 5, 4
    kw, kx, ky = jax.random.split(jax.random.key(11), 3)
    stacked = {"w": jax.random.normal(kw, (m, d, c)), "b": jnp.arange(m * c, dtype=jnp.float32).reshape(m, c) * 0.1}
    x = jax.random.normal(kx, (n, d))
    labels = jax.random.randint(ky, (n,), 0, c)

    def apply(p, x):
        return x @ p["w"] + p["b"]

    logits = jreg.ensemble_logits(apply, stacked, x)
    assert logits.shape == (m, n, c)
    for i in range(m):
        np.testing.assert_allclose(logits[i], apply(jax.tree.map(lambda a: a[i], stacked), x), rtol=1e-6, atol=1e-6)

    z = np.asarray(logits, np.float64)
    mean_probs = _softmax(z).mean(0)
    np.testing.assert_allclose(np.exp(jreg.ensemble_predict(logits)), mean_probs, rtol=1e-5, atol=1e-7)
    mean_logits = _softmax(z.mean(0))
    np.testing.assert_allclose(np.exp(jreg.ensemble_predict(logits, "mean_logits")), mean_logits, rtol=1e-5, atol=1e-7)
    lab = np.asarray(labels)
    assert float(jreg.ensemble_accuracy(logits, labels)) == pytest.approx(np.mean(mean_probs.argmax(-1) == lab))
    assert float(jreg.ensemble_accuracy(logits, labels, "mean_logits")) == pytest.approx(
        np.mean(mean_logits.argmax(-1) == lab)
    )
    one_hot = jax.nn.one_hot(labels, c)
    assert float(jreg.ensemble_accuracy(logits, one_hot)) == float(jreg.ensemble_accuracy(logits, labels))
    # the two methods can disagree: one confident member dominates the logit mean, not the prob mean
    stack = jnp.array([[[3.0, 0.0]], [[0.0, 1.0]], [[0.0, 1.0]]])
    assert int(jnp.argmax(jreg.ensemble_predict(stack, "mean_logits"), -1)[0]) == 0
    assert int(jnp.argmax(jreg.ensemble_predict(stack, "mean_probs"), -1)[0]) == 1
    np.testing.assert_allclose(
        np.exp(jreg.ensemble_predict(stack))[0], _softmax(np.asarray(stack, np.float64)).mean(0)[0], rtol=1e-6
    )


def test_ensemble_errors() -> None:
    logits = jnp.zeros((3, 4, 5))
    with pytest.raises(ValueError, match="method"):
        jreg.ensemble_predict(logits, "vote")
    with pytest.raises(ValueError, match="logits_stack"):
        jreg.ensemble_predict(jnp.zeros(5))
    with pytest.raises(ValueError, match="labels"):
        jreg.ensemble_accuracy(logits, jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match="leading"):
        jreg.ensemble_logits(lambda p, x: x, {"a": jnp.zeros((3, 2)), "b": jnp.zeros((2, 2))}, jnp.zeros(2))
