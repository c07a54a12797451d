"""Where the engine's step time goes: remove its extra work one piece at a time (MLP step, case a).

Variants (each patches jtricks while its step is traced, then restores it):

1. ``jtricks``: the engine as is;
2. ``no grad-norm``: the per-step gradient norm (a pairwise sum over every parameter) replaced by a
   boolean finiteness check (``all(isfinite(g))``: AND is exact in any order, so it stays vmap-stable);
3. ``+ jnp loss``: the loss' pairwise log-sum-exp and mean replaced by ``optax`` / ``jnp.mean``
   (NOT vmap-stable: the upper bound of what the loss' fixed-association reductions cost);

and hand-written JAX + optax. (The divergence guard is not in the step: ``train.guard_epoch`` runs once per
epoch.) Prints the XLA operation count and operation time per step (profile) and
the interleaved steps/s. Run: ``python -m benchmarks.ablate_engine [case] [blocks]``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from benchmarks import common, profile
from benchmarks import models_ref as ref
from benchmarks import step as bstep


def finite_flag(tree: Any) -> jax.Array:
    """0.0 if every leaf is finite else inf (stands in for the gradient norm in the guard)."""
    ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]))
    return jnp.where(ok, jnp.float32(0.0), jnp.float32(jnp.inf))


def variants(case: str) -> dict[str, Callable[[int], None]]:
    from jtricks import numerics as jnum

    x, y = ref.synthetic_data(case, 16)
    runners: dict[str, Callable[[int], None]] = {}
    saved = (jnum.global_norm, jnum.softmax_cross_entropy, jnum.mean)

    def add(name: str) -> None:
        run = bstep.jtricks_runner(case, x, y)
        run(1)  # trace now, while the patches are in place
        runners[name] = run

    try:
        add("jtricks")
        jnum.global_norm = finite_flag
        add("no grad-norm (boolean finite check)")
        jnum.softmax_cross_entropy = optax.softmax_cross_entropy_with_integer_labels
        jnum.mean = lambda v, axis=None, keepdims=False: jnp.mean(v, axis=axis, keepdims=keepdims)
        add("+ jnp loss (not vmap-stable)")
    finally:
        jnum.global_norm, jnum.softmax_cross_entropy, jnum.mean = saved
    runners["jax+optax"] = ref.jax_runner(case, x, y)
    return runners


def main() -> None:
    case = sys.argv[1] if len(sys.argv) > 1 else "mlp"
    blocks = int(sys.argv[2]) if len(sys.argv) > 2 else 11
    runners = variants(case)
    for name, run in runners.items():
        p = profile.op_profile(run, 20)
        n_ops = len([k for k in p if not k.startswith("end:")])
        print(f"{name:38s} ops {n_ops:4d}  op-time {sum(p.values()):7.0f} us/step  {profile.categorize(p)}", flush=True)
    rates = common.measure(runners, steps=10, blocks=blocks, min_block_s=0.4)
    base = rates["jax+optax"].median
    for name, r in rates.items():
        print(f"{name:38s} {common.fmt_rate(r)} steps/s  = {r.median / base:.3f}x hand-written JAX", flush=True)


if __name__ == "__main__":
    main()
