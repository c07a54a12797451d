"""Benchmark: one engine training step in each precision (``float32``, ``bfloat16``, ``float16``).

The cases of :mod:`benchmarks.step` (``mlp``: 784-512-512-10, batch 128, Adam; ``mlp_bn_dropout``: the same with
batch norm and dropout 0.2), each as :func:`jtricks.train.make_train_step` jitted with the state donated, timed
in interleaved blocks (:func:`benchmarks.common.measure`). Reported: steps/s and the ratio to float32 of the same
run. On a CPU bfloat16 and float16 are expected to be slower (no native low-precision matrix units on most CPUs:
XLA converts around each product); the speed-up they are for needs a GPU or TPU, where this script runs unchanged.

Run: ``python -m benchmarks.precision [--quick]``.
"""

from __future__ import annotations

import argparse
import dataclasses

import jax

from benchmarks import common, step
from benchmarks import models_ref as ref

PRECISIONS = ("float32", "bfloat16", "float16")


def runner(case: str, precision: str, x, y) -> common.Runner:
    """The jitted, state-donating engine step of ``case`` in ``precision`` (one member)."""
    from jtricks import train

    config = dataclasses.replace(step.jtricks_config(case), precision=precision)
    c = ref.CASES[case]
    hp = train.as_arrays(train.validate_hparams(config, {"learning_rate": 1e-3}))
    state = jax.jit(lambda k, h: train.init_state(config, k, h, c["input"]))(jax.random.PRNGKey(0), hp)
    fn = jax.jit(train.make_train_step(config), donate_argnums=0)
    bs = c["batch"]
    nb = len(x) // bs
    batches = [jax.numpy.arange(i * bs, (i + 1) * bs, dtype=jax.numpy.int32) for i in range(nb)]
    x_all, y_all = jax.numpy.asarray(x), jax.numpy.asarray(y)
    return common.stateful_runner(state, lambda s, i: fn(s, x_all, y_all, batches[i % nb]))


def main(quick: bool = False) -> str:
    blocks, min_block = (3, 0.2) if quick else (7, 0.5)
    rows = []
    for case in ("mlp", "mlp_bn_dropout"):
        x, y = ref.synthetic_data(case, step.N_BATCHES)
        rates = common.measure(
            {p: runner(case, p, x, y) for p in PRECISIONS}, steps=4, blocks=blocks, min_block_s=min_block
        )
        base = rates["float32"].median
        for p in PRECISIONS:
            r = rates[p]
            rows.append([case, p, f"{r.median:.0f}", f"{r.lo:.0f}-{r.hi:.0f}", f"{r.median / base:.2f}"])
    table = common.markdown_table(["case", "precision", "steps/s", "min-max", "vs float32"], rows)
    print(f"backend: {jax.default_backend()} ({jax.devices()[0].device_kind})")
    print(table)
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter blocks")
    main(parser.parse_args().quick)
