"""Tests for jtricks.hparams: the registry's ranges, check(), defaults(), describe() and the docs table."""

from __future__ import annotations

import inspect
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import hparams as H
from jtricks import optim as O
from jtricks import train as T

NAMES = sorted(H.REGISTRY)


def _outside(h: H.HParam) -> list[float]:
    """Values just outside the allowed interval (and the excluded bounds)."""
    out = [float("nan"), float("inf")]
    if h.low is not None:
        out.append(h.low if not h.low_inclusive else h.low - 1e-3)
    if h.high is not None:
        out.append(h.high if not h.high_inclusive else h.high + 1e-3)
    return out


def _inside(h: H.HParam) -> list[float]:
    lo = h.low if h.low is not None else -1.0
    vals = [lo + 0.5 * ((h.high if h.high is not None else lo + 2.0) - lo)]
    if h.low is not None and h.low_inclusive:
        vals.append(h.low)
    if h.high is not None and h.high_inclusive:
        vals.append(h.high)
    return vals


@pytest.mark.parametrize("name", NAMES)
def test_check_enforces_the_registered_range(name: str) -> None:
    h = H.REGISTRY[name]
    for v in _inside(h):
        H.check(name, v)
        H.check(name, jnp.float32(v))
    for v in _outside(h):
        with pytest.raises(ValueError, match=re.escape(f"{name} must lie in {h.allowed()}")):
            H.check(name, v)
        with pytest.raises(ValueError, match=re.escape(f"{name} must lie in {h.allowed()}")):
            H.check(name, jnp.asarray([_inside(h)[0], v], jnp.float32))  # every element of a concrete array
    if h.default is not None:
        H.check(name, h.default)


def test_check_types_labels_and_tracers() -> None:
    with pytest.raises(TypeError, match="gamma"):
        H.check("gamma", True)
    with pytest.raises(TypeError, match="gamma"):
        H.check("gamma", "0.9")
    with pytest.raises(KeyError):
        H.check("momentum_rate", 0.9)
    with pytest.raises(ValueError, match=r"max_norm must lie in \(0, inf\), got 0.0"):
        H.check("clip_norm", 0.0, label="max_norm")
    # tracers have no value yet: not checked (a population may vmap over any value)
    out = jax.jit(lambda v: (H.check("dropout_rate", v), v * 2)[1])(jnp.float32(3.0))
    assert float(out) == 6.0
    jax.vmap(lambda v: H.check("gamma", v))(jnp.asarray([2.0, -1.0]))
    H.check("learning_rate", lambda count: 0.1)  # a schedule passes


def test_defaults_and_owners() -> None:
    assert {h.owner for h in H.REGISTRY.values()} == set(H.OWNERS)
    assert H.defaults("schedule") == {"alpha": 0.0}
    assert H.defaults("clip") == {"clip_norm": 1.0}
    assert H.defaults("loss") == {"label_smoothing": 0.0}
    assert H.defaults("engine") == T.ENGINE_HPARAMS  # the engine's defaults, in one place
    with pytest.raises(ValueError, match=r"unknown owner 'model'.*'engine'"):
        H.defaults("model")
    with pytest.raises(TypeError):
        H.REGISTRY["gamma"] = H.REGISTRY["b1"]  # type: ignore[index]


def test_registry_covers_the_builder_and_matches_the_named_signatures() -> None:
    for name, factory in O.OPTIMIZERS.items():
        for schedule in O.SCHEDULES:
            spec = O.OptimizerSpec(
                name, schedule, clip=True, weight_decay=name != "adamw", total_steps=10, warmup_steps=2
            )
            assert set(O.hparam_names(spec)) <= set(H.REGISTRY), spec
            for k, v in O.default_hparams(spec).items():
                H.check(k, v)
        for p in inspect.signature(factory).parameters.values():
            if isinstance(p.default, float) and H.REGISTRY[p.name].default is not None:
                assert H.REGISTRY[p.name].default == p.default, (name, p.name)


def test_docs_table_is_generated_from_the_registry() -> None:
    page = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "hyperparameters.md").read_text()
    table = H.describe()
    assert table in page, "docs/hyperparameters.md is out of date: paste jtricks.hparams.describe()"
    assert table.count("\n") == len(H.REGISTRY) + 2
    for code in re.findall(r"```python\n(.*?)```", page, flags=re.S):
        exec(compile(code, "docs/hyperparameters.md", "exec"), {"__name__": "__docs__"})
    assert np.all([f"`{n}`" in table for n in H.REGISTRY])
