"""ResNet for small images (He et al., 2016): :func:`resnet` and its basic blocks.

stem conv 3x3 -> norm -> act -> stages of basic blocks -> global average pool -> dropout -> dense, a
basic block being ``y = act(norm(conv3x3(act(norm(conv3x3_s(x))))) + shortcut(x))`` with
``shortcut = norm(conv1x1_s(x))`` (a projection) where the shape changes, else the identity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

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
    conv,
    conv_unit,
    init_layer,
    init_scale,
    key_sequence,
    normalize,
    pool_head,
)

__all__ = ["resnet"]


def resnet(
    num_classes: int = 10,
    *,
    stage_widths: Sequence[int] = (16, 32, 64),
    blocks_per_stage: int = 3,
    init: str | Callable[..., Array] = "he_normal",
    activation: str = "relu",
    norm: str | None = "batch",
    dropout_rate: float = 0.0,
) -> Model:
    """ResNet for small images (He et al., 2016, the CIFAR ResNet-20 layout by default).

    stem conv 3x3 (``stage_widths[0]`` channels) -> norm -> act -> stages of ``blocks_per_stage``
    basic blocks -> global average pool -> dropout -> dense. A basic block is
    ``y = act(norm(conv3x3(act(norm(conv3x3_s(x))))) + shortcut(x))`` with stride ``s = 2`` in the
    first block of every stage after the first, and ``shortcut = norm(conv1x1_s(x))`` (a projection,
    "option B") where the shape changes, else the identity. All convs are SAME-padded, so 28x28 maps
    become 28 -> 14 -> 7. Defaults: 3 stages x 3 blocks x 2 convs + stem + dense = 20 layers,
    272,186 params on 28x28x1. Params: ``"stem"``, ``"stage{s}_block{b}"`` (``"conv1"``,
    ``"conv2"``, ``"proj"`` and their ``"_bn"``), ``"dense"``; one dropout site (0).

    Args:
      num_classes: output units.
      stage_widths: channels of each stage.
      blocks_per_stage: basic blocks per stage (1 gives a small 8-layer variant for tests).
      init, activation, dropout_rate: as in :func:`mlp`.
      norm: ``"batch"`` (default), ``None``, ``"layer"`` or ``"weight"``; convs followed by batch or
        layer norm have no bias.

    Raises:
      ValueError / TypeError: for an invalid choice, naming the parameter and the allowed values.
    """
    stage_widths = checks.check_int_tuple(stage_widths, "stage_widths")
    blocks_per_stage = checks.check_positive_int(blocks_per_stage, "blocks_per_stage")
    init_fn, init_name, rate, num_classes = check_common(init, activation, norm, dropout_rate, num_classes)
    blocks = _resnet_blocks(stage_widths, blocks_per_stage)

    def init_(
        key: PRNGKey, input_shape: Sequence[int], hparams: Mapping[str, Any] | None = None
    ) -> tuple[Params, State]:
        shape = check_input_shape(input_shape, (2, 3), "resnet", "(H, W, C) or (H, W)")
        c = shape[2] if len(shape) == 3 else 1
        scale = init_scale(hparams)
        p: Params = {"stem": {}}
        s: State = {"stem": {}}
        next_key = key_sequence(key)

        init_layer(p["stem"], s["stem"], "conv", next_key(), (3, 3, c, stage_widths[0]), init_fn, norm, scale)
        c = stage_widths[0]
        for name, stride, c_out in blocks:
            p[name], s[name] = _init_basic_block(next_key, c, c_out, stride, init_fn, norm, scale)
            c = c_out
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
        h = as_nhwc(x, "resnet")
        new_state: State = {}
        h = apply_stem(call, h, params, state, new_state, norm)
        for name, stride, _ in blocks:
            h = _apply_basic_block(call, h, params, state, new_state, name, stride, norm)
        return pool_head(call, h, params, new_state)

    config = {
        "num_classes": num_classes,
        "stage_widths": list(stage_widths),
        "blocks_per_stage": blocks_per_stage,
        "init": init_name,
        "activation": activation,
        "norm": norm,
        "dropout_rate": rate,
    }
    return Model(init_, apply, "resnet", config)


def _resnet_blocks(stage_widths: Sequence[int], blocks_per_stage: int) -> list[tuple[str, int, int]]:
    """``(name, stride, c_out)`` of every basic block, in order: stride 2 opens every stage after the first."""
    out = []
    for si, c_out in enumerate(stage_widths):
        for b in range(blocks_per_stage):
            stage = f"{si + 1:0{len(str(len(stage_widths)))}d}"
            block = f"{b:0{len(str(blocks_per_stage - 1))}d}"
            out.append((f"stage{stage}_block{block}", 2 if (si > 0 and b == 0) else 1, c_out))
    return out


def _init_basic_block(
    next_key: Callable[[], PRNGKey],
    c: int,
    c_out: int,
    stride: int,
    init_fn: Callable[..., Array],
    norm: str | None,
    scale: Any,
) -> tuple[Params, State]:
    """Params and state of a basic block from ``c`` to ``c_out`` channels: ``"conv1"`` (3x3), ``"conv2"``
    (3x3) and, where the shape changes, the projection ``"proj"`` (1x1), with keys taken in that order."""
    bp: Params = {}
    bs: State = {}
    init_layer(bp, bs, "conv1", next_key(), (3, 3, c, c_out), init_fn, norm, scale)
    init_layer(bp, bs, "conv2", next_key(), (3, 3, c_out, c_out), init_fn, norm, scale)
    if stride != 1 or c != c_out:
        init_layer(bp, bs, "proj", next_key(), (1, 1, c, c_out), init_fn, norm, scale)
    return bp, bs


def _apply_basic_block(
    call: Call, h: Array, params: Params, state: State, new_state: State, name: str, stride: int, norm: str | None
) -> Array:
    """``act(norm(conv3x3(act(norm(conv3x3_s(h))))) + shortcut(h))`` of block ``name``, the shortcut being
    ``norm(conv1x1_s(h))`` when the block has ``"proj"``, else ``h``; new statistics go to ``new_state[name]``."""
    bp, bs, ns = params[name], state.get(name, {}), {}
    y = conv_unit(call, h, bp, bs, ns, "conv1", norm, f"{name}/conv1", stride=stride, padding="SAME")
    y = conv(y, bp["conv2"], f"{name}/conv2", padding="SAME")
    y = normalize(y, bp, bs, ns, "conv2", norm, call.train)
    if "proj" in bp:
        h = conv(h, bp["proj"], f"{name}/proj", stride=stride, padding="VALID")
        h = normalize(h, bp, bs, ns, "proj", norm, call.train)
    h = call.activate(y + h, f"{name}/conv2")
    if ns:
        new_state[name] = ns
    return h
