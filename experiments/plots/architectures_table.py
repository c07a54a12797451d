r"""Parameters, accuracy and training time per epoch of each architecture of one or more results folders.

For every results folder given (e.g. ``architectures`` and ``architectures_small``) and every arm:
the number of parameters (:func:`jtricks.models.count_params` of the arm's model on the data's input
shape), the final test accuracy over seeds (mean and 95% t-CI, from ``summary.csv``), and the time
per epoch. By default that time comes from the run itself (``manifest.json`` ``timing``: the median wall
time of the arm's population epochs, training plus evaluation, with the compile time beside it; the
first epoch is left out when the programs compiled on first use). With ``--steps N`` (or for a run
without a timing record) it is measured here instead: the jitted, vmapped train step
(:func:`jtricks.train.make_train_step`) of ``--members`` members timed over N steps after a warm-up,
times the steps per epoch (training only). Writes ``table.md`` into ``--out``::

    python experiments/plots/architectures_table.py runs/architectures runs/architectures_small \
        --out docs/results/architectures
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jtricks import experiment as jexp
from jtricks import models, prepare
from jtricks import train as jtrain
from jtricks.keys import seed_key


def step_time(arm: jexp.Arm, data: jtrain.DeviceData, input_shape: tuple[int, ...], members: int, steps: int) -> float:
    """Seconds per training step of a ``members``-member population of ``arm`` (median of ``steps`` timed steps)."""
    e = arm.experiment
    model = jexp.build_model(e, 10)
    config = jexp.build_config(e, model, int(data.x_train.shape[0]))
    hp = jtrain.validate_hparams(config, {k: v for k, v in arm.hparams.items() if k in config.hparam_names()})
    keys = jnp.stack([seed_key(s) for s in range(members)])
    hps = {k: jnp.full((members,), v, jnp.float32) for k, v in hp.items()}
    state = jax.jit(jax.vmap(lambda k, h: jtrain.init_state(config, k, h, input_shape)))(keys, hps)
    step = jax.jit(jax.vmap(jtrain.make_train_step(config), in_axes=(0, None, None, 0)), donate_argnums=0)
    b = e.batch_size
    idx = jnp.tile(jnp.arange(b, dtype=jnp.int32)[None], (members, 1))
    times = []
    for i in range(steps + 3):
        t0 = time.perf_counter()
        state, m = step(state, data.x_train, data.y_train, (idx + i * b) % data.x_train.shape[0])
        jax.block_until_ready(m["loss"])
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_timing(manifest: dict, arm: str) -> tuple[float, float | None, int] | None:
    """``(median epoch seconds, compile seconds or None, members)`` of the group that ran ``arm``, from
    the manifest's ``timing`` record (``None`` for runs without one)."""
    for t in manifest.get("timing", []):
        if arm in t["arms"]:
            epochs = t["epoch_s"] if t["compile_s"] is not None or len(t["epoch_s"]) < 2 else t["epoch_s"][1:]
            return float(np.median(epochs)), t["compile_s"], int(t["members"])
    return None


def table(run_dir: str | Path, *, members: int | None, steps: int, cache: dict | None = None) -> str:
    """The Markdown table of one results folder. ``cache`` maps (model config, optimizer, batch size,
    members) to a measured step time, so a second folder with the same arms on other data is not re-timed."""
    cache = {} if cache is None else cache
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    exp = jexp.load_experiment(manifest["experiment"])
    cfg = manifest["config"]
    exp = jexp.apply_overrides(
        exp,
        {
            k: cfg[k]
            for k in ("epochs", "seeds", "n_train", "n_val", "batch_size", "eval_batch_size", "dataset_kwargs")
            if k in cfg
        },
    )
    ran = [a["arm"] for a in json.loads((run_dir / "arms.json").read_text())]
    arms = [a for a in jexp.validate(exp) if a.name in ran]
    summary = {(r["metric"], r["arm"]): r for r in _read_summary(run_dir / "summary.csv")}
    data, num_classes, input_shape = prepare.prepare_data(arms[0].experiment)[:3]
    n_train = int(data.x_train.shape[0])
    timings = {a.name: run_timing(manifest, a.name) for a in arms}
    from_run = steps <= 0 and all(timings.values())
    members = members or exp.seeds
    lines = [
        f"## {exp.name}: {n_train:,} training images, {exp.epochs} epochs, {exp.seeds} seeds "
        f"({manifest['device']['kind']}, {manifest['device']['backend']}; "
        f"run wall time {manifest['wall_time_s']:.0f} s)",
        "",
    ]
    if from_run:
        lines += [
            "| arm | parameters | test acc [95% CI] | n | time per epoch (s) | compile (s) |",
            "|:---|---:|---:|---:|---:|---:|",
        ]
    else:
        lines += [
            f"| arm | parameters | test acc [95% CI] | n | time per epoch, {members} members (s) |",
            "|:---|---:|---:|---:|---:|",
        ]
    for arm in arms:
        model = jexp.build_model(arm.experiment, num_classes)
        params, _ = model.init(jax.random.PRNGKey(0), input_shape)
        r = summary.get(("test_acc", arm.name))
        acc = f"{r['mean']:.4f} [{r['ci_lo']:.4f}, {r['ci_hi']:.4f}]" if r else "—"
        n = r["n"] if r else "—"
        row = f"| {arm.name} | {models.count_params(params):,} | {acc} | {n} |"
        if from_run:
            epoch_s, compile_s, _ = timings[arm.name]  # type: ignore[misc]
            lines.append(f"{row} {epoch_s:.2f} | {'—' if compile_s is None else f'{compile_s:.1f}'} |")
            continue
        key = (repr(model.config), arm.experiment.optimizer, arm.experiment.batch_size, members)
        if key not in cache:
            cache[key] = step_time(arm, data, input_shape, members, steps)
        t = cache[key] * (n_train // arm.experiment.batch_size)
        lines.append(f"{row} {t:.2f} |")
    return "\n".join(lines) + "\n"


def _read_summary(path: Path) -> list[dict]:
    import csv

    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for k in ("mean", "ci_lo", "ci_hi"):
                row[k] = float(row[k]) if row[k] else float("nan")
            out.append(row)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="parameters, accuracy and time per epoch of each architecture")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", default=None, help="folder for table.md (default: the first run folder)")
    p.add_argument("--members", type=int, default=None, help="population size timed (default: the run's seeds)")
    p.add_argument(
        "--steps",
        type=int,
        default=0,
        help="re-time the train step over this many steps per arm (default 0: the run's own epoch times)",
    )
    args = p.parse_args(argv)
    device = f"{jax.devices()[0].device_kind} ({jax.default_backend()})"
    if args.steps > 0:
        how = (
            f"the jitted, vmapped train step of the population, median of {args.steps} steps after 3 warm-up steps, "
            f"times the steps per epoch (training only, no evaluation), measured on {device}"
        )
    else:
        how = (
            "the median wall time of one epoch of the arm's population (all seeds at once; training plus "
            "validation and test evaluation) in the run itself (manifest.json `timing`); compile: the seconds "
            "XLA spent compiling the population's programs ahead of time"
        )
    text = f"# Architectures: parameters, accuracy, time per epoch\n\nTime per epoch: {how}.\n\n"
    cache: dict = {}
    text += "\n".join(table(d, members=args.members, steps=args.steps, cache=cache) for d in args.run_dirs)
    out = Path(args.out or args.run_dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
