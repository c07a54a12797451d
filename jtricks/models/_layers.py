"""The shared building blocks of jtricks' architectures (private: :mod:`jtricks.models` re-exports the public ones).

One job: everything two or more architectures share, so that each architecture's module holds only its
own structure. What is here:

* the container :class:`Model` and the type aliases ``PRNGKey``, ``Params``, ``State``, ``Array``;
* the static choices :data:`ACTIVATIONS` and :data:`NORMS` and the argument checks
  (:func:`check_common`, :func:`check_input_shape`);
* :class:`Call`, one ``apply`` call's bookkeeping: dropout site ``i`` uses key ``fold_in(key, i)`` and
  rate ``hparams["dropout_rate"]`` (else the static rate), the train flag, the captured activations
  ``{"pre": h, "post": act(h)}``;
* layers: :func:`init_layer` (kernel ``~ init_fn`` times ``hparams["init_scale"]``, bias zeros, no bias
  before a batch / layer norm, ``kernel = weight_norm(v, g) = g * v / ||v||`` with weight norm),
  :func:`dense` (``y = x @ W + b``), :func:`conv` (``lax.conv_general_dilated`` in NWC/WIO or
  NHWC/HWIO layout, plus bias), :func:`normalize` and :func:`conv_unit` (``act(norm(conv(h)))``);
* pooling (:func:`max_pool_2x2`, :func:`max_pool_3x3_same`), layer names zero-padded to depth order
  (:func:`layer_name`), input layouts and feature-map sizes;
* parameter creation: layer keys ``fold_in(key, 0)``, ``fold_in(key, 1)``, ... in creation order
  (:func:`key_sequence`), the dense stack that ends the MLP and the CNNs (:func:`init_dense_stack`);
* the stem (``act(norm(conv3x3_SAME(x)))``) and the head (global average pool -> dropout -> dense) of
  the global-pool families, ResNet and Inception (:func:`apply_stem`, :func:`pool_head`).

Every bias add and mean is one of :mod:`jtricks.numerics`' vmap-stable reductions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtricks import dropout as jdropout
from jtricks import init as jinit
from jtricks import norm as jnorm
from jtricks._core import checks
from jtricks._core import numerics as jnum

__all__ = [
    "PRNGKey",
    "Params",
    "State",
    "Array",
    "Model",
    "ACTIVATIONS",
    "NORMS",
    "check_common",
    "check_input_shape",
    "Call",
    "init_layer",
    "dense",
    "conv",
    "normalize",
    "conv_unit",
    "out_len",
    "too_small",
    "max_pool_2x2",
    "max_pool_3x3_same",
    "layer_name",
    "flatten",
    "as_nhwc",
    "as_nlc",
    "key_sequence",
    "init_scale",
    "init_dense_stack",
    "batch_norm_state",
    "apply_stem",
    "pool_head",
]

PRNGKey = jax.Array
Params = dict[str, Any]
State = dict[str, Any]
Array = jax.Array


class Model(NamedTuple):
    """A model as a pair of pure functions plus a description of its static choices.

    Attributes:
      init: ``init(key, input_shape, hparams=None) -> (params, state)``; ``input_shape`` is the shape
        of ONE example (no batch axis), e.g. ``(28, 28, 1)`` or ``(40,)``.
      apply: ``apply(params, state, x, *, key=None, train, hparams=None, capture=False)
        -> (logits, new_state)`` (``(logits, new_state, activations)`` with ``capture=True``);
        ``x`` has a leading batch axis.
      name: the architecture's name (``"mlp"``, ``"cnn"`` ...), as accepted by :func:`get`.
      config: the static choices (JSON-friendly), for manifests: ``get(name, **config)`` rebuilds it.
      batch_invariant: ``True`` when every reduction of ``apply`` and of its gradient is one of
        :mod:`jtricks.numerics`' vmap-stable sums (jtricks' own models), so a vmapped population's members
        are bit for bit their standalone runs. ``False`` for models from :mod:`jtricks.adapters` (flax,
        equinox, any user ``(init, apply)``): the engine then runs the members unrolled, one after another
        in one program, which keeps them bit-identical too.
    """

    init: Callable[..., tuple[Params, State]]
    apply: Callable[..., Any]
    name: str
    config: dict[str, Any]
    batch_invariant: bool = True


# --------------------------------------------------------------------------------------------
# static choices and their validation
# --------------------------------------------------------------------------------------------


def _gelu(x: Array) -> Array:
    return jax.nn.gelu(x, approximate=False)


def _linear(x: Array) -> Array:
    return x


#: Activation functions by name: ``relu(x) = max(x, 0)``, ``tanh``, ``sigmoid(x) = 1/(1+e^-x)``,
#: ``gelu(x) = x * Phi(x)`` (exact, erf form, as torch's default), ``linear(x) = x``.
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu": _gelu,
    "linear": _linear,
}

#: Normalization choices: no normalization, batch norm, layer norm (over the last axis, i.e. the
#: channels at each position of a feature map) and weight norm (on every kernel).
NORMS: tuple[str | None, ...] = (None, "batch", "layer", "weight")


def _check_dropout_rate(rate: Any) -> float:
    if not checks.is_python_number(rate):
        raise TypeError(
            "`dropout_rate` (the model's static default) must be a Python number in [0, 1); "
            f"got {type(rate).__name__}. Pass an array rate at call time as hparams={{'dropout_rate': r}}."
        )
    r = float(rate)
    if not (math.isfinite(r) and 0.0 <= r < 1.0):
        raise ValueError(f"`dropout_rate` must satisfy 0 <= dropout_rate < 1, got {rate!r}")
    return r


def _resolve_init(init: Any) -> tuple[Callable[..., Array], str]:
    """Return ``(initializer, name for the config)`` for a name or an initializer callable."""
    if isinstance(init, str):
        try:
            return jinit.get(init), init
        except ValueError as e:
            raise ValueError(f"`init` must be one of {', '.join(jinit.names())}; got {init!r}") from e
    if callable(init):
        return init, getattr(init, "__name__", type(init).__name__)
    raise ValueError(f"`init` must be an initializer name ({', '.join(jinit.names())}) or a callable; got {init!r}")


def check_common(
    init: Any, activation: Any, norm: Any, dropout_rate: Any, num_classes: Any, norms: Sequence[Any] = NORMS
) -> tuple[Callable[..., Array], str, float, int]:
    """Check the choices every architecture takes: ``(init_fn, init name, dropout rate, num_classes)``."""
    init_fn, init_name = _resolve_init(init)
    checks.check_choice(activation, "activation", tuple(ACTIVATIONS))
    checks.check_choice(norm, "norm", norms)
    rate = _check_dropout_rate(dropout_rate)
    num_classes = checks.check_positive_int(num_classes, "num_classes")
    return init_fn, init_name, rate, num_classes


def check_input_shape(input_shape: Any, allowed_ndims: Sequence[int], model: str, hint: str) -> tuple[int, ...]:
    """``input_shape`` (one example; an int means ``(n,)``) as a tuple of positive ints of an allowed rank."""
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (input_shape,)
    try:
        shape = tuple(int(d) for d in input_shape)
    except TypeError as e:
        raise TypeError(f"{model}.init: `input_shape` must be a tuple of ints, got {input_shape!r}") from e
    if any(d < 1 for d in shape) or len(shape) not in tuple(allowed_ndims):
        raise ValueError(f"{model}.init: `input_shape` must be {hint} (one example, no batch axis); got {shape}")
    return shape


def _check_hparams(hparams: Any) -> Mapping[str, Any]:
    if hparams is None:
        return {}
    if not isinstance(hparams, Mapping):
        raise TypeError(f"`hparams` must be a mapping (e.g. a dict) or None, got {type(hparams).__name__}")
    return hparams


# --------------------------------------------------------------------------------------------
# per-call bookkeeping: dropout keys and rate, train flag, captured activations
# --------------------------------------------------------------------------------------------


class Call:
    """Everything one ``apply`` call needs besides params / state (created per call, never shared)."""

    def __init__(
        self, *, key: Any, train: Any, hparams: Any, static_rate: float, capture: Any, activation: str
    ) -> None:
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"`train` must be a Python bool (it selects the computation), got {train!r}")
        if not isinstance(capture, (bool, np.bool_)):
            raise TypeError(f"`capture` must be a Python bool, got {capture!r}")
        hp = _check_hparams(hparams)
        self.train = bool(train)
        if "dropout_rate" in hp:
            self.rate = hp["dropout_rate"]
            self.dropout_on = self.train
        else:
            self.rate = static_rate
            self.dropout_on = self.train and static_rate > 0.0
        if self.dropout_on and key is None:
            raise ValueError(
                "`key` is required when train=True and dropout is on (dropout_rate > 0 or "
                "hparams['dropout_rate'] given); pass key=... or train=False"
            )
        self.key = key
        self.act = ACTIVATIONS[activation]
        self.acts: dict[str, Any] | None = {} if capture else None

    def dropout(self, x: Array, site: int) -> Array:
        """Inverted dropout at dropout site ``site`` with key ``fold_in(key, site)``."""
        if not self.dropout_on:
            return x
        return jdropout.dropout(jax.random.fold_in(self.key, site), x, self.rate)

    def activate(self, h: Array, name: str) -> Array:
        """Apply the activation; record ``{"pre": h, "post": act(h)}`` under ``name`` when capturing."""
        y = self.act(h)
        if self.acts is not None:
            self.acts[name] = {"pre": h, "post": y}
        return y

    def result(self, logits: Array, new_state: State) -> Any:
        if self.acts is None:
            return logits, new_state
        return logits, new_state, self.acts


# --------------------------------------------------------------------------------------------
# layers: a kernel (dense or conv) with optional bias, weight norm and a following normalization
# --------------------------------------------------------------------------------------------


def init_layer(
    p: Params,
    s: State,
    name: str,
    key: PRNGKey,
    kshape: tuple[int, ...],
    init_fn: Callable[..., Array],
    norm: str | None,
    scale: Any,
    *,
    last: bool = False,
    bias: bool | None = None,
) -> None:
    """Create layer ``name`` in ``p`` (and its norm in ``p`` / ``s``).

    Kernel ``~ init_fn`` (times ``scale`` when given), bias zeros. A layer followed by batch or layer
    norm has no bias (the norm's ``bias`` replaces it) unless ``bias=True`` (a norm after the activation: the
    activation needs the bias); the output layer (``last``) is never normalized but is weight-normalized when
    ``norm == "weight"``.
    """
    w = init_fn(key, kshape, jnp.float32)
    if scale is not None:
        w = w * jnp.asarray(scale, w.dtype)
    layer: dict[str, Array] = jnorm.weight_norm_init(w)[0] if norm == "weight" else {"kernel": w}
    normalized = (not last) and norm in ("batch", "layer")
    if (not normalized) if bias is None else bias or last:
        layer["bias"] = jnp.zeros((kshape[-1],), jnp.float32)
    p[name] = layer
    if not last and norm == "batch":
        p[name + "_bn"], s[name + "_bn"] = jnorm.batch_norm_init(kshape[-1])
    elif not last and norm == "layer":
        p[name + "_ln"], _ = jnorm.layer_norm_init(kshape[-1])


def _kernel(layer: Mapping[str, Array]) -> Array:
    """The layer's kernel: ``kernel``, or ``weight_norm(v, g) = g * v / ||v||`` when weight-normalized."""
    if "v" in layer:
        return jnorm.weight_norm(layer["v"], layer["g"])
    return layer["kernel"]


def _add_bias(h: Array, layer: Mapping[str, Array]) -> Array:
    """``h + b``; the bias gradient (a sum over the batch) is a vmap-stable pairwise sum (:mod:`jtricks.numerics`)."""
    return jnum.bias_add(h, layer["bias"]) if "bias" in layer else h


def dense(x: Array, layer: Mapping[str, Array], name: str) -> Array:
    """``y = x @ W + b`` on ``(N, n_in)``."""
    w = _kernel(layer)
    if x.ndim != 2 or x.shape[-1] != w.shape[0]:
        raise ValueError(
            f"layer {name!r} expects inputs of {w.shape[0]} features but got shape {x.shape[1:]}; "
            "is `x` shaped like the `input_shape` given to init (with a leading batch axis)?"
        )
    return _add_bias(x @ w, layer)


_DIMS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


def conv(x: Array, layer: Mapping[str, Array], name: str, *, stride: int = 1, padding: Any = "VALID") -> Array:
    """Cross-correlation ``lax.conv_general_dilated`` in NWC/WIO or NHWC/HWIO layout, plus bias."""
    w = _kernel(layer)
    nd = w.ndim - 2
    if x.ndim != nd + 2 or x.shape[-1] != w.shape[-2]:
        raise ValueError(
            f"layer {name!r} expects inputs of shape (N, {'L, ' if nd == 1 else 'H, W, '}{w.shape[-2]}) "
            f"but got {x.shape}; is `x` shaped like the `input_shape` given to init?"
        )
    if isinstance(padding, int):
        padding = [(padding, padding)] * nd
    y = jax.lax.conv_general_dilated(x, w, window_strides=(stride,) * nd, padding=padding, dimension_numbers=_DIMS[nd])
    return _add_bias(y, layer)


def normalize(h: Array, p: Params, s: State, new_s: State, name: str, norm: str | None, train: bool) -> Array:
    """Batch norm (``train`` uses batch statistics and writes ``new_s``) or layer norm after layer ``name``."""
    if norm == "batch":
        h, new_s[name + "_bn"] = jnorm.batch_norm(h, p[name + "_bn"], s[name + "_bn"], train=train)
    elif norm == "layer":
        h = jnorm.layer_norm(h, p[name + "_ln"])
    return h


def conv_unit(
    call: Call,
    h: Array,
    p: Params,
    s: State,
    new_s: State,
    lname: str,
    norm: str | None,
    path: str,
    *,
    stride: int = 1,
    padding: Any = "VALID",
) -> Array:
    """``act(norm(conv(h)))`` of conv layer ``lname`` of ``p`` (norm statistics in ``s``, updates into ``new_s``).

    ``path`` names the layer in error messages and in the captured activations.
    """
    h = conv(h, p[lname], path, stride=stride, padding=padding)
    h = normalize(h, p, s, new_s, lname, norm, call.train)
    return call.activate(h, path)


def out_len(n: int, k: int, stride: int, padding: Any) -> int:
    """Output length of a size-``k`` window with ``stride`` over ``n`` positions (VALID, SAME or int / pair padding)."""
    if padding == "VALID":
        return (n - k) // stride + 1
    if padding == "SAME":
        return -(-n // stride)
    lo, hi = (padding, padding) if isinstance(padding, int) else padding
    return (n + lo + hi - k) // stride + 1


def too_small(model: str, input_shape: tuple[int, ...], where: str) -> ValueError:
    """The error ``init`` raises when ``input_shape`` leaves an empty feature map at ``where``."""
    return ValueError(f"{model}.init: input_shape {input_shape} is too small: the feature map is empty {where}")


# --------------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------------


def max_pool_2x2(x: Array) -> Array:
    """2x2 max pooling with stride 2 on NHWC maps, floor mode (an odd last row / column is dropped).

    ``y[n, i, j, c] = max(x[n, 2i:2i+2, 2j:2j+2, c])``, as Keras ``MaxPooling2D(2)`` and
    ``flax.linen.max_pool(x, (2, 2), (2, 2))`` with VALID padding. Implemented as a crop, a reshape
    to ``(N, H/2, 2, W/2, 2, C)`` and a max over the two window axes: on XLA CPU its gradient was
    about 3x faster than that of ``lax.reduce_window`` (whose transpose is ``select_and_scatter``).
    At ties the gradient is split equally between the maxima (``jnp.max``'s rule), whereas
    ``reduce_window`` gives it to one of them; with continuous inputs there are no ties.
    """
    n, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    x = x[:, : 2 * h2, : 2 * w2, :]
    return jnp.max(x.reshape(n, h2, 2, w2, 2, c), axis=(2, 4))


def max_pool_3x3_same(x: Array) -> Array:
    """3x3 max pooling with stride 1 and SAME padding on NHWC maps (Inception's pool branch).

    ``y[n, i, j, c] = max(x[n, i-1:i+2, j-1:j+2, c])`` over the positions inside the map (padding
    never wins), as ``flax.linen.max_pool(x, (3, 3), padding="SAME")``. Written as a pad with the
    dtype's lowest value and a separable max of shifted slices (3 along H, then 3 along W) instead of
    ``lax.reduce_window``, for the same gradient-speed reason as :func:`max_pool_2x2`.
    """
    h, w = x.shape[1], x.shape[2]
    low = jnp.finfo(x.dtype).min
    xp = jnp.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0)), constant_values=low)
    x = jnp.maximum(jnp.maximum(xp[:, 0:h], xp[:, 1 : h + 1]), xp[:, 2 : h + 2])
    xp = jnp.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)), constant_values=low)
    return jnp.maximum(jnp.maximum(xp[:, :, 0:w], xp[:, :, 1 : w + 1]), xp[:, :, 2 : w + 2])


# --------------------------------------------------------------------------------------------
# names, input layouts, parameter creation
# --------------------------------------------------------------------------------------------


def layer_name(prefix: str, i: int, count: int) -> str:
    """``prefix_i`` with ``i`` zero-padded to the width of ``count - 1``: sorted keys = depth order."""
    return f"{prefix}_{i:0{len(str(max(count - 1, 0)))}d}"


def flatten(x: Array) -> Array:
    """``(N, ...)`` -> ``(N, features)``, row-major."""
    return x.reshape(x.shape[0], -1)


def as_nhwc(x: Array, name: str) -> Array:
    """Image batch ``x`` as ``(N, H, W, C)`` (``(N, H, W)`` gets one channel)."""
    x = jnp.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{name}.apply: `x` must be (N, H, W, C) or (N, H, W), got shape {x.shape}")
    return x


def as_nlc(x: Array, name: str) -> Array:
    """Signal batch ``x`` as ``(N, L, C)`` (``(N, L)`` gets one channel)."""
    h = jnp.asarray(x)
    if h.ndim == 2:
        h = h[..., None]
    if h.ndim != 3:
        raise ValueError(f"{name}.apply: `x` must be (N, L) or (N, L, C), got shape {h.shape}")
    return h


def key_sequence(key: PRNGKey) -> Callable[[], PRNGKey]:
    """Successive layer keys ``fold_in(key, 0)``, ``fold_in(key, 1)``, … in creation order."""
    counter = itertools.count()
    return lambda: jax.random.fold_in(key, next(counter))


def init_scale(hparams: Any) -> Any:
    """``hparams["init_scale"]`` (the factor on every kernel initializer's samples), or ``None``."""
    return _check_hparams(hparams).get("init_scale")


def init_dense_stack(
    p: Params,
    s: State,
    key: PRNGKey,
    first: int,
    sizes: Sequence[int],
    init_fn: Callable[..., Array],
    norm: str | None,
    scale: Any,
    *,
    bias: bool | None = None,
) -> None:
    """Dense layers ``"dense_j"`` mapping ``sizes[j]`` to ``sizes[j + 1]`` features, with parameter keys
    ``fold_in(key, first + j)``; the last one is the classifier (``last=True``); ``bias`` as in :func:`init_layer`."""
    n = len(sizes) - 1
    for j in range(n):
        init_layer(
            p,
            s,
            layer_name("dense", j, n),
            jax.random.fold_in(key, first + j),
            (sizes[j], sizes[j + 1]),
            init_fn,
            norm,
            scale,
            last=(j == n - 1),
            bias=bias,
        )


def batch_norm_state(s: State, norm: str | None) -> State:
    """The model state: the non-empty per-block entries of ``s`` with batch norm, else ``{}``."""
    return {k: v for k, v in s.items() if v} if norm == "batch" else {}


# --------------------------------------------------------------------------------------------
# stem and head of the global-pool families (ResNet, Inception)
# --------------------------------------------------------------------------------------------


def apply_stem(call: Call, h: Array, params: Params, state: State, new_state: State, norm: str | None) -> Array:
    """``act(norm(conv3x3_SAME(h)))`` of the ``"stem"`` block; its new statistics go to ``new_state["stem"]``."""
    ns: State = {}
    h = conv_unit(call, h, params["stem"], state.get("stem", {}), ns, "conv", norm, "stem/conv", padding="SAME")
    if ns:
        new_state["stem"] = ns
    return h


def pool_head(call: Call, h: Array, params: Params, new_state: State) -> Any:
    """Global average pool (vmap-stable) -> dropout (site 0) -> the ``"dense"`` classifier: the call's result."""
    h = call.dropout(jnum.mean(h, (1, 2)), 0)
    return call.result(dense(h, params["dense"], "dense"), new_state)
