"""Reference implementations of the benchmarked networks in hand-written JAX, flax NNX and PyTorch.

The same three networks as the jtricks side (:mod:`benchmarks.step`):

* ``mlp``: 784-512-512-10 ReLU, batch 128, Adam 1e-3;
* ``mlp_bn_dropout``: the same with batch norm after each hidden dense layer (before the ReLU; the
  dense has no bias) and dropout 0.2 after each hidden activation;
* ``cnn``: the guide's notebook CNN on 28×28×1: Conv32 3×3 VALID ReLU → MaxPool 2 → Conv64 3×3 ReLU
  → MaxPool 2 → Flatten → Dropout 0.5 → Dense 10 (34,826 params), batch 64.

Each builder returns ``run(n)`` (``n`` training steps on pre-made device batches, blocking at the end).
The hand-written JAX is what a JAX user writes by hand: pytree params, ``optax.adam``,
``optax.softmax_cross_entropy_with_integer_labels(...).mean()``, ``jax.jit`` with donated state.
Flax NNX follows its documentation (``nnx.Linear`` / ``nnx.Conv`` / ``nnx.BatchNorm`` / ``nnx.Dropout``,
``nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)``, ``nnx.jit``, ``nnx.value_and_grad``).
PyTorch runs eagerly on the CPU with its fastest Adam (``fused=True`` where the CPU supports it, else
``foreach=True``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

CASES: dict[str, dict[str, Any]] = {
    "mlp": {"batch": 128, "input": (784,), "widths": (512, 512), "bn": False, "dropout": 0.0},
    "mlp_bn_dropout": {"batch": 128, "input": (784,), "widths": (512, 512), "bn": True, "dropout": 0.2},
    "cnn": {"batch": 64, "input": (28, 28, 1), "widths": (32, 64), "bn": False, "dropout": 0.5},
}


def model_flops(case: str) -> float:
    """Model FLOPs of one training step: 3 × the forward multiply-adds × 2 (forward, ∂x, ∂W).

    The usual convention (6·params·batch for dense layers). Not counted: elementwise work, pooling,
    the optimizer. (The first layer's ∂x is not computed by any framework, so the executed count is
    slightly lower: 80% of this for the MLP, ~97% for the CNN.)
    """
    c = CASES[case]
    b = c["batch"]
    if case.startswith("mlp"):
        sizes = (784, *c["widths"], 10)
        fwd = sum(2 * b * sizes[i] * sizes[i + 1] for i in range(len(sizes) - 1))
    else:
        # 28 -> conv 26 -> pool 13 -> conv 11 -> pool 5
        fwd = 2 * b * (26 * 26 * 9 * 1 * 32 + 11 * 11 * 9 * 32 * 64 + 1600 * 10)
    return 3.0 * fwd


def synthetic_data(case: str, n_batches: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs in [0, 1) and labels in 0..9: ``(n_batches·batch, *input)``, ``(n_batches·batch,)``."""
    c = CASES[case]
    rng = np.random.default_rng(seed)
    n = n_batches * c["batch"]
    x = rng.random((n, *c["input"]), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int32)
    return x, y


# ------------------------------------------------------------------------------------ hand-written JAX
def _he(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    fan_in = int(np.prod(shape[:-1]))
    return jax.random.normal(key, shape, jnp.float32) * np.sqrt(2.0 / fan_in)


def _pool(x: jax.Array) -> jax.Array:
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return jnp.max(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def jax_runner(case: str, x: np.ndarray, y: np.ndarray) -> Callable[[int], None]:
    """Hand-written JAX + optax."""
    c = CASES[case]
    keys = jax.random.split(jax.random.key(0), 8)
    params: dict[str, Any] = {}
    bn_state: dict[str, Any] = {}
    if case.startswith("mlp"):
        sizes = (784, *c["widths"], 10)
        for i in range(len(sizes) - 1):
            params[f"d{i}"] = {"w": _he(keys[i], (sizes[i], sizes[i + 1]))}
            last = i == len(sizes) - 2
            if c["bn"] and not last:
                params[f"bn{i}"] = {"scale": jnp.ones(sizes[i + 1]), "bias": jnp.zeros(sizes[i + 1])}
                bn_state[f"bn{i}"] = {"mean": jnp.zeros(sizes[i + 1]), "var": jnp.ones(sizes[i + 1])}
            else:
                params[f"d{i}"]["b"] = jnp.zeros(sizes[i + 1])
    else:
        params["c0"] = {"w": _he(keys[0], (3, 3, 1, 32)), "b": jnp.zeros(32)}
        params["c1"] = {"w": _he(keys[1], (3, 3, 32, 64)), "b": jnp.zeros(64)}
        params["d0"] = {"w": _he(keys[2], (1600, 10)), "b": jnp.zeros(10)}
    rate = c["dropout"]

    def dropout(key: jax.Array, h: jax.Array) -> jax.Array:
        keep = jax.random.bernoulli(key, 1.0 - rate, h.shape)
        return jnp.where(keep, h / (1.0 - rate), 0.0)

    def forward(params: Any, bn_state: Any, xb: jax.Array, key: jax.Array) -> tuple[jax.Array, Any]:
        new_bn = {}
        if case.startswith("mlp"):
            h = xb
            n_layers = len(c["widths"]) + 1
            for i in range(n_layers - 1):
                h = h @ params[f"d{i}"]["w"]
                if c["bn"]:
                    mean = h.mean(0)
                    var = h.var(0)
                    h = (h - mean) * jax.lax.rsqrt(var + 1e-5) * params[f"bn{i}"]["scale"] + params[f"bn{i}"]["bias"]
                    s = bn_state[f"bn{i}"]
                    new_bn[f"bn{i}"] = {"mean": 0.9 * s["mean"] + 0.1 * mean, "var": 0.9 * s["var"] + 0.1 * var}
                else:
                    h = h + params[f"d{i}"]["b"]
                h = jax.nn.relu(h)
                if rate:
                    h = dropout(jax.random.fold_in(key, i), h)
            last = params[f"d{n_layers - 1}"]
            return h @ last["w"] + last["b"], new_bn
        dn = ("NHWC", "HWIO", "NHWC")
        h = xb
        for name in ("c0", "c1"):
            h = (
                jax.lax.conv_general_dilated(h, params[name]["w"], (1, 1), "VALID", dimension_numbers=dn)
                + params[name]["b"]
            )
            h = _pool(jax.nn.relu(h))
        h = h.reshape(h.shape[0], -1)
        h = dropout(key, h)
        return h @ params["d0"]["w"] + params["d0"]["b"], new_bn

    tx = optax.adam(1e-3)
    opt_state = tx.init(params)

    def loss_fn(params: Any, bn_state: Any, xb: jax.Array, yb: jax.Array, key: jax.Array) -> tuple[jax.Array, Any]:
        logits, new_bn = forward(params, bn_state, xb, key)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), new_bn

    @functools.partial(jax.jit, donate_argnums=(0,))
    def train_step(carry: Any, xb: jax.Array, yb: jax.Array) -> tuple[Any, jax.Array]:
        params, bn_state, opt_state, key = carry
        key, sub = jax.random.split(key)
        (loss, new_bn), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, bn_state, xb, yb, sub)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), new_bn, opt_state, key), loss

    bs = c["batch"]
    batches = [(jnp.asarray(x[i : i + bs]), jnp.asarray(y[i : i + bs])) for i in range(0, len(x), bs)]
    holder = [(params, bn_state, opt_state, jax.random.key(1))]

    def run(n: int) -> None:
        carry = holder[0]
        loss = None
        for i in range(n):
            xb, yb = batches[i % len(batches)]
            carry, loss = train_step(carry, xb, yb)
        holder[0] = carry
        jax.block_until_ready((carry, loss))

    return run


# ------------------------------------------------------------------------------------------ flax NNX
def nnx_runner(case: str, x: np.ndarray, y: np.ndarray) -> Callable[[int], None]:
    """Flax NNX as its documentation writes a training step."""
    from flax import nnx

    c = CASES[case]

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            sizes = (784, *c["widths"], 10)
            self.hidden = nnx.List(
                [nnx.Linear(sizes[i], sizes[i + 1], use_bias=not c["bn"], rngs=rngs) for i in range(len(sizes) - 2)]
            )
            self.bns = (
                nnx.List([nnx.BatchNorm(w, momentum=0.9, epsilon=1e-5, rngs=rngs) for w in c["widths"]])
                if c["bn"]
                else None
            )
            self.drop = nnx.Dropout(c["dropout"], rngs=rngs) if c["dropout"] else None
            self.out = nnx.Linear(sizes[-2], sizes[-1], rngs=rngs)

        def __call__(self, h: jax.Array) -> jax.Array:
            for i, layer in enumerate(self.hidden):
                h = layer(h)
                if self.bns is not None:
                    h = self.bns[i](h)
                h = nnx.relu(h)
                if self.drop is not None:
                    h = self.drop(h)
            return self.out(h)

    class CNN(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.conv1 = nnx.Conv(1, 32, kernel_size=(3, 3), padding="VALID", rngs=rngs)
            self.conv2 = nnx.Conv(32, 64, kernel_size=(3, 3), padding="VALID", rngs=rngs)
            self.drop = nnx.Dropout(c["dropout"], rngs=rngs)
            self.out = nnx.Linear(1600, 10, rngs=rngs)

        def __call__(self, h: jax.Array) -> jax.Array:
            h = nnx.max_pool(nnx.relu(self.conv1(h)), window_shape=(2, 2), strides=(2, 2))
            h = nnx.max_pool(nnx.relu(self.conv2(h)), window_shape=(2, 2), strides=(2, 2))
            h = h.reshape(h.shape[0], -1)
            return self.out(self.drop(h))

    model = (MLP if case.startswith("mlp") else CNN)(nnx.Rngs(0, dropout=1))
    model.train()
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def train_step(model: Any, optimizer: Any, xb: jax.Array, yb: jax.Array) -> jax.Array:
        def loss_fn(model: Any) -> jax.Array:
            logits = model(xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    bs = c["batch"]
    batches = [(jnp.asarray(x[i : i + bs]), jnp.asarray(y[i : i + bs])) for i in range(0, len(x), bs)]

    def run(n: int) -> None:
        loss = None
        for i in range(n):
            xb, yb = batches[i % len(batches)]
            loss = train_step(model, optimizer, xb, yb)
        jax.block_until_ready((loss, nnx.state(model)))

    return run


# ------------------------------------------------------------------------------------------ PyTorch
def torch_adam_kind() -> str:
    """``"fused"`` if ``torch.optim.Adam(fused=True)`` works on this CPU, else ``"foreach"``."""
    import torch

    p = torch.nn.Parameter(torch.zeros(4))
    try:
        opt = torch.optim.Adam([p], lr=1e-3, fused=True)
        p.grad = torch.ones(4)
        opt.step()
        return "fused"
    except Exception:
        return "foreach"


def torch_model(case: str) -> Any:
    from torch import nn

    c = CASES[case]
    if case.startswith("mlp"):
        sizes = (784, *c["widths"], 10)
        layers: list[Any] = []
        for i in range(len(sizes) - 2):
            layers.append(nn.Linear(sizes[i], sizes[i + 1], bias=not c["bn"]))
            if c["bn"]:
                layers.append(nn.BatchNorm1d(sizes[i + 1], momentum=0.1, eps=1e-5))
            layers.append(nn.ReLU())
            if c["dropout"]:
                layers.append(nn.Dropout(c["dropout"]))
        layers.append(nn.Linear(sizes[-2], sizes[-1]))
        return nn.Sequential(*layers)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(c["dropout"]),
        nn.Linear(1600, 10),
    )


def torch_runner(
    case: str, x: np.ndarray, y: np.ndarray, *, adam: str | None = None, threads: int = 2
) -> Callable[[int], None]:
    """PyTorch CPU eager, ``Adam(fused=True)`` (or ``foreach=True``); inputs NCHW for the CNN."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c = CASES[case]
    model = torch_model(case)
    model.train()
    kind = adam or torch_adam_kind()
    opt = torch.optim.Adam(
        model.parameters(),
        lr=1e-3,
        **({"fused": True} if kind == "fused" else {"foreach": True} if kind == "foreach" else {}),
    )
    xt = torch.from_numpy(x)
    if case == "cnn":
        xt = xt.permute(0, 3, 1, 2).contiguous()
    yt = torch.from_numpy(y).long()
    bs = c["batch"]
    batches = [(xt[i : i + bs], yt[i : i + bs]) for i in range(0, len(xt), bs)]

    def run(n: int) -> None:
        torch.set_num_threads(threads)  # runners with other thread counts may be interleaved
        for i in range(n):
            xb, yb = batches[i % len(batches)]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()

    return run
