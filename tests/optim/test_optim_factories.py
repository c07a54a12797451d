"""Tests for jtricks.optim's builder on top of the public factories and any optax factory.

* ``build`` equals, bit for bit, a frozen copy of the table-driven builder it replaced (every named
  optimizer x schedule x clip x weight decay, 20 jitted steps on CPU);
* any optax optimizer factory (``optax.lion``, ``optax.adafactor``, a user's factory) builds, with its
  numeric arguments as injected (vmappable) hyperparameters;
* vmapped populations through ``build`` are bit-identical to the runs alone for SGD, AdamW and Lion;
* concrete arrays are validated, tracers are not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks import optim as O

_RNG = np.random.default_rng(1)
DATA = {
    "w": (jnp.asarray(_RNG.uniform(0.3, 3.0, (4,)), jnp.float32), jnp.asarray(_RNG.normal(size=(4,)), jnp.float32)),
    "k": (jnp.asarray(_RNG.uniform(0.3, 3.0, (3, 2)), jnp.float32), jnp.asarray(_RNG.normal(size=(3, 2)), jnp.float32)),
}
P0 = {"w": jnp.full((4,), 1.5, jnp.float32), "k": jnp.full((3, 2), -1.0, jnp.float32)}


def _grad(params: dict, data: dict) -> dict:
    return {k: data[k][0] * (params[k] - data[k][1]) for k in params}


def _run(make: Callable[[dict], Any], steps: int = 20) -> Callable[[dict, dict], dict]:
    """A jittable ``(hparams, data) -> parameters after each step`` for the optimizer ``make(hparams)``."""

    def run(hp: dict, data: dict) -> dict:
        opt = make(hp)

        def body(carry: Any, _: Any) -> Any:
            p, s = carry
            u, s = opt.update(_grad(p, data), s, p)
            p = optax.apply_updates(p, u)
            return (p, s), p

        (_, _), ps = jax.lax.scan(body, (P0, opt.init(P0)), None, length=steps)
        return ps

    return run


def _assert_tree_equal(a: Any, b: Any) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert jnp.array_equal(x, y), np.max(np.abs(np.asarray(x) - np.asarray(y)))


def _f32(hp: Mapping[str, Any]) -> dict:
    return {k: jnp.float32(v) for k, v in hp.items()}


# ----------------------------------------------------------------------------------------------
# a frozen copy of the table-driven builder that build() replaced (the reference for bit-identity)
# ----------------------------------------------------------------------------------------------

_FROZEN_OPTIMIZERS: dict[str, tuple[str, ...]] = {
    "sgd": ("learning_rate",),
    "momentum": ("learning_rate", "gamma"),
    "nesterov": ("learning_rate", "gamma"),
    "adagrad": ("learning_rate", "initial_accumulator_value", "eps"),
    "rmsprop": ("learning_rate", "decay", "eps"),
    "adam": ("learning_rate", "b1", "b2", "eps"),
    "adamw": ("learning_rate", "b1", "b2", "eps", "weight_decay"),
    "normalized_sgd": ("learning_rate", "eps"),
}


def _frozen_schedule(spec: O.OptimizerSpec, hp: Mapping[str, Any]) -> Any:
    lr = hp["learning_rate"]
    if spec.schedule == "constant":
        return lr
    if spec.schedule == "per_epoch_decay":
        return O.exponential_decay(lr, hp["decay_rate"], spec.steps_per_epoch, staircase=True)
    if spec.schedule == "step":
        return O.exponential_decay(lr, hp["decay_rate"], spec.decay_every_epochs * spec.steps_per_epoch, staircase=True)
    if spec.schedule == "cosine":
        return O.cosine_decay(lr, spec.total_steps, alpha=hp["alpha"])
    return O.warmup_cosine(lr, spec.warmup_steps, spec.total_steps, init_value=0.0, end_value=hp["alpha"] * lr)


def _frozen_direction(name: str, hp: Mapping[str, Any]) -> optax.GradientTransformation:
    if name == "sgd":
        return optax.identity()
    if name == "momentum":
        return optax.trace(decay=hp["gamma"])
    if name == "nesterov":
        return O.trace_nesterov(hp["gamma"])
    if name == "adagrad":
        return optax.scale_by_rss(initial_accumulator_value=hp["initial_accumulator_value"], eps=hp["eps"])
    if name == "rmsprop":
        return optax.scale_by_rms(decay=hp["decay"], eps=hp["eps"])
    if name in ("adam", "adamw"):
        return O.scale_by_adam(b1=hp["b1"], b2=hp["b2"], eps=hp["eps"])
    return O.scale_by_inverse_global_norm(eps=hp["eps"])


def _frozen_build(spec: O.OptimizerSpec, hparams: Mapping[str, Any]) -> optax.GradientTransformation:
    names = list(_FROZEN_OPTIMIZERS[spec.name]) + list(O.SCHEDULES[spec.schedule])
    names += ["clip_norm"] * spec.clip + ["weight_decay"] * spec.weight_decay

    def factory(**hp: Any) -> optax.GradientTransformation:
        parts = [O.clip_by_global_norm(hp["clip_norm"])] if spec.clip else []
        parts.append(_frozen_direction(spec.name, hp))
        if spec.name == "adamw" or spec.weight_decay:
            parts.append(optax.add_decayed_weights(hp["weight_decay"], spec.weight_decay_mask))
        parts.append(optax.scale_by_learning_rate(_frozen_schedule(spec, hp)))
        return optax.chain(*parts)

    factory.__signature__ = __import__("inspect").Signature(  # type: ignore[attr-defined]
        [__import__("inspect").Parameter(n, __import__("inspect").Parameter.KEYWORD_ONLY) for n in names]
    )
    return optax.inject_hyperparams(factory)(**{k: hparams[k] for k in names})


# non-default values (so that every hyperparameter matters), as the engine passes them: 0-d float32
_VALUES = {
    "learning_rate": 0.07,
    "gamma": 0.8,
    "initial_accumulator_value": 0.2,
    "eps": 1e-3,
    "decay": 0.85,
    "b1": 0.85,
    "b2": 0.99,
    "weight_decay": 0.03,
    "decay_rate": 0.7,
    "alpha": 0.2,
    "clip_norm": 0.8,
}


def _combos() -> list[tuple[str, str, bool, bool]]:
    out = []
    for name in sorted(_FROZEN_OPTIMIZERS):
        for schedule in sorted(O.SCHEDULES):
            for clip in (False, True):
                for wd in (False, True):
                    if not (name == "adamw" and wd):
                        out.append((name, schedule, clip, wd))
    return out


def _spec(name: str, schedule: str, clip: bool, wd: bool) -> O.OptimizerSpec:
    return O.OptimizerSpec(
        name, schedule, clip=clip, weight_decay=wd, steps_per_epoch=3, total_steps=15, warmup_steps=4
    )


def _hp(spec: O.OptimizerSpec) -> dict:
    assert set(O.hparam_names(spec)) <= set(_VALUES)
    return _f32({k: _VALUES[k] for k in O.hparam_names(spec)})


def test_build_traces_to_the_frozen_builders_program() -> None:
    """Every named optimizer x schedule x clip x weight decay: the 20-step run's jaxpr is the same program.

    The same jaxpr compiles to the same executable, so the results are equal bit for bit; the jitted
    runs of the next test check the values themselves.
    """
    combos = _combos()
    assert len(combos) == 8 * 5 * 2 * 2 - 5 * 2
    for combo in combos:
        spec = _spec(*combo)
        hp = _hp(spec)
        new = jax.make_jaxpr(_run(lambda h: O.build(spec, h)))(hp, DATA)
        old = jax.make_jaxpr(_run(lambda h: _frozen_build(spec, h)))(hp, DATA)
        assert str(new) == str(old), combo


@pytest.mark.parametrize("name", sorted(_FROZEN_OPTIMIZERS))
def test_build_equals_frozen_table_builder_bit_for_bit(name: str) -> None:
    """Jitted runs of 20 steps: identical parameters after every step (one schedule per optimizer, clipped)."""
    schedule = sorted(O.SCHEDULES)[sorted(_FROZEN_OPTIMIZERS).index(name) % len(O.SCHEDULES)]
    spec = _spec(name, schedule, True, name != "adamw")
    hp = _hp(spec)
    new = jax.jit(_run(lambda h: O.build(spec, h)))(hp, DATA)
    old = jax.jit(_run(lambda h: _frozen_build(spec, h)))(hp, DATA)
    _assert_tree_equal(new, old)
    assert not jnp.array_equal(new["w"][-1], P0["w"])  # the run moves


# ----------------------------------------------------------------------------------------------
# any optax optimizer factory
# ----------------------------------------------------------------------------------------------


def _my_sgd(learning_rate: Any, momentum: float = 0.5, nesterov: bool = False, steps: int = 3) -> Any:
    """A user's factory: ``momentum`` (float default) is a hyperparameter; bool / int ones stay static."""
    del steps
    return optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)


def _my_decayed(learning_rate: Any, weight_decay: Any = None, mask: Any = None) -> Any:
    if weight_decay is None:
        return optax.sgd(learning_rate)
    return optax.chain(optax.add_decayed_weights(weight_decay, mask), optax.sgd(learning_rate))


def _decay_no_mask(learning_rate: Any, weight_decay: float = 0.1) -> Any:
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate))


def test_factory_hyperparameters_come_from_the_signature() -> None:
    assert O.hparam_names(O.OptimizerSpec(optax.lion)) == ("learning_rate", "b1", "b2", "weight_decay")
    # adafactor: float defaults only; ints (min_dim_size_to_factor, decay_offset), bools and None stay static
    spec = O.OptimizerSpec(optax.adafactor, "cosine", clip=True, total_steps=10)
    assert O.hparam_names(spec) == ("learning_rate", "decay_rate", "clipping_threshold", "eps", "alpha", "clip_norm")
    assert O.hparam_names(O.OptimizerSpec(_my_sgd)) == ("learning_rate", "momentum")
    assert O.hparam_names(O.OptimizerSpec(_my_decayed, weight_decay=True)) == ("learning_rate", "weight_decay")
    for factory in (optax.lion, optax.adafactor, _my_sgd):
        with pytest.raises(ValueError, match="no default learning_rate"):
            O.default_hparams(O.OptimizerSpec(factory))


def test_named_factories_are_the_builders_optimizers() -> None:
    assert O.OPTIMIZERS["adam"] is O.adam and O.OPTIMIZERS["normalized_sgd"] is O.normalized_sgd
    assert O.hparam_names(O.OptimizerSpec("momentum", "per_epoch_decay", clip=True)) == (
        "learning_rate",
        "gamma",
        "decay_rate",
        "clip_norm",
    )


def test_lion_through_build_equals_optax_lion() -> None:
    spec = O.OptimizerSpec(optax.lion)
    hp = _f32({"learning_rate": 0.01, "b1": 0.8, "b2": 0.95, "weight_decay": 0.05})
    ours = jax.jit(_run(lambda h: O.build(spec, h)))(hp, DATA)
    ref = jax.jit(_run(lambda h: optax.lion(h["learning_rate"], h["b1"], h["b2"], weight_decay=h["weight_decay"])))(
        hp, DATA
    )
    _assert_tree_equal(ours, ref)


def test_adafactor_with_schedule_and_clip_equals_the_optax_chain() -> None:
    spec = O.OptimizerSpec(optax.adafactor, "cosine", clip=True, total_steps=20)
    hp = _f32(
        {
            "learning_rate": 0.05,
            "decay_rate": 0.8,
            "clipping_threshold": 1.0,
            "eps": 1e-30,
            "alpha": 0.1,
            "clip_norm": 0.5,
        }
    )

    def ref(h: dict) -> Any:
        sched = O.cosine_decay(h["learning_rate"], 20, alpha=h["alpha"])
        return optax.chain(
            O.clip_by_global_norm(h["clip_norm"]),
            optax.adafactor(
                sched, decay_rate=h["decay_rate"], clipping_threshold=h["clipping_threshold"], eps=h["eps"]
            ),
        )

    ours = jax.jit(_run(lambda h: O.build(spec, h)))(hp, DATA)
    _assert_tree_equal(ours, jax.jit(_run(ref))(hp, DATA))
    assert not jnp.array_equal(ours["w"][-1], P0["w"])


def test_weight_decay_and_mask_through_a_factory() -> None:
    mask = lambda p: {"w": True, "k": False}  # noqa: E731
    spec = O.OptimizerSpec(_my_decayed, weight_decay=True, weight_decay_mask=mask)
    hp = _f32({"learning_rate": 0.1, "weight_decay": 0.5})
    ours = jax.jit(_run(lambda h: O.build(spec, h)))(hp, DATA)
    ref = jax.jit(_run(lambda h: _my_decayed(h["learning_rate"], h["weight_decay"], mask)))(hp, DATA)
    _assert_tree_equal(ours, ref)
    # the named optimizers take weight_decay / mask themselves: adam(weight_decay=...) is adamw
    hp = _f32({"learning_rate": 0.05, "weight_decay": 0.1})
    a = jax.jit(_run(lambda h: O.adam(h["learning_rate"], weight_decay=h["weight_decay"], mask=mask)))(hp, DATA)
    b = jax.jit(_run(lambda h: O.adamw(h["learning_rate"], weight_decay=h["weight_decay"], mask=mask)))(hp, DATA)
    _assert_tree_equal(a, b)


BAD_SPECS = [
    (lambda: O.OptimizerSpec(123), TypeError, r"one of \[.*'adam'.*optax.lion"),  # type: ignore[arg-type]
    (lambda: O.OptimizerSpec(optax.adam(1e-3)), TypeError, r"'sgd'"),  # a transformation, not a factory
    (lambda: O.OptimizerSpec(optax.GradientTransformation), TypeError, r"'sgd'"),  # a class
    (lambda: O.OptimizerSpec(jnp.sin), ValueError, r"no learning_rate parameter.*'adam'"),
    (lambda: O.OptimizerSpec("lion"), ValueError, r"unknown optimizer name 'lion'.*'adamw'"),
    (lambda: O.OptimizerSpec(optax.adam, weight_decay=True), ValueError, r"optax.adam has none"),
    (lambda: O.OptimizerSpec(optax.lion, weight_decay=True), ValueError, r"optax.lion would decay twice"),
    (lambda: O.OptimizerSpec(optax.adafactor, "per_epoch_decay"), ValueError, r"\['decay_rate'\]"),
    (lambda: O.OptimizerSpec(_decay_no_mask, weight_decay_mask=lambda p: p), ValueError, r"mask parameter"),
]


@pytest.mark.parametrize("i", range(len(BAD_SPECS)))
def test_bad_optimizer_names_raise_clear_errors(i: int) -> None:
    make, exc, pattern = BAD_SPECS[i]
    with pytest.raises(exc, match=pattern):
        make()


def test_factory_that_does_not_return_a_transformation_fails_in_build() -> None:
    spec = O.OptimizerSpec(lambda learning_rate=0.1: learning_rate)
    with pytest.raises(TypeError, match="GradientTransformation"):
        O.build(spec, {"learning_rate": 0.1})


def test_factory_hyperparameters_are_validated() -> None:
    spec = O.OptimizerSpec(optax.lion)
    with pytest.raises(ValueError, match=r"b2 must lie in \[0, 1\)"):
        O.build(spec, {"learning_rate": 0.1, "b1": 0.9, "b2": 1.0, "weight_decay": 0.0})
    spec = O.OptimizerSpec(optax.adafactor)
    with pytest.raises(ValueError, match="'clipping_threshold' must be finite"):
        O.build(spec, {"learning_rate": 0.1, "decay_rate": 0.8, "clipping_threshold": float("inf"), "eps": 1e-30})


# ----------------------------------------------------------------------------------------------
# concrete arrays are checked, tracers are not
# ----------------------------------------------------------------------------------------------


def test_concrete_arrays_are_validated() -> None:
    with pytest.raises(ValueError, match=r"learning_rate must lie in \[0, inf\)"):
        O.sgd(jnp.array(-0.1))
    with pytest.raises(ValueError, match=r"gamma must lie in \[0, 1\)"):
        O.momentum(0.1, np.float32(1.0) + jnp.zeros(()))
    with pytest.raises(ValueError, match="max_norm"):
        O.clip_by_global_norm(jnp.array(0.0))
    spec = O.OptimizerSpec("adam", "per_epoch_decay")
    with pytest.raises(ValueError, match="decay_rate"):
        O.build(spec, {**_f32(O.default_hparams(spec)), "decay_rate": jnp.float32(1.5)})
    with pytest.raises(ValueError, match="learning_rate"):
        O.build(O.OptimizerSpec(optax.lion), _f32({"learning_rate": -1.0, "b1": 0.9, "b2": 0.99, "weight_decay": 0.0}))


def test_traced_values_are_not_validated() -> None:
    spec = O.OptimizerSpec("sgd")

    @jax.jit
    def step(lr: jax.Array) -> Any:
        opt = O.build(spec, {"learning_rate": lr})
        return opt.update({"x": jnp.ones(2)}, opt.init({"x": jnp.ones(2)}))[0]

    np.testing.assert_array_equal(step(jnp.float32(-0.5))["x"], [0.5, 0.5])  # a negative rate runs when traced


# ----------------------------------------------------------------------------------------------
# population = vmap through build, including an optax factory
# ----------------------------------------------------------------------------------------------

POPULATIONS = {
    "sgd": (O.OptimizerSpec("sgd", "per_epoch_decay", clip=True, steps_per_epoch=3), {}),
    "adamw": (
        O.OptimizerSpec("adamw", "warmup_cosine", clip=True, total_steps=20, warmup_steps=4),
        {"b2": [0.999, 0.99, 0.9, 0.999], "weight_decay": [1e-4, 1e-2, 0.1, 0.0]},
    ),
    "optax.lion": (
        O.OptimizerSpec(optax.lion, "per_epoch_decay", clip=True, steps_per_epoch=3),
        {"b1": [0.9, 0.8, 0.95, 0.5], "b2": [0.99, 0.9, 0.999, 0.95], "weight_decay": [1e-3, 0.0, 0.1, 1e-2]},
    ),
}


@pytest.mark.parametrize("name", sorted(POPULATIONS))
def test_vmapped_population_through_build_equals_runs_alone(name: str) -> None:
    """jax.vmap over stacked hyperparameters == each member alone (0-d float32 hparams), bit for bit."""
    spec, extra = POPULATIONS[name]
    lrs, clip_norms = [0.01, 0.1, 0.3, 0.05], [0.5, 100.0, 1.0, 0.2]  # clipping active in some members only
    hps = []
    for i, lr in enumerate(lrs):
        hp = O.default_hparams(spec) if isinstance(spec.name, str) else {}
        hp.update({"learning_rate": lr, "clip_norm": clip_norms[i], "decay_rate": 0.9, "alpha": 0.1})
        hp.update({k: v[i] for k, v in extra.items()})
        hps.append(_f32({k: hp[k] for k in O.hparam_names(spec)}))
    run = _run(lambda h: O.build(spec, h))
    alone = [jax.jit(run)(hp, DATA) for hp in hps]
    together = jax.jit(jax.vmap(run, in_axes=(0, None)))(jax.tree.map(lambda *xs: jnp.stack(xs), *hps), DATA)
    for i in range(len(lrs)):
        _assert_tree_equal(jax.tree.map(lambda x: x[i], together), alone[i])
    assert not np.allclose(np.asarray(together["w"][-1][0]), np.asarray(together["w"][-1][1]))
