"""Mixed-precision policy: which dtype a forward/backward pass computes in, and the casts that put it there.

A precision name sets the *compute* dtype; the parameters, the optimizer state, the batch-norm running statistics
and every reduction the metrics read stay float32 (the *master* copy):

=============  ===============  ==============================================================
precision      compute dtype    loss scaling
=============  ===============  ==============================================================
``float32``    float32          none (the program is the plain float32 one: no cast is traced)
``bfloat16``   bfloat16         none (bfloat16 has float32's exponent range)
``float16``    float16          dynamic (:mod:`jtricks.optim`'s loss scaler)
=============  ===============  ==============================================================

:func:`cast_floating` casts the floating leaves of a pytree (``x.astype(dtype)`` for ``x`` of a floating dtype;
integer and boolean leaves are left alone). Inside a differentiated function the cast's transpose casts the
cotangent back, so ``grad`` of ``f(cast_floating(params, bfloat16))`` is float32 when ``params`` is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["PRECISIONS", "COMPUTE_DTYPES", "check_precision", "compute_dtype", "cast_floating", "is_mixed"]

#: The precision names, the default first.
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16", "float16")

#: Precision name -> the dtype the forward and backward passes compute in.
COMPUTE_DTYPES: Mapping[str, Any] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def check_precision(precision: Any, name: str = "precision") -> str:
    """``precision`` when it is one of :data:`PRECISIONS`, else ``ValueError`` naming ``name`` and the choices."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"{name!r} must be one of {list(PRECISIONS)}, got {precision!r}")
    return precision


def compute_dtype(precision: str) -> Any:
    """The compute dtype of ``precision`` (:data:`COMPUTE_DTYPES`)."""
    return COMPUTE_DTYPES[check_precision(precision)]


def is_mixed(precision: str) -> bool:
    """``True`` when ``precision`` computes in a dtype other than float32 (the casts are traced)."""
    return check_precision(precision) != "float32"


def cast_floating(tree: Any, dtype: Any) -> Any:
    """Every floating leaf of ``tree`` as ``dtype`` (``leaf.astype(dtype)``); other leaves unchanged."""

    def cast(x: Any) -> Any:
        x = jnp.asarray(x)
        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x

    return jax.tree_util.tree_map(cast, tree)
