"""A small Inception network (Szegedy et al., 2015): :func:`inception`, :data:`INCEPTION_BLOCKS` and its blocks.

stem conv 3x3 SAME -> norm -> act -> max-pool 2 -> [Inception block -> max-pool 2 between blocks] ->
global average pool -> dropout -> dense. An Inception block ``(c1, c3r, c3, c5r, c5, cp)`` is
``concat[b1(h), b3(b3_reduce(h)), b5(b5_reduce(h)), pool_proj(max_pool_3x3_same(h))]`` on channels
(``c1 + c3 + c5 + cp`` of them), each conv followed by norm and activation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp

from jtricks._core import checks
from jtricks.models._layers import (
    Array,
    Call,
    Model,
    Params,
    PRNGKey,
    State,
    apply_stem,
    as_nhwc,
    batch_norm_state,
    check_common,
    check_input_shape,
    conv_unit,
    init_layer,
    init_scale,
    key_sequence,
    layer_name,
    max_pool_2x2,
    max_pool_3x3_same,
    pool_head,
    too_small,
)

__all__ = ["INCEPTION_BLOCKS", "inception"]


#: Default Inception blocks: (c1, c3_reduce, c3, c5_reduce, c5, pool_proj) output channels.
INCEPTION_BLOCKS: tuple[tuple[int, int, int, int, int, int], ...] = (
    (16, 16, 24, 4, 8, 8),
    (32, 32, 48, 8, 16, 16),
)


def inception(
    num_classes: int = 10,
    *,
    stem_width: int = 32,
    blocks: Sequence[Sequence[int]] = INCEPTION_BLOCKS,
    init: str | Callable[..., Array] = "he_normal",
    activation: str = "relu",
    norm: str | None = None,
    dropout_rate: float = 0.0,
) -> Model:
    """A small network of Inception blocks (Szegedy et al., 2015, "Going deeper with convolutions").

    stem conv 3x3 SAME (``stem_width``) -> norm -> act -> max-pool 2 -> [Inception block ->
    max-pool 2 between blocks] -> global average pool -> dropout -> dense. An Inception block
    ``(c1, c3r, c3, c5r, c5, cp)`` concatenates on channels four parallel branches, each conv followed
    by norm and activation:

    * ``"b1"``: 1x1 conv to ``c1``;
    * ``"b3_reduce"`` 1x1 to ``c3r`` -> ``"b3"`` 3x3 SAME to ``c3``;
    * ``"b5_reduce"`` 1x1 to ``c5r`` -> ``"b5"`` 5x5 SAME to ``c5``;
    * 3x3 max-pool (stride 1, SAME; :func:`max_pool_3x3_same`) -> ``"pool_proj"`` 1x1 to ``cp``;

    giving ``c1 + c3 + c5 + cp`` channels. With the defaults on 28x28x1: 28 -> 14 (block 0, 56
    channels) -> 7 (block 1, 112 channels), 29,294 params. ``norm=None`` (default) is GoogLeNet-style;
    ``norm="batch"`` is BN-Inception (Ioffe & Szegedy, 2015). Pools between blocks are 2x2 stride 2
    (GoogLeNet uses 3x3 stride 2). Params ``"stem"``, ``"inception_{i}"``, ``"dense"``; one
    dropout site (0).

    Raises:
      ValueError / TypeError: for an invalid choice, naming the parameter and the allowed values.
    """
    stem_width = checks.check_positive_int(stem_width, "stem_width")
    block_specs = _check_inception_blocks(blocks)
    init_fn, init_name, rate, num_classes = check_common(init, activation, norm, dropout_rate, num_classes)

    def init_(
        key: PRNGKey, input_shape: Sequence[int], hparams: Mapping[str, Any] | None = None
    ) -> tuple[Params, State]:
        shape = check_input_shape(input_shape, (2, 3), "inception", "(H, W, C) or (H, W)")
        h, w = shape[0], shape[1]
        c = shape[2] if len(shape) == 3 else 1
        scale = init_scale(hparams)
        p: Params = {"stem": {}}
        s: State = {"stem": {}}
        next_key = key_sequence(key)

        init_layer(p["stem"], s["stem"], "conv", next_key(), (3, 3, c, stem_width), init_fn, norm, scale)
        c, h, w = stem_width, h // 2, w // 2
        if h < 1 or w < 1:
            raise too_small("inception", shape, "after the stem's 2x2 pooling")
        for i, spec in enumerate(block_specs):
            if i > 0:
                h, w = h // 2, w // 2
                if h < 1 or w < 1:
                    raise too_small("inception", shape, f"before inception_{i}")
            name = layer_name("inception", i, len(block_specs))
            p[name], s[name], c = _init_inception_block(next_key, c, spec, init_fn, norm, scale)
        init_layer(p, s, "dense", next_key(), (c, num_classes), init_fn, norm, scale, last=True)
        return p, batch_norm_state(s, norm)

    def apply(
        params: Params,
        state: State,
        x: Array,
        *,
        key: PRNGKey | None = None,
        train: bool,
        hparams: Mapping[str, Any] | None = None,
        capture: bool = False,
    ) -> Any:
        call = Call(key=key, train=train, hparams=hparams, static_rate=rate, capture=capture, activation=activation)
        h = as_nhwc(x, "inception")
        new_state: State = {}
        h = max_pool_2x2(apply_stem(call, h, params, state, new_state, norm))
        for i in range(len(block_specs)):
            if i > 0:
                h = max_pool_2x2(h)
            name = layer_name("inception", i, len(block_specs))
            h = _apply_inception_block(call, h, params, state, new_state, name, norm)
        return pool_head(call, h, params, new_state)

    config = {
        "num_classes": num_classes,
        "stem_width": stem_width,
        "blocks": [list(b) for b in block_specs],
        "init": init_name,
        "activation": activation,
        "norm": norm,
        "dropout_rate": rate,
    }
    return Model(init_, apply, "inception", config)


def _check_inception_blocks(blocks: Any) -> list[tuple[int, ...]]:
    """The validated ``(c1, c3_reduce, c3, c5_reduce, c5, pool_proj)`` tuples of :func:`inception`'s ``blocks``."""
    if isinstance(blocks, (str, bytes)) or not isinstance(blocks, Sequence) or not blocks:
        raise ValueError(f"`blocks` must be a non-empty sequence of (c1, c3r, c3, c5r, c5, cp) tuples, got {blocks!r}")
    block_specs = []
    for b in blocks:
        spec = checks.check_int_tuple(b, "blocks")
        if len(spec) != 6:
            raise ValueError(f"`blocks` entries must be (c1, c3_reduce, c3, c5_reduce, c5, pool_proj), got {b!r}")
        block_specs.append(spec)
    return block_specs


def _init_inception_block(
    next_key: Callable[[], PRNGKey],
    c: int,
    spec: Sequence[int],
    init_fn: Callable[..., Array],
    norm: str | None,
    scale: Any,
) -> tuple[Params, State, int]:
    """Params, state and output channels ``c1 + c3 + c5 + cp`` of an Inception block
    ``spec = (c1, c3r, c3, c5r, c5, cp)`` on ``c`` input channels; keys taken in the order
    ``b1, b3_reduce, b3, b5_reduce, b5, pool_proj``."""
    c1, c3r, c3, c5r, c5, cp = spec
    bp: Params = {}
    bs: State = {}
    for lname, kshape in (
        ("b1", (1, 1, c, c1)),
        ("b3_reduce", (1, 1, c, c3r)),
        ("b3", (3, 3, c3r, c3)),
        ("b5_reduce", (1, 1, c, c5r)),
        ("b5", (5, 5, c5r, c5)),
        ("pool_proj", (1, 1, c, cp)),
    ):
        init_layer(bp, bs, lname, next_key(), kshape, init_fn, norm, scale)
    return bp, bs, c1 + c3 + c5 + cp


def _apply_inception_block(
    call: Call, h: Array, params: Params, state: State, new_state: State, name: str, norm: str | None
) -> Array:
    """``concat[b1(h), b3(b3_reduce(h)), b5(b5_reduce(h)), pool_proj(max_pool_3x3_same(h))]`` on channels,
    each conv SAME-padded and followed by norm and activation; new statistics go to ``new_state[name]``."""
    bp, bs, ns = params[name], state.get(name, {}), {}

    def unit(z: Array, lname: str) -> Array:
        return conv_unit(call, z, bp, bs, ns, lname, norm, f"{name}/{lname}", padding="SAME")

    y1 = unit(h, "b1")
    y3 = unit(unit(h, "b3_reduce"), "b3")
    y5 = unit(unit(h, "b5_reduce"), "b5")
    yp = unit(max_pool_3x3_same(h), "pool_proj")
    h = jnp.concatenate([y1, y3, y5, yp], axis=-1)
    if ns:
        new_state[name] = ns
    return h
