"""Formulations of the notebook CNN's convolutions, to find what runs a CPU population fastest.

Each variant is a :class:`jtricks.models.Model` with the same parameters as ``jtricks.models.cnn()``
(HWIO kernels, same names, same initialization) and the same math; only the convolution is written
differently:

* ``nhwc``: ``lax.conv_general_dilated`` on NHWC / HWIO (what ``jtricks.models.cnn`` does);
* ``nchw``: the same convolution on NCHW / OIHW (input and kernels transposed);
* ``patches``: the k×k neighbourhoods gathered by k² static slices and concatenated along the channels
  (``(N, H', W', k²·C)``), then one matmul with the ``(k²·C, C_out)`` kernel: under ``vmap`` this is a
  batched matmul instead of a grouped convolution, and its gradient is slices/pads/adds and matmuls.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jtricks import models as jmodels

VARIANTS = ("nhwc", "nchw", "patches")


def _conv(x: jax.Array, w: jax.Array, b: jax.Array, impl: str) -> jax.Array:
    if impl == "nhwc":
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + b
    if impl == "nchw":  # x is NCHW here
        y = jax.lax.conv_general_dilated(
            x, jnp.transpose(w, (3, 2, 0, 1)), (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW")
        )
        return y + b[None, :, None, None]
    kh, kw, cin, cout = w.shape
    n, h, wd, _ = x.shape
    ho, wo = h - kh + 1, wd - kw + 1
    cols = [x[:, i : i + ho, j : j + wo, :] for i in range(kh) for j in range(kw)]
    p = jnp.concatenate(cols, axis=-1)  # (N, H', W', kh*kw*C), channel order (i, j, c) = HWIO's
    y = p.reshape(n * ho * wo, kh * kw * cin) @ w.reshape(kh * kw * cin, cout)
    return y.reshape(n, ho, wo, cout) + b


def _pool_nchw(x: jax.Array) -> jax.Array:
    n, c, h, w = x.shape
    x = x[:, :, : h // 2 * 2, : w // 2 * 2]
    return jnp.max(x.reshape(n, c, h // 2, 2, w // 2, 2), axis=(3, 5))


def cnn_variant(impl: str, dropout_rate: float = 0.5) -> jmodels.Model:
    """The notebook CNN (``jtricks.models.cnn(dropout_rate=...)``) with convolutions written as ``impl``."""
    if impl not in VARIANTS:
        raise ValueError(f"impl must be one of {VARIANTS}, got {impl!r}")
    base = jmodels.cnn(10, dropout_rate=dropout_rate)

    def apply(
        params: Any,
        state: Any,
        x: jax.Array,
        *,
        key: Any = None,
        train: bool,
        hparams: Any = None,
        capture: bool = False,
    ) -> Any:
        rate = (hparams or {}).get("dropout_rate", dropout_rate)
        h = x if x.ndim == 4 else x[..., None]
        if impl == "nchw":
            h = jnp.transpose(h, (0, 3, 1, 2))
        for i in range(2):
            layer = params[f"conv_{i}"]
            h = jax.nn.relu(_conv(h, layer["kernel"], layer["bias"], impl))
            h = _pool_nchw(h) if impl == "nchw" else jmodels.max_pool_2x2(h)
        if impl == "nchw":
            h = jnp.transpose(h, (0, 2, 3, 1))  # flatten in NHWC order: same features as the NHWC model
        h = h.reshape(h.shape[0], -1)
        if train:
            from jtricks import dropout as jdropout

            h = jdropout.dropout(jax.random.fold_in(key, 0), h, rate)
        d = params["dense_0"]
        return h @ d["kernel"] + d["bias"], {}

    return jmodels.Model(base.init, apply, "cnn", dict(base.config, conv_impl=impl))
