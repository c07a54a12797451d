"""Models as pairs of pure functions ``(init, apply)`` whose trick choices are arguments.

A :class:`Model` is a small frozen container of two pure functions and a description::

    params, state = model.init(key, input_shape)                 # input_shape per example, e.g. (28, 28, 1)
    logits, state = model.apply(params, state, x, key=key, train=True, hparams=None)

* ``params`` are nested dicts with readable layer names (``"dense_0"``, ``"conv_1"``,
  ``"stage2_block0"`` ...). Indices are zero-padded to a common width when a model has 10 or more
  layers of a kind (``"dense_00"`` ... ``"dense_19"``), so sorted keys (the order of a dict that
  went through ``jax.jit``) are depth order. A layer holds ``{"kernel", "bias"}`` (the flax names), or
  ``{"v", "g", "bias"}`` with weight normalization (``kernel = weight_norm(v, g)``). A batch-norm
  layer after layer ``L`` is ``"L_bn"`` (``{"scale", "bias"}``), a layer norm ``"L_ln"``.
* ``state`` holds the batch-norm running statistics (``state["L_bn"] = {"mean", "var"}``, mirroring
  the params' nesting), and is ``{}`` for a model without batch norm.
* ``apply(..., train=True)`` uses dropout and batch statistics and returns the updated running
  statistics; ``train=False`` (evaluation) turns dropout off, uses the running statistics and returns
  ``state`` unchanged.
* ``hparams`` is an optional mapping of hyperparameters that may be traced arrays, so one compiled
  model serves a ``jax.vmap`` over a grid: ``hparams["dropout_rate"]`` overrides the model's static
  ``dropout_rate``; ``init(key, shape, hparams={"init_scale": s})`` multiplies every kernel
  initializer's samples by ``s``. Other keys are ignored (the whole run's hparams may be passed).
* Dropout key of dropout site ``i`` (counted from the input): ``jax.random.fold_in(key, i)``.
  Parameter key of layer ``i``: ``jax.random.fold_in(key, i)`` (layers counted in creation order), so
  adding a layer at the end never changes the earlier layers' initial weights.
* ``apply(..., capture=True)`` returns ``(logits, new_state, activations)`` with
  ``activations[layer] = {"pre": ..., "post": ...}`` (the input and the output of the nonlinearity)
  for every hidden layer: what :mod:`jtricks.diagnostics` needs to show vanishing / exploding signals.

Every model is built only from :mod:`jtricks.init`, :mod:`jtricks.norm`, :mod:`jtricks.dropout`,
``jax.lax`` and ``jax.numpy``, so its pieces drop into flax or equinox models unchanged.

Example::

    import jax, jax.numpy as jnp
    from jtricks import models

    model = models.cnn(dropout_rate=0.5)                       # the guide's dropout-notebook CNN
    params, state = model.init(jax.random.key(0), (28, 28, 1))
    print(models.summary(model, params))                       # ... 34,826 params
    x = jnp.zeros((8, 28, 28, 1))
    logits, state = model.apply(params, state, x, key=jax.random.key(1), train=True)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._core import checks
from jtricks import dropout as dropout_lib
from jtricks import init as init_lib
from jtricks import norm as norm_lib
from jtricks._core import numerics

__all__ = [
    "Model",
    "ACTIVATIONS",
    "NORMS",
    "mlp",
    "cnn",
    "cnn1d",
    "resnet",
    "inception",
    "max_pool_2x2",
    "max_pool_3x3_same",
    "count_params",
    "summary",
    "names",
    "register_model",
    "unregister_model",
    "factory",
    "get",
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
            return init_lib.get(init), init
        except ValueError as e:
            raise ValueError(f"`init` must be one of {', '.join(init_lib.names())}; got {init!r}") from e
    if callable(init):
        return init, getattr(init, "__name__", type(init).__name__)
    raise ValueError(f"`init` must be an initializer name ({', '.join(init_lib.names())}) or a callable; got {init!r}")


def _check_common(init: Any, activation: Any, norm: Any, dropout_rate: Any, num_classes: Any,
                  norms: Sequence[Any] = NORMS) -> tuple[Callable[..., Array], str, float, int]:
    init_fn, init_name = _resolve_init(init)
    checks.check_choice(activation, "activation", tuple(ACTIVATIONS))
    checks.check_choice(norm, "norm", norms)
    rate = _check_dropout_rate(dropout_rate)
    num_classes = checks.check_positive_int(num_classes, "num_classes")
    return init_fn, init_name, rate, num_classes


def _check_input_shape(input_shape: Any, allowed_ndims: Sequence[int], model: str, hint: str) -> tuple[int, ...]:
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


class _Call:
    """Everything one ``apply`` call needs besides params / state (created per call, never shared)."""

    def __init__(self, *, key: Any, train: Any, hparams: Any, static_rate: float, capture: Any,
                 activation: str) -> None:
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
        return dropout_lib.dropout(jax.random.fold_in(self.key, site), x, self.rate)

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


def _init_layer(p: Params, s: State, name: str, key: PRNGKey, kshape: tuple[int, ...],
                init_fn: Callable[..., Array], norm: str | None, scale: Any, *, last: bool = False) -> None:
    """Create layer ``name`` in ``p`` (and its norm in ``p`` / ``s``).

    Kernel ``~ init_fn`` (times ``scale`` when given), bias zeros. A layer followed by batch or layer
    norm has no bias (the norm's ``bias`` replaces it); the output layer (``last``) is never normalized
    but is weight-normalized when ``norm == "weight"``.
    """
    w = init_fn(key, kshape, jnp.float32)
    if scale is not None:
        w = w * jnp.asarray(scale, w.dtype)
    layer: dict[str, Array] = norm_lib.weight_norm_init(w)[0] if norm == "weight" else {"kernel": w}
    normalized = (not last) and norm in ("batch", "layer")
    if not normalized:
        layer["bias"] = jnp.zeros((kshape[-1],), jnp.float32)
    p[name] = layer
    if not last and norm == "batch":
        p[name + "_bn"], s[name + "_bn"] = norm_lib.batch_norm_init(kshape[-1])
    elif not last and norm == "layer":
        p[name + "_ln"], _ = norm_lib.layer_norm_init(kshape[-1])


def _kernel(layer: Mapping[str, Array]) -> Array:
    """The layer's kernel: ``kernel``, or ``weight_norm(v, g) = g * v / ||v||`` when weight-normalized."""
    if "v" in layer:
        return norm_lib.weight_norm(layer["v"], layer["g"])
    return layer["kernel"]


def _add_bias(h: Array, layer: Mapping[str, Array]) -> Array:
    """``h + b``; the bias gradient (a sum over the batch) is a vmap-stable pairwise sum (:mod:`jtricks.numerics`)."""
    return numerics.bias_add(h, layer["bias"]) if "bias" in layer else h


def _dense(x: Array, layer: Mapping[str, Array], name: str) -> Array:
    """``y = x @ W + b`` on ``(N, n_in)``."""
    w = _kernel(layer)
    if x.ndim != 2 or x.shape[-1] != w.shape[0]:
        raise ValueError(
            f"layer {name!r} expects inputs of {w.shape[0]} features but got shape {x.shape[1:]}; "
            "is `x` shaped like the `input_shape` given to init (with a leading batch axis)?"
        )
    return _add_bias(x @ w, layer)


_DIMS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


def _conv(x: Array, layer: Mapping[str, Array], name: str, *, stride: int = 1, padding: Any = "VALID") -> Array:
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
    y = jax.lax.conv_general_dilated(
        x, w, window_strides=(stride,) * nd, padding=padding, dimension_numbers=_DIMS[nd]
    )
    return _add_bias(y, layer)


def _normalize(h: Array, p: Params, s: State, new_s: State, name: str, norm: str | None, train: bool) -> Array:
    """Batch norm (``train`` uses batch statistics and writes ``new_s``) or layer norm after layer ``name``."""
    if norm == "batch":
        h, new_s[name + "_bn"] = norm_lib.batch_norm(h, p[name + "_bn"], s[name + "_bn"], train=train)
    elif norm == "layer":
        h = norm_lib.layer_norm(h, p[name + "_ln"])
    return h


def _conv_unit(call: _Call, h: Array, p: Params, s: State, new_s: State, lname: str, norm: str | None, path: str,
               *, stride: int = 1, padding: Any = "VALID") -> Array:
    """``act(norm(conv(h)))`` of conv layer ``lname`` of ``p`` (norm statistics in ``s``, updates into ``new_s``).

    ``path`` names the layer in error messages and in the captured activations.
    """
    h = _conv(h, p[lname], path, stride=stride, padding=padding)
    h = _normalize(h, p, s, new_s, lname, norm, call.train)
    return call.activate(h, path)


def _out_len(n: int, k: int, stride: int, padding: Any) -> int:
    if padding == "VALID":
        return (n - k) // stride + 1
    if padding == "SAME":
        return -(-n // stride)
    lo, hi = (padding, padding) if isinstance(padding, int) else padding
    return (n + lo + hi - k) // stride + 1


def _too_small(model: str, input_shape: tuple[int, ...], where: str) -> ValueError:
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


def _layer_name(prefix: str, i: int, count: int) -> str:
    """``prefix_i`` with ``i`` zero-padded to the width of ``count - 1``: sorted keys = depth order."""
    return f"{prefix}_{i:0{len(str(max(count - 1, 0)))}d}"


def _flatten(x: Array) -> Array:
    return x.reshape(x.shape[0], -1)


def _as_nhwc(x: Array, name: str) -> Array:
    x = jnp.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{name}.apply: `x` must be (N, H, W, C) or (N, H, W), got shape {x.shape}")
    return x


def _as_nlc(x: Array, name: str) -> Array:
    h = jnp.asarray(x)
    if h.ndim == 2:
        h = h[..., None]
    if h.ndim != 3:
        raise ValueError(f"{name}.apply: `x` must be (N, L) or (N, L, C), got shape {h.shape}")
    return h


def _key_sequence(key: PRNGKey) -> Callable[[], PRNGKey]:
    """Successive layer keys ``fold_in(key, 0)``, ``fold_in(key, 1)``, … in creation order."""
    counter = itertools.count()
    return lambda: jax.random.fold_in(key, next(counter))


def _init_scale(hparams: Any) -> Any:
    return _check_hparams(hparams).get("init_scale")


def _init_dense_stack(p: Params, s: State, key: PRNGKey, first: int, sizes: Sequence[int],
                      init_fn: Callable[..., Array], norm: str | None, scale: Any) -> None:
    """Dense layers ``"dense_j"`` mapping ``sizes[j]`` to ``sizes[j + 1]`` features, with parameter keys
    ``fold_in(key, first + j)``; the last one is the classifier (``last=True``)."""
    n = len(sizes) - 1
    for j in range(n):
        _init_layer(p, s, _layer_name("dense", j, n), jax.random.fold_in(key, first + j), (sizes[j], sizes[j + 1]),
                    init_fn, norm, scale, last=(j == n - 1))


def _batch_norm_state(s: State, norm: str | None) -> State:
    """The model state: the non-empty per-block entries of ``s`` with batch norm, else ``{}``."""
    return {k: v for k, v in s.items() if v} if norm == "batch" else {}


def _apply_stem(call: _Call, h: Array, params: Params, state: State, new_state: State, norm: str | None) -> Array:
    """``act(norm(conv3x3_SAME(h)))`` of the ``"stem"`` block; its new statistics go to ``new_state["stem"]``."""
    ns: State = {}
    h = _conv_unit(call, h, params["stem"], state.get("stem", {}), ns, "conv", norm, "stem/conv", padding="SAME")
    if ns:
        new_state["stem"] = ns
    return h


def _pool_head(call: _Call, h: Array, params: Params, new_state: State) -> Any:
    """Global average pool (vmap-stable) -> dropout (site 0) -> the ``"dense"`` classifier: the call's result."""
    h = call.dropout(numerics.mean(h, (1, 2)), 0)
    return call.result(_dense(h, params["dense"], "dense"), new_state)


# --------------------------------------------------------------------------------------------
# MLP
# --------------------------------------------------------------------------------------------


def mlp(
    widths: Sequence[int] = (256, 128, 100),
    num_classes: int = 10,
    *,
    init: str | Callable[..., Array] = "he_normal",
    activation: str = "relu",
    norm: str | None = None,
    dropout_rate: float = 0.0,
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

    Raises:
      ValueError / TypeError: for an invalid choice, naming the parameter and the allowed values.
    """
    widths = checks.check_int_tuple(widths, "widths", allow_empty=True)
    init_fn, init_name, rate, num_classes = _check_common(init, activation, norm, dropout_rate, num_classes)
    n_layers = len(widths) + 1

    def init_(key: PRNGKey, input_shape: Sequence[int], hparams: Mapping[str, Any] | None = None) -> tuple[Params, State]:
        shape = _check_input_shape(input_shape, range(1, 9), "mlp", "a tuple of positive ints")
        scale = _init_scale(hparams)
        p: Params = {}
        s: State = {}
        _init_dense_stack(p, s, key, 0, (math.prod(shape), *widths, num_classes), init_fn, norm, scale)
        return p, s

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None, train: bool,
              hparams: Mapping[str, Any] | None = None, capture: bool = False) -> Any:
        call = _Call(key=key, train=train, hparams=hparams, static_rate=rate, capture=capture, activation=activation)
        x = jnp.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"mlp.apply: `x` must have a leading batch axis, got shape {x.shape}")
        h = _flatten(x)
        new_state: State = {}
        for i in range(n_layers - 1):
            name = _layer_name("dense", i, n_layers)
            h = _dense(h, params[name], name)
            h = _normalize(h, params, state, new_state, name, norm, call.train)
            h = call.activate(h, name)
            h = call.dropout(h, i)
        name = _layer_name("dense", n_layers - 1, n_layers)
        logits = _dense(h, params[name], name)
        return call.result(logits, new_state)

    config = {"widths": list(widths), "num_classes": num_classes, "init": init_name,
              "activation": activation, "norm": norm, "dropout_rate": rate}
    return Model(init_, apply, "mlp", config)


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
    init_fn, init_name, rate, num_classes = _check_common(init, activation, norm, dropout_rate, num_classes)
    n_dense = len(dense_widths) + 1

    def init_(key: PRNGKey, input_shape: Sequence[int], hparams: Mapping[str, Any] | None = None) -> tuple[Params, State]:
        shape = _check_input_shape(input_shape, (2, 3), "cnn", "(H, W, C) or (H, W)")
        h, w, c = shape if len(shape) == 3 else (*shape, 1)
        scale = _init_scale(hparams)
        p: Params = {}
        s: State = {}
        for i, c_out in enumerate(widths):
            _init_layer(p, s, _layer_name("conv", i, len(widths)), jax.random.fold_in(key, i),
                        (kernel_size, kernel_size, c, c_out), init_fn, norm, scale)
            h, w, c = _out_len(h, kernel_size, 1, padding) // 2, _out_len(w, kernel_size, 1, padding) // 2, c_out
            if h < 1 or w < 1:
                raise _too_small("cnn", shape, f"after conv_{i} and its 2x2 pooling")
        _init_dense_stack(p, s, key, len(widths), (h * w * c, *dense_widths, num_classes), init_fn, norm, scale)
        return p, s

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None, train: bool,
              hparams: Mapping[str, Any] | None = None, capture: bool = False) -> Any:
        call = _Call(key=key, train=train, hparams=hparams, static_rate=rate, capture=capture, activation=activation)
        h = _as_nhwc(x, "cnn")
        new_state: State = {}
        for i in range(len(widths)):
            name = _layer_name("conv", i, len(widths))
            h = max_pool_2x2(_conv_unit(call, h, params, state, new_state, name, norm, name, padding=padding))
        h = _cnn_dense_head(call, _flatten(h), params, state, new_state, norm, n_dense)
        return call.result(h, new_state)

    config = {"num_classes": num_classes, "widths": list(widths), "kernel_size": kernel_size, "padding": padding,
              "dense": None if dense is None else list(dense_widths), "init": init_name,
              "activation": activation, "norm": norm, "dropout_rate": rate}
    return Model(init_, apply, "cnn", config)


def _cnn_dense_head(call: _Call, h: Array, params: Params, state: State, new_state: State, norm: str | None,
                    n_dense: int) -> Array:
    """[dropout (site j) -> dense_j -> norm -> act] for the hidden dense layers, then dropout -> classifier."""
    for j in range(n_dense):
        name = _layer_name("dense", j, n_dense)
        h = call.dropout(h, j)
        h = _dense(h, params[name], name)
        if j < n_dense - 1:
            h = _normalize(h, params, state, new_state, name, norm, call.train)
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
        raise ValueError(f"`kernel_sizes` must have one entry per conv (len(channels) = {len(channels)}), got {kernel_sizes}")
    stride = checks.check_positive_int(stride, "stride")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"`padding` must be an int >= 0, got {padding!r}")
    padding = int(padding)
    init_fn, init_name, rate, num_classes = _check_common(init, activation, norm, dropout_rate, num_classes)

    def init_(key: PRNGKey, input_shape: Sequence[int], hparams: Mapping[str, Any] | None = None) -> tuple[Params, State]:
        shape = _check_input_shape(input_shape, (1, 2), "cnn1d", "(L,) or (L, C)")
        length, c = shape if len(shape) == 2 else (shape[0], 1)
        scale = _init_scale(hparams)
        p: Params = {}
        s: State = {}
        for i, (c_out, k) in enumerate(zip(channels, kernel_sizes)):
            _init_layer(p, s, _layer_name("conv", i, len(channels)), jax.random.fold_in(key, i), (k, c, c_out),
                        init_fn, norm, scale)
            length, c = _out_len(length, k, stride, padding), c_out
            if length < 1:
                raise _too_small("cnn1d", shape, f"after conv_{i}")
        _init_dense_stack(p, s, key, len(channels), (length * c, num_classes), init_fn, norm, scale)
        return p, s

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None, train: bool,
              hparams: Mapping[str, Any] | None = None, capture: bool = False) -> Any:
        call = _Call(key=key, train=train, hparams=hparams, static_rate=rate, capture=capture, activation=activation)
        h = _as_nlc(x, "cnn1d")
        new_state: State = {}
        for i in range(len(channels)):
            name = _layer_name("conv", i, len(channels))
            h = _conv_unit(call, h, params, state, new_state, name, norm, name, stride=stride, padding=padding)
        h = call.dropout(_flatten(h), 0)
        return call.result(_dense(h, params["dense_0"], "dense_0"), new_state)

    config = {"num_classes": num_classes, "channels": list(channels), "kernel_sizes": list(kernel_sizes),
              "stride": stride, "padding": padding, "init": init_name, "activation": activation,
              "norm": norm, "dropout_rate": rate}
    return Model(init_, apply, "cnn1d", config)


# --------------------------------------------------------------------------------------------
# ResNet
# --------------------------------------------------------------------------------------------


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
    init_fn, init_name, rate, num_classes = _check_common(init, activation, norm, dropout_rate, num_classes)
    blocks = _resnet_blocks(stage_widths, blocks_per_stage)

    def init_(key: PRNGKey, input_shape: Sequence[int], hparams: Mapping[str, Any] | None = None) -> tuple[Params, State]:
        shape = _check_input_shape(input_shape, (2, 3), "resnet", "(H, W, C) or (H, W)")
        c = shape[2] if len(shape) == 3 else 1
        scale = _init_scale(hparams)
        p: Params = {"stem": {}}
        s: State = {"stem": {}}
        next_key = _key_sequence(key)

        _init_layer(p["stem"], s["stem"], "conv", next_key(), (3, 3, c, stage_widths[0]), init_fn, norm, scale)
        c = stage_widths[0]
        for name, stride, c_out in blocks:
            p[name], s[name] = _init_basic_block(next_key, c, c_out, stride, init_fn, norm, scale)
            c = c_out
        _init_layer(p, s, "dense", next_key(), (c, num_classes), init_fn, norm, scale, last=True)
        return p, _batch_norm_state(s, norm)

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None, train: bool,
              hparams: Mapping[str, Any] | None = None, capture: bool = False) -> Any:
        call = _Call(key=key, train=train, hparams=hparams, static_rate=rate, capture=capture, activation=activation)
        h = _as_nhwc(x, "resnet")
        new_state: State = {}
        h = _apply_stem(call, h, params, state, new_state, norm)
        for name, stride, _ in blocks:
            h = _apply_basic_block(call, h, params, state, new_state, name, stride, norm)
        return _pool_head(call, h, params, new_state)

    config = {"num_classes": num_classes, "stage_widths": list(stage_widths), "blocks_per_stage": blocks_per_stage,
              "init": init_name, "activation": activation, "norm": norm, "dropout_rate": rate}
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


def _init_basic_block(next_key: Callable[[], PRNGKey], c: int, c_out: int, stride: int,
                      init_fn: Callable[..., Array], norm: str | None, scale: Any) -> tuple[Params, State]:
    """Params and state of a basic block from ``c`` to ``c_out`` channels: ``"conv1"`` (3x3), ``"conv2"``
    (3x3) and, where the shape changes, the projection ``"proj"`` (1x1), with keys taken in that order."""
    bp: Params = {}
    bs: State = {}
    _init_layer(bp, bs, "conv1", next_key(), (3, 3, c, c_out), init_fn, norm, scale)
    _init_layer(bp, bs, "conv2", next_key(), (3, 3, c_out, c_out), init_fn, norm, scale)
    if stride != 1 or c != c_out:
        _init_layer(bp, bs, "proj", next_key(), (1, 1, c, c_out), init_fn, norm, scale)
    return bp, bs


def _apply_basic_block(call: _Call, h: Array, params: Params, state: State, new_state: State, name: str,
                       stride: int, norm: str | None) -> Array:
    """``act(norm(conv3x3(act(norm(conv3x3_s(h))))) + shortcut(h))`` of block ``name``, the shortcut being
    ``norm(conv1x1_s(h))`` when the block has ``"proj"``, else ``h``; new statistics go to ``new_state[name]``."""
    bp, bs, ns = params[name], state.get(name, {}), {}
    y = _conv_unit(call, h, bp, bs, ns, "conv1", norm, f"{name}/conv1", stride=stride, padding="SAME")
    y = _conv(y, bp["conv2"], f"{name}/conv2", padding="SAME")
    y = _normalize(y, bp, bs, ns, "conv2", norm, call.train)
    if "proj" in bp:
        h = _conv(h, bp["proj"], f"{name}/proj", stride=stride, padding="VALID")
        h = _normalize(h, bp, bs, ns, "proj", norm, call.train)
    h = call.activate(y + h, f"{name}/conv2")
    if ns:
        new_state[name] = ns
    return h


# --------------------------------------------------------------------------------------------
# Inception
# --------------------------------------------------------------------------------------------

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
    init_fn, init_name, rate, num_classes = _check_common(init, activation, norm, dropout_rate, num_classes)

    def init_(key: PRNGKey, input_shape: Sequence[int], hparams: Mapping[str, Any] | None = None) -> tuple[Params, State]:
        shape = _check_input_shape(input_shape, (2, 3), "inception", "(H, W, C) or (H, W)")
        h, w = shape[0], shape[1]
        c = shape[2] if len(shape) == 3 else 1
        scale = _init_scale(hparams)
        p: Params = {"stem": {}}
        s: State = {"stem": {}}
        next_key = _key_sequence(key)

        _init_layer(p["stem"], s["stem"], "conv", next_key(), (3, 3, c, stem_width), init_fn, norm, scale)
        c, h, w = stem_width, h // 2, w // 2
        if h < 1 or w < 1:
            raise _too_small("inception", shape, "after the stem's 2x2 pooling")
        for i, spec in enumerate(block_specs):
            if i > 0:
                h, w = h // 2, w // 2
                if h < 1 or w < 1:
                    raise _too_small("inception", shape, f"before inception_{i}")
            name = _layer_name("inception", i, len(block_specs))
            p[name], s[name], c = _init_inception_block(next_key, c, spec, init_fn, norm, scale)
        _init_layer(p, s, "dense", next_key(), (c, num_classes), init_fn, norm, scale, last=True)
        return p, _batch_norm_state(s, norm)

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None, train: bool,
              hparams: Mapping[str, Any] | None = None, capture: bool = False) -> Any:
        call = _Call(key=key, train=train, hparams=hparams, static_rate=rate, capture=capture, activation=activation)
        h = _as_nhwc(x, "inception")
        new_state: State = {}
        h = max_pool_2x2(_apply_stem(call, h, params, state, new_state, norm))
        for i in range(len(block_specs)):
            if i > 0:
                h = max_pool_2x2(h)
            name = _layer_name("inception", i, len(block_specs))
            h = _apply_inception_block(call, h, params, state, new_state, name, norm)
        return _pool_head(call, h, params, new_state)

    config = {"num_classes": num_classes, "stem_width": stem_width, "blocks": [list(b) for b in block_specs],
              "init": init_name, "activation": activation, "norm": norm, "dropout_rate": rate}
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


def _init_inception_block(next_key: Callable[[], PRNGKey], c: int, spec: Sequence[int],
                          init_fn: Callable[..., Array], norm: str | None, scale: Any) -> tuple[Params, State, int]:
    """Params, state and output channels ``c1 + c3 + c5 + cp`` of an Inception block
    ``spec = (c1, c3r, c3, c5r, c5, cp)`` on ``c`` input channels; keys taken in the order
    ``b1, b3_reduce, b3, b5_reduce, b5, pool_proj``."""
    c1, c3r, c3, c5r, c5, cp = spec
    bp: Params = {}
    bs: State = {}
    for lname, kshape in (("b1", (1, 1, c, c1)), ("b3_reduce", (1, 1, c, c3r)), ("b3", (3, 3, c3r, c3)),
                          ("b5_reduce", (1, 1, c, c5r)), ("b5", (5, 5, c5r, c5)), ("pool_proj", (1, 1, c, cp))):
        _init_layer(bp, bs, lname, next_key(), kshape, init_fn, norm, scale)
    return bp, bs, c1 + c3 + c5 + cp


def _apply_inception_block(call: _Call, h: Array, params: Params, state: State, new_state: State, name: str,
                           norm: str | None) -> Array:
    """``concat[b1(h), b3(b3_reduce(h)), b5(b5_reduce(h)), pool_proj(max_pool_3x3_same(h))]`` on channels,
    each conv SAME-padded and followed by norm and activation; new statistics go to ``new_state[name]``."""
    bp, bs, ns = params[name], state.get(name, {}), {}

    def unit(z: Array, lname: str) -> Array:
        return _conv_unit(call, z, bp, bs, ns, lname, norm, f"{name}/{lname}", padding="SAME")

    y1 = unit(h, "b1")
    y3 = unit(unit(h, "b3_reduce"), "b3")
    y5 = unit(unit(h, "b5_reduce"), "b5")
    yp = unit(max_pool_3x3_same(h), "pool_proj")
    h = jnp.concatenate([y1, y3, y5, yp], axis=-1)
    if ns:
        new_state[name] = ns
    return h


# --------------------------------------------------------------------------------------------
# utilities and registry
# --------------------------------------------------------------------------------------------


def count_params(params: Any) -> int:
    """Number of scalars in a params pytree: ``sum(leaf.size for leaf in leaves(params))``."""
    return int(sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree_util.tree_leaves(params)))


def summary(model: Model, params: Any) -> str:
    """One line: ``name(k=v, ...): N params`` (the config in order, the count with thousands separators)."""
    cfg = ", ".join(f"{k}={v!r}" for k, v in model.config.items())
    return f"{model.name}({cfg}): {count_params(params):,} params"


_REGISTRY: dict[str, Callable[..., Model]] = {
    "mlp": mlp,
    "cnn": cnn,
    "resnet": resnet,
    "inception": inception,
    "cnn1d": cnn1d,
}


def register_model(name: str, factory: Callable[..., Model], *, overwrite: bool = False) -> None:
    """Make ``factory`` (``factory(**kwargs) -> Model``, e.g. wrapping :mod:`jtricks.adapters`) available as
    ``model=name`` in experiments, in :func:`get` and in ``jtricks run --set model=name``.

    Raises:
      ValueError: ``name`` is taken (pass ``overwrite=True`` to replace a user entry; the built-in
        architectures cannot be replaced).
      TypeError: ``factory`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a non-empty str, got {name!r}")
    if not callable(factory):
        raise TypeError(f"`factory` must be callable (factory(**kwargs) -> Model), got {type(factory).__name__}")
    builtin = {"mlp", "cnn", "resnet", "inception", "cnn1d"}
    if name in _REGISTRY and (name in builtin or not overwrite):
        raise ValueError(f"model {name!r} is already registered" + ("" if name in builtin else "; pass overwrite=True"))
    _REGISTRY[name] = factory


def unregister_model(name: str) -> None:
    """Remove a model registered with :func:`register_model` (built-in architectures stay).

    Raises:
      ValueError: ``name`` is built in or not registered.
    """
    if name in {"mlp", "cnn", "resnet", "inception", "cnn1d"} or name not in _REGISTRY:
        raise ValueError(f"{name!r} is not a user-registered model; registered: {sorted(_REGISTRY)}")
    del _REGISTRY[name]


def names() -> tuple[str, ...]:
    """The architecture names that :func:`get` accepts."""
    return tuple(_REGISTRY)


def get(name: str, **kw: Any) -> Model:
    """Build the architecture called ``name`` with keyword arguments ``kw``: ``get("cnn", dropout_rate=0.5)``.

    ``get(model.name, **model.config)`` rebuilds ``model`` (the config is the constructor's arguments).

    Raises:
      ValueError: if ``name`` is unknown (the message lists the known names), or an argument is invalid.
    """
    return factory(name)(**kw)


def factory(name: str) -> Callable[..., Model]:
    """The constructor registered as ``name`` (built-in or :func:`register_model`).

    Raises:
      ValueError: if ``name`` is unknown (the message lists the known names).
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown model name {name!r}; known names: {', '.join(names())} "
                         "(register your own with jtricks.models.register_model)")
    return _REGISTRY[name]
