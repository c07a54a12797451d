"""Per-layer activation std and gradient norm at initialization, by depth: vanishing / exploding signals.

For a deep narrow MLP (``--depth`` hidden layers of ``--width`` units; MNIST-1D inputs, standardized)
and each activation (tanh, ReLU) and initializer of ``experiments/init.py``, the initial weights of
seeds 0..S-1 (the engine's ``"init"`` key stream, so they are the experiment's initial weights) are
applied to 512 training examples with ``capture=True`` (:mod:`jtricks.models`); then, per hidden
layer, the std of its output (:func:`jtricks.diagnostics.activation_stats`) and, per layer, the
norm of the gradient of the mean cross-entropy (:func:`jtricks.diagnostics.per_layer_norms`). The
plot shows the median over seeds on a log scale: N(0,1) explodes (ReLU) or saturates (tanh), the
small-variance "gaussian" and "uniform" vanish geometrically with depth, while LeCun / Glorot
(tanh) and He (ReLU) keep the signal in range (Glorot & Bengio, 2010; He et al., 2015)::

    python experiments/plots/init_by_depth.py --out docs/results/init
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jtricks import data as jdata
from jtricks import diagnostics, models, numerics
from jtricks.keys import key_for, seed_key

INITS = ("standard_normal", "uniform", "gaussian", "lecun_normal", "glorot_normal", "he_normal")
ACTIVATIONS = ("tanh", "relu")


def by_depth(
    depth: int = 20,
    width: int = 32,
    *,
    seeds: int = 4,
    n_examples: int = 512,
    activations: Sequence[str] = ACTIVATIONS,
    inits: Sequence[str] = INITS,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
) -> list[dict]:
    """Rows ``{activation, init, layer (1-based), act_std, grad_norm}``: medians over ``seeds`` seeds.

    ``act_std`` is the std of hidden layer ``l``'s output (NaN for the output layer ``depth + 1``),
    ``grad_norm`` the L2 norm of the gradient of the mean cross-entropy w.r.t. layer ``l``'s
    kernel and bias. ``x, y`` default to the first ``n_examples`` standardized MNIST-1D training signals.
    """
    if x is None or y is None:
        ds = jdata.preprocess(jdata.mnist1d(), "standardize")
        x, y = np.asarray(ds.x_train[:n_examples]), np.asarray(ds.y_train[:n_examples])
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)
    rows: list[dict] = []
    for act in activations:
        for init in inits:
            model = models.mlp((width,) * depth, 10, init=init, activation=act)

            @jax.jit
            def one(key: jax.Array) -> tuple[dict, dict]:
                params, state = model.init(key, tuple(xj.shape[1:]))

                def loss(p: dict) -> tuple[jax.Array, dict]:
                    logits, _, acts = model.apply(p, state, xj, train=False, capture=True)
                    return numerics.mean(numerics.softmax_cross_entropy(logits, yj)), acts

                grads, acts = jax.grad(loss, has_aux=True)(params)
                a_std = {
                    k: v["std"]
                    for k, v in diagnostics.activation_stats({k: a["post"] for k, a in acts.items()}).items()
                }
                return a_std, diagnostics.per_layer_norms(grads, group="layer")

            per_seed = [one(key_for(seed_key(s), "init")) for s in range(seeds)]
            layer_names = sorted(per_seed[0][1])  # zero-padded names: sorted = depth order
            for i, name in enumerate(layer_names):
                stds = [float(p[0][name]) if name in p[0] else np.nan for p in per_seed]
                gns = [float(p[1][name]) for p in per_seed]
                rows.append(
                    {
                        "activation": act,
                        "init": init,
                        "layer": i + 1,
                        "act_std": float(np.median(stds)),
                        "grad_norm": float(np.median(gns)),
                    }
                )
    return rows


def plot(rows: list[dict], path: Path, title: str) -> None:
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    acts = list(dict.fromkeys(r["activation"] for r in rows))
    inits = list(dict.fromkeys(r["init"] for r in rows))
    fig = Figure(figsize=(5.2 * len(acts), 7.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(acts), squeeze=False)
    cmap = colormaps["tab10"]
    tiny = 1e-30
    for j, act in enumerate(acts):
        for k, init in enumerate(inits):
            sel = [r for r in rows if r["activation"] == act and r["init"] == init]
            layers = [r["layer"] for r in sel]
            a = np.array([r["act_std"] for r in sel])
            g = np.array([r["grad_norm"] for r in sel])
            ok = np.isfinite(a)
            axes[0][j].plot(np.array(layers)[ok], np.maximum(a[ok], tiny), "o-", ms=3, color=cmap(k), label=init)
            axes[1][j].plot(layers, np.maximum(g, tiny), "o-", ms=3, color=cmap(k), label=init)
        axes[0][j].set_title(f"{act}: std of each hidden layer's output", fontsize=10)
        axes[1][j].set_title(f"{act}: gradient norm of each layer", fontsize=10)
        for ax in (axes[0][j], axes[1][j]):
            ax.set_yscale("log")
            ax.set_xlabel("layer (1 = next to the input)")
            ax.grid(True, alpha=0.3, which="both")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="per-layer activation std and gradient norm at initialization")
    p.add_argument("--out", default="docs/results/init")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--seeds", type=int, default=4)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = by_depth(args.depth, args.width, seeds=args.seeds)
    with open(out / "by_depth.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["activation", "init", "layer", "act_std", "grad_norm"], lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    plot(
        rows,
        out / "by_depth.png",
        f"MLP {args.depth} x {args.width} at initialization, MNIST-1D (median of {args.seeds} seeds)",
    )
    for act in ACTIVATIONS:
        for init in INITS:
            sel = [r for r in rows if r["activation"] == act and r["init"] == init]
            print(
                f"{act:5s} {init:16s} act std layer1 {sel[0]['act_std']:.3g} -> "
                f"layer{args.depth} {sel[args.depth - 1]['act_std']:.3g}; "
                f"grad norm layer1 {sel[0]['grad_norm']:.3g}, output layer {sel[-1]['grad_norm']:.3g}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
