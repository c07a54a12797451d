"""The multilayer perceptron: :func:`mlp`.

flatten -> [dense -> norm -> activation -> dropout] x len(widths) -> dense:
``h_0 = flatten(x)``, ``h_{l+1} = dropout(act(norm(h_l W_l + b_l)))``, logits ``= h_L W_L + b_L``; with
``norm_position="after"``: ``h_{l+1} = dropout(norm(act(h_l W_l + b_l)))``.
"""

from __future__ import annotations

import math
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
    check_common,
    check_input_shape,
    dense,
    flatten,
    init_dense_stack,
    init_scale,
    layer_name,
    normalize,
)

__all__ = ["mlp", "NORM_POSITIONS"]

#: Where batch / layer norm sits in a hidden layer: before the activation (Ioffe & Szegedy, 2015) or after it.
NORM_POSITIONS = ("before", "after")


def mlp(
    widths: Sequence[int] = (256, 128, 100),
    num_classes: int = 10,
    *,
    init: str | Callable[..., Array] = "he_normal",
    activation: str = "relu",
    norm: str | None = None,
    dropout_rate: float = 0.0,
    norm_position: str = "before",
) -> Model:
    """Multilayer perceptron: flatten -> [dense -> norm -> activation -> dropout] x len(widths) -> dense.

    ``h_0 = flatten(x)``, ``h_{l+1} = dropout(act(norm(h_l W_l + b_l)))``, logits ``= h_L W_L + b_L``.
    Layers ``"dense_0"`` ... ``"dense_{len(widths)}"`` (the last is the classifier; indices are
    zero-padded when there are 10 or more, e.g. ``"dense_00"`` ... ``"dense_15"``); dropout site
    ``l`` follows hidden layer ``l``. ``widths=()`` is multinomial logistic regression. Deep narrow
    stacks (e.g. ``[32] * 15``) with ``capture=True`` show vanishing / exploding activations and
    gradients (Glorot & Bengio, 2010).

    Args:
      widths: hidden layer widths (default: the Fashion-MNIST benchmark's MLP 256-128-100).
      num_classes: output units.
      init: kernel initializer name (:func:`jtricks.init.get`) or an initializer callable.
      activation: one of :data:`ACTIVATIONS`.
      norm: ``None``, ``"batch"``, ``"layer"`` (after each hidden dense, before the activation; the
        dense then has no bias) or ``"weight"`` (every dense layer, classifier included).
      dropout_rate: static default drop probability, overridden by ``hparams["dropout_rate"]``.
      norm_position: one of :data:`NORM_POSITIONS`: batch / layer norm ``"before"`` the activation
        (``act(norm(h W))``, the dense without bias) or ``"after"`` it (``norm(act(h W + b))``, the dense with its
        bias); no effect without such a norm.

    Raises:
      ValueError / TypeError: for an invalid choice, naming the parameter and the allowed values.
    """
    widths = checks.check_int_tuple(widths, "widths", allow_empty=True)
    init_fn, init_name, rate, num_classes = check_common(init, activation, norm, dropout_rate, num_classes)
    checks.check_choice(norm_position, "norm_position", NORM_POSITIONS)
    after = norm_position == "after"
    n_layers = len(widths) + 1

    def init_(
        key: PRNGKey, input_shape: Sequence[int], hparams: Mapping[str, Any] | None = None
    ) -> tuple[Params, State]:
        shape = check_input_shape(input_shape, range(1, 9), "mlp", "a tuple of positive ints")
        scale = init_scale(hparams)
        p: Params = {}
        s: State = {}
        sizes = (math.prod(shape), *widths, num_classes)
        init_dense_stack(p, s, key, 0, sizes, init_fn, norm, scale, bias=True if after else None)
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
        x = jnp.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"mlp.apply: `x` must have a leading batch axis, got shape {x.shape}")
        h = flatten(x)
        new_state: State = {}
        for i in range(n_layers - 1):
            name = layer_name("dense", i, n_layers)
            h = dense(h, params[name], name)
            if after:
                h = normalize(call.activate(h, name), params, state, new_state, name, norm, call.train)
            else:
                h = call.activate(normalize(h, params, state, new_state, name, norm, call.train), name)
            h = call.dropout(h, i)
        name = layer_name("dense", n_layers - 1, n_layers)
        logits = dense(h, params[name], name)
        return call.result(logits, new_state)

    config = {
        "widths": list(widths),
        "num_classes": num_classes,
        "init": init_name,
        "activation": activation,
        "norm": norm,
        "dropout_rate": rate,
    }
    if after:  # only when not the default: the configurations recorded before the option stay as they were
        config["norm_position"] = norm_position
    return Model(init_, apply, "mlp", config)
