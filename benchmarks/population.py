"""Benchmark 3 (``population``): many independent runs as one vmapped population vs one after another.

MLP part: the MNIST-1D MLP (40-100-100-10 ReLU, Adam 1e-3, batch 100; 4,000 training examples = 40
steps per epoch). Competitors, in member-steps per second (one member-step = one optimizer step of one
run):

* ``jtricks population``: ``jit(vmap(K steps in lax.scan))`` over S members (the engine's scan mode,
  training part of an epoch), S = 1, 4, 16, 64, 256;
* ``hand-written JAX population``: the same with a plain optax/jnp step (no bit-identity care, no
  divergence guard), to separate the engine's cost from what vmap itself gives;
* ``jtricks sequential``: the same program for one member, run S times one after another;
* ``jtricks host loop``: one member, a Python loop of jitted steps (the classic hand-written loop);
* ``torch sequential``: PyTorch CPU eager, fused Adam, one run after another.

Sequential rates do not depend on S (a run after a run), so they are measured once and the speedup of
the population at S is ``population(S) / sequential``.

CNN part: the notebook CNN (dropout 0.5, batch 64) on Fashion-MNIST-shaped data, S = 1, 4, 16:
standalone (host loop of jitted steps, one member after another) vs ``population_map`` strategies
``vmap`` and ``unroll`` (and, in full mode, ``unroll`` serialized, the patches+matmul convolution under
vmap, and XLA flag variants measured in subprocesses).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common

MLP_WIDTHS = (100, 100)
MLP_BATCH = 100
STEPS_PER_EPOCH = 40  # 4,000 MNIST-1D training examples / 100


def mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, str]:
    """MNIST-1D training split (generated offline by the ``mnist1d`` package); random data of the same shape if
    unavailable."""
    try:
        from jtricks import data

        ds = data.load("mnist1d")
        x = np.asarray(ds.x_train, np.float32)
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
        return x, np.asarray(ds.y_train, np.int32), "mnist1d"
    except Exception as e:  # pragma: no cover - mnist1d is a dependency
        rng = np.random.default_rng(0)
        print(f"[population] MNIST-1D unavailable ({e}); random data of the same shape", file=sys.stderr)
        return rng.standard_normal((4000, 40), dtype=np.float32), rng.integers(0, 10, 4000).astype(np.int32), "random"


def mlp_config(*, dropout: bool = False) -> Any:
    from jtricks import models, optim, train

    return train.TrainConfig(
        model=models.mlp(MLP_WIDTHS, 10),
        optimizer=optim.OptimizerSpec("adam"),
        epochs=1,
        batch_size=MLP_BATCH,
        dropout=dropout,
        execution="scan",
    )


def _epoch_indices(n_members: int, n_train: int, seed: int = 0) -> np.ndarray:
    """``(S, K, B)`` batch indices: one permutation per member, K = STEPS_PER_EPOCH."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            rng.permutation(n_train)[: STEPS_PER_EPOCH * MLP_BATCH].reshape(STEPS_PER_EPOCH, MLP_BATCH)
            for _ in range(n_members)
        ]
    ).astype(np.int32)


def jtricks_mlp_population(S: int, x: np.ndarray, y: np.ndarray, *, config: Any = None) -> Callable[[int], None]:
    """``run(n)``: n epochs' worth of training steps (K = 40 each, in ``lax.scan``) of S vmapped members."""
    from jtricks import train

    config = config or mlp_config()
    hp = train.as_arrays(train.validate_hparams(config, {"learning_rate": 1e-3}))
    step = train.make_train_step(config)
    x_all, y_all = jnp.asarray(x), jnp.asarray(y)

    def steps(state: Any, idx: jax.Array) -> tuple[Any, Any]:
        return jax.lax.scan(lambda s, b: step(s, x_all, y_all, b), state, idx)

    keys = jnp.stack([jax.random.PRNGKey(i) for i in range(S)])
    hps = {k: jnp.broadcast_to(v, (S,)) for k, v in hp.items()}
    state = jax.jit(jax.vmap(lambda k, h: train.init_state(config, k, h, x.shape[1:])))(keys, hps)
    fn = jax.jit(jax.vmap(steps), donate_argnums=0)
    idx = jnp.asarray(_epoch_indices(S, len(x)))
    return common.stateful_runner(state, lambda s, _: fn(s, idx))


def jax_mlp_population(S: int, x: np.ndarray, y: np.ndarray) -> Callable[[int], None]:
    """Hand-written JAX + optax: ``jit(vmap(K steps in lax.scan))`` with ``jnp`` reductions (no bit-identity care)."""
    import optax

    sizes = (x.shape[1], *MLP_WIDTHS, 10)
    tx = optax.adam(1e-3)

    def init(key: jax.Array) -> Any:
        ks = jax.random.split(key, len(sizes) - 1)
        params = [
            {"w": jax.random.normal(k, (a, b)) * np.sqrt(2.0 / a), "b": jnp.zeros(b)}
            for k, a, b in zip(ks, sizes[:-1], sizes[1:])
        ]
        return params, tx.init(params)

    x_all, y_all = jnp.asarray(x), jnp.asarray(y)

    def loss_fn(params: Any, xb: jax.Array, yb: jax.Array) -> jax.Array:
        h = xb
        for layer in params[:-1]:
            h = jax.nn.relu(h @ layer["w"] + layer["b"])
        logits = h @ params[-1]["w"] + params[-1]["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def step(carry: Any, b: jax.Array) -> tuple[Any, jax.Array]:
        params, opt = carry
        loss, g = jax.value_and_grad(loss_fn)(params, x_all[b], y_all[b])
        upd, opt = tx.update(g, opt, params)
        return (optax.apply_updates(params, upd), opt), loss

    fn = jax.jit(jax.vmap(lambda c, idx: jax.lax.scan(step, c, idx)), donate_argnums=0)
    state = jax.jit(jax.vmap(init))(jax.random.split(jax.random.key(0), S))
    idx = jnp.asarray(_epoch_indices(S, len(x)))
    return common.stateful_runner(state, lambda s, _: fn(s, idx))


def jtricks_mlp_host_loop(x: np.ndarray, y: np.ndarray) -> Callable[[int], None]:
    """One member, a Python loop of jitted steps (donated state); ``run(n)`` = n × 40 steps."""
    from jtricks import train

    config = mlp_config()
    hp = train.as_arrays(train.validate_hparams(config, {"learning_rate": 1e-3}))
    state = jax.jit(lambda k, h: train.init_state(config, k, h, x.shape[1:]))(jax.random.PRNGKey(0), hp)
    step = jax.jit(train.make_train_step(config), donate_argnums=0)
    x_all, y_all = jnp.asarray(x), jnp.asarray(y)
    idx = _epoch_indices(1, len(x))[0]
    batches = [jnp.asarray(b) for b in idx]

    def epoch(s: Any, _: int) -> tuple[Any, Any]:
        m = None
        for b in batches:
            s, m = step(s, x_all, y_all, b)
        return s, m

    return common.stateful_runner(state, epoch)


def torch_mlp_sequential(x: np.ndarray, y: np.ndarray, adam: str, threads: int = 2) -> Callable[[int], None]:
    """One PyTorch run (eager, fused/foreach Adam); ``run(n)`` = n × 40 steps."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **({"fused": True} if adam == "fused" else {"foreach": True}))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    idx = torch.from_numpy(_epoch_indices(1, len(x))[0].astype(np.int64))

    def run(n: int) -> None:
        torch.set_num_threads(threads)
        for _ in range(n):
            for b in idx:
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xt[b]), yt[b]).backward()
                opt.step()

    return run


def run_mlp(*, quick: bool, sizes: tuple[int, ...] = (1, 4, 16, 64, 256), verbose: bool = True) -> dict[str, Any]:
    """Member-steps/s of the MNIST-1D MLP: populations of each size vs sequential runs."""
    from benchmarks import models_ref as ref

    x, y, source = mnist1d_arrays()
    blocks = 3 if quick else 7
    K = STEPS_PER_EPOCH
    seq: dict[str, Callable[[int], None]] = {
        "jtricks sequential (scan)": jtricks_mlp_population(1, x, y),
        "jtricks host loop": jtricks_mlp_host_loop(x, y),
    }
    adam = None
    if common.torch_available():
        adam = ref.torch_adam_kind()
        if not quick:  # 2 threads: far slower than 1 for this tiny model when the cores are shared
            seq[f"torch sequential ({adam})"] = torch_mlp_sequential(x, y, adam)
        seq[f"torch sequential ({adam}, 1 thread)"] = torch_mlp_sequential(x, y, adam, threads=1)
    seq_rates = {
        k: v.scaled(K)
        for k, v in common.measure(seq, steps=1, blocks=blocks, warmup=1, min_block_s=0.2 if quick else 0.5).items()
    }
    if verbose:
        print(
            "[population] sequential: " + ", ".join(f"{k} {common.fmt_rate(v)}" for k, v in seq_rates.items()),
            flush=True,
        )
    pop: dict[int, Any] = {}
    base_j = seq_rates["jtricks sequential (scan)"].median
    # the faster torch configuration (2 threads or 1): the conservative baseline for the speedup
    base_t = max((v.median for k, v in seq_rates.items() if k.startswith("torch")), default=None)
    for S in sizes:
        t0 = time.perf_counter()
        runners = {"jtricks": jtricks_mlp_population(S, x, y), "jax": jax_mlp_population(S, x, y)}
        setup_s = time.perf_counter() - t0
        rates = common.measure(runners, steps=1, blocks=blocks, warmup=1, min_block_s=0.2 if quick else 0.5)
        r = rates["jtricks"].scaled(K * S)
        rj = rates["jax"].scaled(K * S)
        pop[S] = {
            "member_steps_per_s": r.as_dict(),
            "handwritten_jax_member_steps_per_s": rj.as_dict(),
            "ratio_to_handwritten_jax": round(r.median / rj.median, 3),
            "speedup_vs_jtricks_sequential": round(r.median / base_j, 2),
            "speedup_vs_jtricks_host_loop": round(r.median / seq_rates["jtricks host loop"].median, 2),
            "speedup_vs_torch_sequential": round(r.median / base_t, 2) if base_t else None,
            "setup_s": round(setup_s, 2),
        }
        if verbose:
            print(
                f"[population] S={S}: {common.fmt_rate(r)} member-steps/s "
                f"(hand-written jax {common.fmt_rate(rj)}; "
                f"x{pop[S]['speedup_vs_jtricks_sequential']} vs jtricks sequential"
                + (f", x{pop[S]['speedup_vs_torch_sequential']} vs torch" if base_t else "")
                + ")",
                flush=True,
            )
    return {
        "data": source,
        "model": "mlp 40-100-100-10, adam 1e-3, batch 100, 40 steps per scan",
        "sequential": {k: v.as_dict() for k, v in seq_rates.items()},
        "population": {str(k): v for k, v in pop.items()},
        "torch_adam": adam,
    }


# ------------------------------------------------------------------------------------------ CNN
def cnn_config(model: Any = None) -> Any:
    from benchmarks import step as bstep

    config = bstep.jtricks_config("cnn")
    return dataclasses.replace(config, model=model) if model is not None else config


def fashion_arrays(n: int = 1024) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` Fashion-MNIST training images scaled to [0, 1] (random data of the same shape if unavailable)."""
    try:
        from jtricks import data

        ds = data.load("fashion_mnist")
        x = np.asarray(ds.x_train[:n], np.float32)
        if x.max() > 1.5:
            x = x / 255.0
        x = x.reshape(n, 28, 28, 1)
        return x, np.asarray(ds.y_train[:n], np.int32), "fashion_mnist"
    except Exception as e:
        print(f"[population] Fashion-MNIST unavailable ({e}); random data of the same shape", file=sys.stderr)
        rng = np.random.default_rng(0)
        return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n).astype(np.int32), "random"


def cnn_runner(S: int, strategy: str, x: np.ndarray, y: np.ndarray, *, model: Any = None) -> Callable[[int], None]:
    """``run(n)``: n population steps of S CNN members (``strategy``: standalone / vmap / unroll / unroll_serial)."""
    from jtricks import population, train

    config = cnn_config(model)
    hp = train.as_arrays(train.validate_hparams(config, {"learning_rate": 1e-3}))
    step_fn = train.make_train_step(config)
    keys = jnp.stack([jax.random.PRNGKey(i) for i in range(S)])
    hps = {k: jnp.broadcast_to(v, (S,)) for k, v in hp.items()}
    init = jax.jit(jax.vmap(lambda k, h: train.init_state(config, k, h, (28, 28, 1))))
    x_all, y_all = jnp.asarray(x), jnp.asarray(y)
    bs = 64
    nb = len(x) // bs
    rng = np.random.default_rng(0)
    batches = [
        jnp.asarray(np.stack([rng.permutation(len(x))[:bs] for _ in range(S)]).astype(np.int32)) for _ in range(nb)
    ]
    if strategy == "standalone":
        single = jax.jit(step_fn, donate_argnums=0)
        st = init(keys, hps)
        holder_s = [[jax.tree_util.tree_map(lambda a, m=m: jnp.array(a[m]), st) for m in range(S)]]

        def run_s(n: int) -> None:
            ss, m = holder_s[0], None
            for i in range(n):
                b = batches[i % nb]
                out = [single(s, x_all, y_all, b[j]) for j, s in enumerate(ss)]
                ss, m = [o[0] for o in out], [o[1] for o in out]
            holder_s[0] = ss
            jax.block_until_ready((ss, m))

        return run_s
    strat, serialize = (strategy.split("_")[0], strategy.endswith("_serial"))
    fn = jax.jit(
        population.population_map(step_fn, strategy=strat, in_axes=(0, None, None, 0), serialize=serialize),
        donate_argnums=0,
    )
    holder = [init(keys, hps)]

    def run(n: int) -> None:
        s, m = holder[0], None
        for i in range(n):
            s, m = fn(s, x_all, y_all, batches[i % nb])
        holder[0] = s
        jax.block_until_ready((s, m))

    return run


def cnn_point(S: int, variants: list[str], *, quick: bool) -> dict[str, Any]:
    """ms per member-step of each ``impl:strategy`` variant at population size S (interleaved)."""
    from benchmarks import cnn_variants as cv

    x, y, source = fashion_arrays()
    runners: dict[str, Callable[[int], None]] = {}
    compile_s: dict[str, float] = {}
    for v in variants:
        impl, strategy = v.split(":")
        model = None if impl == "jtricks" else cv.cnn_variant(impl)
        t0 = time.perf_counter()
        r = cnn_runner(S, strategy, x, y, model=model)
        r(1)
        compile_s[v] = round(time.perf_counter() - t0, 2)
        runners[v] = r
    rates = common.measure(runners, steps=1, blocks=3 if quick else 5, warmup=1, min_block_s=0.4 if quick else 1.0)
    out = {}
    for v, r in rates.items():
        ms = r.scaled(S)  # member-steps/s
        out[v] = {
            "member_steps_per_s": ms.as_dict(),
            "ms_per_member_step": round(1000.0 / ms.median, 2),
            "first_call_s": compile_s[v],
        }
    base = out.get("jtricks:standalone")
    if base:
        for v in out:
            out[v]["cost_vs_standalone"] = round(out[v]["ms_per_member_step"] / base["ms_per_member_step"], 3)
    return {"S": S, "data": source, "variants": out}


def run_cnn(
    *,
    quick: bool,
    sizes: tuple[int, ...] = (1, 4, 16),
    variants: list[str] | None = None,
    flags: dict[str, str] | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """CNN population: each S in a fresh subprocess (so XLA_FLAGS variants and memory do not leak)."""
    variants = variants or ["jtricks:standalone", "jtricks:vmap", "jtricks:unroll"]
    flags = flags or {"default": ""}
    results: dict[str, Any] = {}
    for fname, fl in flags.items():
        env = {"XLA_FLAGS": fl} if fl else {}
        for S in sizes:
            # S >= 16: only the main strategies (grouped convolutions and 16 unrolled members are slow to run / compile)
            vs = variants if S < 16 else [v for v in variants if v.split(":")[0] == "jtricks"]
            args = ["--cnn-point", str(S), "--variants", ",".join(vs)] + (["--quick"] if quick else [])
            res = common.run_subprocess_json("benchmarks.population", args, env=env, timeout=900)
            results.setdefault(fname, {"xla_flags": fl, "points": {}})["points"][str(S)] = res
            if verbose:
                print(
                    f"[population/cnn] {fname} S={S}: "
                    + ", ".join(
                        f"{k} {v['ms_per_member_step']} ms ({v.get('cost_vs_standalone', '-')}x)"
                        for k, v in res["variants"].items()
                    ),
                    flush=True,
                )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=("mlp", "cnn", "both"), default="both")
    ap.add_argument("--cnn-point", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--variants", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cnn_point:
        print(json.dumps(cnn_point(args.cnn_point, args.variants.split(","), quick=args.quick)))
        return
    out: dict[str, Any] = {}
    if args.part in ("mlp", "both"):
        out["mlp"] = run_mlp(quick=args.quick)
    if args.part in ("cnn", "both"):
        out["cnn"] = run_cnn(quick=args.quick)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
