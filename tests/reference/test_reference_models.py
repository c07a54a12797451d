"""Every architecture against a flax.linen reference with the same (copied) parameters.

For each model: the training-mode logits, the updated batch-norm statistics and the gradient of a loss
with respect to every parameter, and the evaluation-mode logits (running statistics). The references
are written with ``nn.Conv`` / ``nn.Dense`` / ``nn.BatchNorm`` (momentum 0.9, epsilon 1e-5, the exact
two-pass variance) / ``nn.max_pool`` and take jtricks' parameter and state dicts unchanged (the layer
names match). Tolerance: float32 rounding of different summation orders, ``rtol=1e-4, atol=1e-5``
(outputs, statistics) and ``rtol=2e-4, atol=2e-5`` (gradients).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks import models

pytestmark = pytest.mark.slow  # reference comparisons of whole models: left out of `-m "not slow"`

BN = partial(nn.BatchNorm, momentum=0.9, epsilon=1e-5, use_fast_variance=False)


def _unit(
    x, c: int, k: int, name: str, *, bn: bool, train: bool, stride: int = 1, padding: Any = "SAME", act: bool = True
):
    """conv (no bias under batch norm) -> [batch norm] -> [relu], named like jtricks' layers."""
    y = nn.Conv(c, (k, k), strides=stride, padding=padding, use_bias=not bn, name=name)(x)
    if bn:
        y = BN(use_running_average=not train, name=f"{name}_bn")(y)
    return nn.relu(y) if act else y


class _Stem(nn.Module):
    width: int
    bn: bool

    @nn.compact
    def __call__(self, x, train: bool):
        return _unit(x, self.width, 3, "conv", bn=self.bn, train=train)


class _BasicBlock(nn.Module):
    c_out: int
    stride: int
    project: bool

    @nn.compact
    def __call__(self, x, train: bool):
        y = _unit(x, self.c_out, 3, "conv1", bn=True, train=train, stride=self.stride)
        y = _unit(y, self.c_out, 3, "conv2", bn=True, train=train, act=False)
        if self.project:
            x = _unit(x, self.c_out, 1, "proj", bn=True, train=train, stride=self.stride, padding="VALID", act=False)
        return nn.relu(y + x)


class FlaxResNet(nn.Module):
    stage_widths: tuple[int, ...]
    blocks_per_stage: int

    @nn.compact
    def __call__(self, x, train: bool):
        x = _Stem(self.stage_widths[0], True, name="stem")(x, train)
        c = self.stage_widths[0]
        for si, c_out in enumerate(self.stage_widths):
            for b in range(self.blocks_per_stage):
                stride = 2 if (si > 0 and b == 0) else 1
                x = _BasicBlock(c_out, stride, stride != 1 or c != c_out, name=f"stage{si + 1}_block{b}")(x, train)
                c = c_out
        return nn.Dense(10, name="dense")(jnp.mean(x, (1, 2)))


class _InceptionBlock(nn.Module):
    spec: tuple[int, ...]
    bn: bool

    @nn.compact
    def __call__(self, x, train: bool):
        c1, c3r, c3, c5r, c5, cp = self.spec
        u = partial(_unit, bn=self.bn, train=train)
        y1 = u(x, c1, 1, "b1")
        y3 = u(u(x, c3r, 1, "b3_reduce"), c3, 3, "b3")
        y5 = u(u(x, c5r, 1, "b5_reduce"), c5, 5, "b5")
        yp = u(nn.max_pool(x, (3, 3), strides=(1, 1), padding="SAME"), cp, 1, "pool_proj")
        return jnp.concatenate([y1, y3, y5, yp], axis=-1)


class FlaxInception(nn.Module):
    stem_width: int
    blocks: tuple[tuple[int, ...], ...]
    bn: bool

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.max_pool(_Stem(self.stem_width, self.bn, name="stem")(x, train), (2, 2), (2, 2))
        for i, spec in enumerate(self.blocks):
            if i > 0:
                x = nn.max_pool(x, (2, 2), (2, 2))
            x = _InceptionBlock(spec, self.bn, name=f"inception_{i}")(x, train)
        return nn.Dense(10, name="dense")(jnp.mean(x, (1, 2)))


class FlaxCNN(nn.Module):
    widths: tuple[int, ...]

    @nn.compact
    def __call__(self, x, train: bool):
        for i, c in enumerate(self.widths):
            x = nn.max_pool(_unit(x, c, 3, f"conv_{i}", bn=False, train=train, padding="VALID"), (2, 2), (2, 2))
        return nn.Dense(10, name="dense_0")(x.reshape(x.shape[0], -1))


class FlaxCNN1D(nn.Module):
    channels: tuple[int, ...]

    @nn.compact
    def __call__(self, x, train: bool):
        x = x[..., None]
        for i, (c, k) in enumerate(zip(self.channels, (5, 3, 3))):
            x = nn.relu(nn.Conv(c, (k,), strides=2, padding=[(1, 1)], name=f"conv_{i}")(x))
        return nn.Dense(10, name="dense_0")(x.reshape(x.shape[0], -1))


class FlaxMLP(nn.Module):
    widths: tuple[int, ...]

    @nn.compact
    def __call__(self, x, train: bool):
        x = x.reshape(x.shape[0], -1)
        for i, w in enumerate(self.widths):
            x = nn.Dense(w, use_bias=False, name=f"dense_{i}")(x)
            x = nn.relu(BN(use_running_average=not train, name=f"dense_{i}_bn")(x))
        return nn.Dense(10, name=f"dense_{len(self.widths)}")(x)


TINY_BLOCKS = ((2, 2, 3, 2, 2, 2), (3, 2, 2, 2, 3, 2))
CASES = {
    # stage 1: an identity shortcut; stage 2: stride 2 and a projection shortcut
    "resnet": (models.resnet(stage_widths=(4, 8), blocks_per_stage=1), FlaxResNet((4, 8), 1), (8, 8, 1)),
    "inception-bn": (
        models.inception(stem_width=4, blocks=TINY_BLOCKS, norm="batch"),
        FlaxInception(4, TINY_BLOCKS, True),
        (8, 8, 1),
    ),
    "cnn": (models.cnn(widths=(4, 6)), FlaxCNN((4, 6)), (13, 13, 1)),
    "cnn1d": (models.cnn1d(channels=(3, 4, 5)), FlaxCNN1D((3, 4, 5)), (40,)),
    "mlp-bn": (models.mlp([12, 8], norm="batch"), FlaxMLP((12, 8)), (5, 5)),
}
BATCH_NORM_CASES = ("resnet", "inception-bn", "mlp-bn")


def quick_jit(f, *args):
    """``jax.jit(f)(*args)`` (one-shot programs)."""
    return jax.jit(f)(*args)


def _loss(logits: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


@pytest.mark.parametrize("name", list(CASES))
def test_model_matches_flax_reference_in_train_and_eval_mode(name: str) -> None:
    model, ref, shape = CASES[name]
    params, state = model.init(jax.random.key(0), shape)
    # move the running statistics away from (0, 1) so that evaluation mode really reads them
    state = jax.tree_util.tree_map(lambda s: s + 0.25 * jax.random.uniform(jax.random.key(5), s.shape), state)
    x = jax.random.normal(jax.random.key(1), (6, *shape))
    y = jnp.arange(6) % 10

    def ours(p, s):
        logits, new_s = model.apply(p, s, x, train=True)
        return _loss(logits, y), (logits, new_s)

    def theirs(p, s):
        variables = {"params": p, **({"batch_stats": s} if s else {})}
        logits, upd = ref.apply(variables, x, True, mutable=["batch_stats"])
        return _loss(logits, y), (logits, upd.get("batch_stats", {}))

    (l_o, (z_o, s_o)), g_o = quick_jit(jax.value_and_grad(ours, has_aux=True), params, state)
    (l_r, (z_r, s_r)), g_r = quick_jit(jax.value_and_grad(theirs, has_aux=True), params, state)
    np.testing.assert_allclose(z_o, z_r, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(l_o, l_r, rtol=1e-5)
    assert jax.tree_util.tree_structure(s_o) == jax.tree_util.tree_structure(s_r)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), s_o, s_r)
    assert jax.tree_util.tree_structure(g_o) == jax.tree_util.tree_structure(g_r)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5), g_o, g_r)

    e_o = quick_jit(lambda p, s: model.apply(p, s, x, train=False)[0], params, state)
    e_r = quick_jit(lambda p, s: ref.apply({"params": p, **({"batch_stats": s} if s else {})}, x, False), params, state)
    np.testing.assert_allclose(e_o, e_r, rtol=1e-4, atol=1e-5)
    assert bool(state) == (name in BATCH_NORM_CASES)
    if name in BATCH_NORM_CASES:  # evaluation reads the running statistics, not the batch's
        assert not np.allclose(e_o, z_o, atol=1e-3)
