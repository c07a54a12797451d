"""The convolutional families: :func:`cnn` (2-D, the guide's dropout notebook) and :func:`cnn1d` (MNIST-1D).

* :func:`cnn`: [conv k x k -> norm -> activation -> max-pool 2] x len(widths) -> flatten ->
  [dropout -> dense -> norm -> activation] x len(dense) -> dropout -> dense.
* :func:`cnn1d`: [conv1d (kernel ``k_i``, stride 2, zero padding 1) -> norm -> activation] x 3 ->
  flatten -> dropout -> dense.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jtricks._core import checks
from jtricks.models._layers import (
    Array,
    Call,
    Model,
    Params,
    PRNGKey,
    State,
    as_nhwc,
    as_nlc,
    check_common,
    check_input_shape,
    conv_unit,
    dense,
    flatten,
    init_dense_stack,
    init_layer,
    init_scale,
    layer_name,
    max_pool_2x2,
    normalize,
    out_len,
    too_small,
)

__all__ = ["cnn", "cnn1d"]


# --------------------------------------------------------------------------------------------
# 2-D CNN (the guide's dropout notebook)
# --------------------------------------------------------------------------------------------


def cnn(
    num_classes: int = 10,
    *,
    widths: Sequence[int] = (32, 64),
    kernel_size: int = 3,
    padding: str = "VALID",
    dense: Sequence[int] | None = None,
    init: str | Callable[..., Array] = "he_normal",
    activation: str = "relu",
    norm: str | None = None,
    dropout_rate: float = 0.0,
) -> Model:
    """Plain CNN: [conv k x k -> norm -> activation -> max-pool 2] x len(widths) -> flatten ->
    [dropout -> dense -> norm -> activation] x len(dense) -> dropout -> dense.

    The defaults are the guide's dropout-notebook network (Keras): Conv32 3x3 (VALID) ReLU ->
    MaxPool 2 -> Conv64 3x3 ReLU -> MaxPool 2 -> Flatten -> Dropout(d) -> Dense 10, 34,826 params
    on 28x28x1 inputs. Layers ``"conv_0"``, ``"conv_1"``, ..., ``"dense_0"``, ...; dropout sites are
    counted from 0 in order (before every dense layer). Pooling is :func:`max_pool_2x2` (floor mode).

    Args:
      num_classes: output units.
      widths: conv output channels, one conv + pool per entry.
      kernel_size: square kernel size of every conv.
      padding: ``"VALID"`` (Keras' default) or ``"SAME"``.
      dense: optional hidden dense widths between the flatten and the classifier.
      init, activation, norm, dropout_rate: as in :func:`mlp`; ``norm="layer"`` normalizes the
        channels at each position of a feature map.

    Raises:
      ValueError / TypeError: for an invalid choice, naming the parameter and the allowed values.
    """
    widths = checks.check_int_tuple(widths, "widths")
    kernel_size = checks.check_positive_int(kernel_size, "kernel_size")
    checks.check_choice(padding, "padding", ("VALID", "SAME"))
    dense_widths = () if dense is None else checks.check_int_tuple(dense, "dense", allow_empty=True)
    init_fn, init_name, rate, num_classes = check_common(init, activation, norm, dropout_rate, num_classes)
    n_dense = len(dense_widths) + 1

    def init_(
        key: PRNGKey, input_shape: Sequence[int], hparams: Mapping[str, Any] | None = None
    ) -> tuple[Params, State]:
        shape = check_input_shape(input_shape, (2, 3), "cnn", "(H, W, C) or (H, W)")
        h, w, c = shape if len(shape) == 3 else (*shape, 1)
        scale = init_scale(hparams)
        p: Params = {}
        s: State = {}
        for i, c_out in enumerate(widths):
            init_layer(
                p,
                s,
                layer_name("conv", i, len(widths)),
                jax.random.fold_in(key, i),
                (kernel_size, kernel_size, c, c_out),
                init_fn,
                norm,
                scale,
            )
            h, w, c = out_len(h, kernel_size, 1, padding) // 2, out_len(w, kernel_size, 1, padding) // 2, c_out
            if h < 1 or w < 1:
                raise too_small("cnn", shape, f"after conv_{i} and its 2x2 pooling")
        init_dense_stack(p, s, key, len(widths), (h * w * c, *dense_widths, num_classes), init_fn, norm, scale)
        return p, s

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
        h = as_nhwc(x, "cnn")
        new_state: State = {}
        for i in range(len(widths)):
            name = layer_name("conv", i, len(widths))
            h = max_pool_2x2(conv_unit(call, h, params, state, new_state, name, norm, name, padding=padding))
        h = _cnn_dense_head(call, flatten(h), params, state, new_state, norm, n_dense)
        return call.result(h, new_state)

    config = {
        "num_classes": num_classes,
        "widths": list(widths),
        "kernel_size": kernel_size,
        "padding": padding,
        "dense": None if dense is None else list(dense_widths),
        "init": init_name,
        "activation": activation,
        "norm": norm,
        "dropout_rate": rate,
    }
    return Model(init_, apply, "cnn", config)


def _cnn_dense_head(
    call: Call, h: Array, params: Params, state: State, new_state: State, norm: str | None, n_dense: int
) -> Array:
    """[dropout (site j) -> dense_j -> norm -> act] for the hidden dense layers, then dropout -> classifier."""
    for j in range(n_dense):
        name = layer_name("dense", j, n_dense)
        h = call.dropout(h, j)
        h = dense(h, params[name], name)
        if j < n_dense - 1:
            h = normalize(h, params, state, new_state, name, norm, call.train)
            h = call.activate(h, name)
    return h


# --------------------------------------------------------------------------------------------
# 1-D CNN (MNIST-1D)
# --------------------------------------------------------------------------------------------


def cnn1d(
    num_classes: int = 10,
    *,
    channels: Sequence[int] = (25, 25, 25),
    kernel_sizes: Sequence[int] = (5, 3, 3),
    stride: int = 2,
    padding: int = 1,
    init: str | Callable[..., Array] = "he_normal",
    activation: str = "relu",
    norm: str | None = None,
    dropout_rate: float = 0.0,
) -> Model:
    """The MNIST-1D paper's 1-D CNN (Greydanus, 2020; ``ConvBase`` in the mnist1d repository).

    [conv1d (kernel ``k_i``, stride 2, zero padding 1) -> norm -> activation] x 3 -> flatten ->
    dropout -> dense. With the defaults on length-40 signals: 40 -> 19 -> 10 -> 5 positions x 25
    channels = 125 features, 5,210 params, the same as the reference torch model (which reaches about
    94% test accuracy on MNIST-1D). Inputs are ``(N, L)`` or ``(N, L, C)`` (channels last); the
    flatten order is position-major (the torch model flattens channel-major, a fixed permutation of
    the same features). Layers ``"conv_0"`` ... and ``"dense_0"``; the one dropout site is 0.

    Args:
      num_classes: output units.
      channels: output channels of each conv.
      kernel_sizes: kernel size of each conv (same length as ``channels``).
      stride, padding: of every conv (padding: zeros on each side).
      init, activation, norm, dropout_rate: as in :func:`mlp`.

    Raises:
      ValueError / TypeError: for an invalid choice, naming the parameter and the allowed values.
    """
    channels = checks.check_int_tuple(channels, "channels")
    kernel_sizes = checks.check_int_tuple(kernel_sizes, "kernel_sizes")
    if len(kernel_sizes) != len(channels):
        raise ValueError(
            f"`kernel_sizes` must have one entry per conv (len(channels) = {len(channels)}), got {kernel_sizes}"
        )
    stride = checks.check_positive_int(stride, "stride")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"`padding` must be an int >= 0, got {padding!r}")
    padding = int(padding)
    init_fn, init_name, rate, num_classes = check_common(init, activation, norm, dropout_rate, num_classes)

    def init_(
        key: PRNGKey, input_shape: Sequence[int], hparams: Mapping[str, Any] | None = None
    ) -> tuple[Params, State]:
        shape = check_input_shape(input_shape, (1, 2), "cnn1d", "(L,) or (L, C)")
        length, c = shape if len(shape) == 2 else (shape[0], 1)
        scale = init_scale(hparams)
        p: Params = {}
        s: State = {}
        for i, (c_out, k) in enumerate(zip(channels, kernel_sizes)):
            init_layer(
                p,
                s,
                layer_name("conv", i, len(channels)),
                jax.random.fold_in(key, i),
                (k, c, c_out),
                init_fn,
                norm,
                scale,
            )
            length, c = out_len(length, k, stride, padding), c_out
            if length < 1:
                raise too_small("cnn1d", shape, f"after conv_{i}")
        init_dense_stack(p, s, key, len(channels), (length * c, num_classes), init_fn, norm, scale)
        return p, s

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
        h = as_nlc(x, "cnn1d")
        new_state: State = {}
        for i in range(len(channels)):
            name = layer_name("conv", i, len(channels))
            h = conv_unit(call, h, params, state, new_state, name, norm, name, stride=stride, padding=padding)
        h = call.dropout(flatten(h), 0)
        return call.result(dense(h, params["dense_0"], "dense_0"), new_state)

    config = {
        "num_classes": num_classes,
        "channels": list(channels),
        "kernel_sizes": list(kernel_sizes),
        "stride": stride,
        "padding": padding,
        "init": init_name,
        "activation": activation,
        "norm": norm,
        "dropout_rate": rate,
    }
    return Model(init_, apply, "cnn1d", config)
