"""Bring your own model: flax Linen and NNX modules, or any ``(init, apply)`` pair, as a :class:`jtricks.models.Model`.

The engine needs a model as two pure functions (see :mod:`jtricks.models`)::

    params, state = model.init(key, input_shape, hparams=None)          # input_shape: ONE example
    outputs, new_state = model.apply(params, state, x, key=key, train=True, hparams=hparams)

* :func:`from_linen` — ``params = variables["params"]``, ``state`` = the other collections (e.g.
  ``{"batch_stats": ...}``). Training passes ``rngs={"dropout": key}`` and ``mutable=[state collections]``
  and returns the updated collections; evaluation returns ``state`` unchanged.
* :func:`from_nnx` — ``nnx.split`` into ``(graphdef, nnx.Param state, RNG state, the rest)``: ``params`` and
  ``state`` (batch statistics ...) are plain nested dicts (``nnx.to_pure_dict``). ``apply`` merges,
  switches the module to ``train()`` / ``eval()``, reseeds every RNG stream with ``key`` (``nnx.reseed``, so
  the dropout masks are a pure function of the key), calls it and splits the new state back.
* :func:`from_fns` — any user pair, with signature checks; ``hparams`` is dropped for functions that
  do not take it.

A module whose ``__call__`` takes a keyword ``hparams`` receives the engine's numeric hyperparameters
(possibly traced arrays, one per population member), so a custom factor such as ``aux_weight`` reaches the
model as data. ``init`` builds Linen variables from a float32 zero batch of one example.

Adapted models have ``batch_invariant=False``: flax and equinox layers reduce with ``jnp.sum`` /
``jnp.mean``, whose rounding ``jax.vmap`` may change (a vmapped member agrees with its standalone run to
~1e-6, not bit for bit), so the engine runs their members unrolled in one program, which is exact.

Example::

    import flax.linen as nn
    from jtricks.models import adapters

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool):
            x = nn.Dropout(0.2, deterministic=not train)(nn.relu(nn.Dense(64)(x)))
            return nn.Dense(10)(x)

    model = adapters.from_linen(MLP())
    params, state = model.init(jax.random.key(0), (40,))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jtricks._core import checks
from jtricks.models import Model

__all__ = ["from_linen", "from_nnx", "from_fns", "EVAL_FLAGS"]

#: Mode keywords that mean "evaluation" when True: ``apply(train=t)`` passes ``not t`` to them.
EVAL_FLAGS: tuple[str, ...] = ("deterministic", "use_running_average", "eval", "inference", "is_eval")


def _parameters(fn: Callable[..., Any]) -> Mapping[str, inspect.Parameter] | None:
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None


def _accepts_keyword(params: Mapping[str, inspect.Parameter] | None, name: str) -> bool:
    """Whether a signature takes ``name`` as a keyword (unknown signatures: assume yes)."""
    if params is None:
        return True
    if name in params:
        return params[name].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _takes_keyword(params: Mapping[str, inspect.Parameter] | None, name: str) -> bool:
    """Whether a signature names ``name`` explicitly (``**kwargs`` does not count)."""
    return (
        params is not None
        and name in params
        and params[name].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )


def _check_train(train: Any) -> bool:
    return checks.check_bool(train, "train", hint=" (it selects the computation)")


def _input_shape(input_shape: Any) -> tuple[int, ...]:
    if checks.is_python_int(input_shape):
        input_shape = (input_shape,)
    try:
        shape = tuple(int(d) for d in input_shape)
    except TypeError as e:
        raise TypeError(
            f"`input_shape` must be a tuple of ints (one example, no batch axis), got {input_shape!r}"
        ) from e
    if any(d < 1 for d in shape):
        raise ValueError(f"`input_shape` must have positive dimensions (one example, no batch axis), got {shape}")
    return shape


def _typed_key(key: jax.Array) -> jax.Array:
    """A typed key (``jax.random.key``) from a typed or a raw ``uint32[2]`` key."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


# --------------------------------------------------------------------------------------------
# flax Linen
# --------------------------------------------------------------------------------------------


def from_linen(module: Any, *, name: str | None = None, train_kwarg: str | None = "train") -> Model:
    """A :class:`~jtricks.models.Model` from a ``flax.linen.Module`` (or a zero-argument factory of one).

    Args:
      module: the module, or a callable returning it.
      name: the model's name (default: the module's class name).
      train_kwarg: the keyword of ``__call__`` that selects the mode: ``"train"`` gets ``train``; a name in
        :data:`EVAL_FLAGS` (``"deterministic"``, ``"use_running_average"`` ...) gets ``not train``;
        ``None``: the module takes no mode argument.

    Raises:
      TypeError: ``module`` is not a Linen module (or its factory's result is not), or its ``__call__``
        does not take ``train_kwarg``.
    """
    import flax.linen as nn

    mod = module if isinstance(module, nn.Module) else (module() if callable(module) else module)
    if not isinstance(mod, nn.Module):
        raise TypeError(f"`module` must be a flax.linen.Module or a factory of one, got {type(mod).__name__}")
    call_params = _parameters(mod.__call__)
    if train_kwarg is not None and not _accepts_keyword(call_params, train_kwarg):
        raise TypeError(
            f"{type(mod).__name__}.__call__ has no keyword {train_kwarg!r} (`train_kwarg`); "
            "pass the keyword it uses for its mode, or train_kwarg=None"
        )
    invert = train_kwarg in EVAL_FLAGS
    takes_hparams = _takes_keyword(call_params, "hparams")

    def call_kwargs(train: bool, hparams: Mapping[str, Any] | None) -> dict[str, Any]:
        kw: dict[str, Any] = {} if train_kwarg is None else {train_kwarg: (not train) if invert else train}
        if takes_hparams:
            kw["hparams"] = {} if hparams is None else hparams
        return kw

    def init(key: jax.Array, input_shape: Any, hparams: Mapping[str, Any] | None = None) -> tuple[Any, Any]:
        """``module.init({"params": key}, zeros((1, *input_shape)))`` in evaluation mode."""
        x = jnp.zeros((1,) + _input_shape(input_shape), jnp.float32)
        variables = dict(mod.init({"params": key}, x, **call_kwargs(False, hparams)))
        params = variables.pop("params", {})
        return params, variables

    def apply(
        params: Any,
        state: Any,
        x: jax.Array,
        *,
        key: jax.Array | None = None,
        train: bool,
        hparams: Mapping[str, Any] | None = None,
    ) -> tuple[jax.Array, Any]:
        """``module.apply({"params": params, **state}, x, ...)``; training updates the state collections."""
        train = _check_train(train)
        variables = {"params": params, **state}
        kw = call_kwargs(train, hparams)
        if not train:
            return mod.apply(variables, x, **kw), state
        rngs = {} if key is None else {"dropout": key}
        if not state:
            return mod.apply(variables, x, rngs=rngs, **kw), state
        out, updates = mod.apply(variables, x, rngs=rngs, mutable=list(state), **kw)
        return out, {**state, **updates}

    config = {"adapter": "linen", "module": type(mod).__name__, "train_kwarg": train_kwarg}
    return Model(init, apply, name or type(mod).__name__, config, batch_invariant=False)


# --------------------------------------------------------------------------------------------
# flax NNX
# --------------------------------------------------------------------------------------------


def _rng_template(abstract_rng: Any) -> Any:
    """Concrete RNG state of the right structure (the values are replaced by ``nnx.reseed`` before use)."""

    def leaf(s: jax.ShapeDtypeStruct) -> jax.Array:
        if jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key):
            return jnp.broadcast_to(jax.random.key(0), s.shape)
        return jnp.zeros(s.shape, s.dtype)

    return jax.tree.map(leaf, abstract_rng)


def _filled(abstract: Any, pure: Any) -> Any:
    """A fresh ``nnx.State`` with the structure of ``abstract`` holding the arrays of the pure dict ``pure``."""
    from flax import nnx

    state = jax.tree.map(lambda a: a, abstract)  # new Variables: the abstract template is never mutated
    nnx.replace_by_pure_dict(state, pure)
    return state


def from_nnx(make_module: Callable[[Any], Any], *, name: str | None = None) -> Model:
    """A :class:`~jtricks.models.Model` from a factory ``make_module(rngs: nnx.Rngs) -> nnx.Module``.

    ``init(key, ...)`` is ``make_module(nnx.Rngs(key))`` split into ``params`` (the ``nnx.Param`` variables)
    and ``state`` (everything but parameters and RNG state, e.g. ``BatchStat``), both plain nested dicts.
    ``input_shape`` is not used (an NNX module is built with its sizes). ``apply`` merges them, calls
    ``module.train()`` or ``module.eval()``, reseeds every RNG stream of the module with ``key`` in
    training (``nnx.reseed(module, stream=key)``), calls ``module(x)`` (with ``hparams=`` when
    ``__call__`` takes it) and returns the new non-parameter state (``state`` unchanged in evaluation).

    Raises:
      TypeError: ``make_module`` is not callable or does not return an ``nnx.Module``.
    """
    from flax import nnx

    if not callable(make_module) or isinstance(make_module, nnx.Module):
        raise TypeError(
            "`make_module` must be a factory make_module(rngs: nnx.Rngs) -> nnx.Module "
            f"(e.g. lambda rngs: MyModel(..., rngs=rngs)), got {type(make_module).__name__}"
        )
    abstract = nnx.eval_shape(lambda: make_module(nnx.Rngs(0)))
    if not isinstance(abstract, nnx.Module):
        raise TypeError(f"`make_module` must return an nnx.Module, got {type(abstract).__name__}")
    graphdef, abs_params, abs_rng, abs_rest = nnx.split(abstract, nnx.Param, nnx.RngState, ...)
    streams = sorted(
        {
            v.tag
            for v in jax.tree.leaves(abs_rng, is_leaf=lambda v: isinstance(v, nnx.RngKey))
            if isinstance(v, nnx.RngKey)
        }
    )
    takes_hparams = _takes_keyword(_parameters(abstract.__call__), "hparams")

    def init(key: jax.Array, input_shape: Any = None, hparams: Mapping[str, Any] | None = None) -> tuple[Any, Any]:
        """``make_module(nnx.Rngs(key))`` split into pure-dict ``(params, state)``."""
        del input_shape, hparams
        _, params, _, rest = nnx.split(make_module(nnx.Rngs(key)), nnx.Param, nnx.RngState, ...)
        return nnx.to_pure_dict(params), nnx.to_pure_dict(rest)

    def apply(
        params: Any,
        state: Any,
        x: jax.Array,
        *,
        key: jax.Array | None = None,
        train: bool,
        hparams: Mapping[str, Any] | None = None,
    ) -> tuple[jax.Array, Any]:
        """Merge, set the mode, reseed from ``key``, call, split back."""
        train = _check_train(train)
        module = nnx.merge(graphdef, _filled(abs_params, params), _rng_template(abs_rng), _filled(abs_rest, state))
        if train:
            module.train()
            if key is not None and streams:
                nnx.reseed(module, **{s: _typed_key(key) for s in streams})
        else:
            module.eval()
        out = module(x, hparams={} if hparams is None else hparams) if takes_hparams else module(x)
        if not train:
            return out, state
        _, _, _, rest = nnx.split(module, nnx.Param, nnx.RngState, ...)
        return out, nnx.to_pure_dict(rest)

    config = {"adapter": "nnx", "module": type(abstract).__name__}
    return Model(init, apply, name or type(abstract).__name__, config, batch_invariant=False)


# --------------------------------------------------------------------------------------------
# any (init, apply) pair
# --------------------------------------------------------------------------------------------


def _positional_count(params: Mapping[str, inspect.Parameter] | None) -> int | None:
    if params is None or any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params.values()):
        return None
    return sum(
        p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params.values()
    )


def from_fns(
    init: Callable[..., Any], apply: Callable[..., Any], *, name: str = "custom", batch_invariant: bool = False
) -> Model:
    """A :class:`~jtricks.models.Model` from a user pair of pure functions.

    ``init(key, input_shape[, hparams=...]) -> (params, state)`` and
    ``apply(params, state, x, *, key, train[, hparams=...]) -> (outputs, new_state)``; ``hparams`` is passed
    only to a function that takes it (by name or through ``**kwargs``). ``state`` is any pytree (``{}`` for
    none). Declare ``batch_invariant=True`` only if every reduction is a :mod:`jtricks.numerics` sum.

    Raises:
      TypeError: a function that is not callable or cannot take those arguments.
    """
    if not callable(init) or not callable(apply):
        raise TypeError(f"`init` and `apply` must be callables, got {type(init).__name__} and {type(apply).__name__}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty str, got {name!r}")
    checks.check_bool(batch_invariant, "batch_invariant")
    ip, ap = _parameters(init), _parameters(apply)
    n_init = _positional_count(ip)
    if n_init is not None and n_init < 2:
        raise TypeError(f"`init` must take (key, input_shape), it takes {n_init} positional argument(s)")
    n_apply = _positional_count(ap)
    if n_apply is not None and n_apply < 3:
        raise TypeError(
            f"`apply` must take (params, state, x, *, key, train), it takes {n_apply} positional argument(s)"
        )
    for kw in ("key", "train"):
        if not _accepts_keyword(ap, kw):
            raise TypeError(f"`apply` must take the keyword argument {kw!r}: apply(params, state, x, *, key, train)")
    init_hp, apply_hp = _accepts_keyword(ip, "hparams"), _accepts_keyword(ap, "hparams")

    def init_(key: jax.Array, input_shape: Any, hparams: Mapping[str, Any] | None = None) -> tuple[Any, Any]:
        return init(key, input_shape, hparams=hparams) if init_hp else init(key, input_shape)

    def apply_(
        params: Any,
        state: Any,
        x: jax.Array,
        *,
        key: jax.Array | None = None,
        train: bool,
        hparams: Mapping[str, Any] | None = None,
    ) -> tuple[jax.Array, Any]:
        train = _check_train(train)
        if apply_hp:
            return apply(params, state, x, key=key, train=train, hparams=hparams)
        return apply(params, state, x, key=key, train=train)

    config = {"adapter": "fns", "init": getattr(init, "__name__", "init"), "apply": getattr(apply, "__name__", "apply")}
    return Model(init_, apply_, name, config, batch_invariant=batch_invariant)
