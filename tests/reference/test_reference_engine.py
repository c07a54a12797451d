"""The engine against an independent training loop written here with plain optax + JAX.

``jtricks.runner.run`` trains a few arms; the reference below re-implements what the engine promises
(docs/engine.md) from the same keys and batch order, with no jtricks engine code: ``optax.sgd`` /
``optax.adamw`` / ``optax.clip_by_global_norm`` / optax schedules / ``optax.ema`` and a numpy mean
for SWA, optax's cross-entropy, a numpy standardization, an unpadded one-shot evaluation and the L2
penalty written out. It uses the model's own ``init`` / ``apply`` (models are tested against flax in
``test_reference_models.py``) and the data primitives (``train_val_split``, ``epoch_batches``).

Key streams: root ``seed_key(seed)``; weights ``key_for(root, "init")``; epoch ``e`` (0-based) draws its
batches from ``epoch_batches(fold_in(key_for(root, "data"), e), N, B)``; update number ``t`` (counting
applied updates only) drops units with ``fold_in(key_for(root, "dropout"), t)``.

Tolerances: the two loops add in different orders (pairwise sums in the engine, XLA's in the
reference) and the engine's Adam is written differently from optax's (same formula), so values agree
to float32 rounding grown over a few dozen updates: losses and learning rates ``rtol=2e-4`` (Adam arm
``1e-3``), accuracies within one example; the recorded early-stopping epochs are exact. The evaluation
chunk (64) divides neither the validation (100) nor the test split, so the engine pads its last chunk.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks import data as jdata
from jtricks import models as jmodels
from jtricks.experiment import Experiment
from jtricks.keys import key_for, seed_key
from jtricks.runner import run

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

EPOCHS = 3
BATCH = 32
N_TRAIN = 200
N_VAL = 100
EVAL_CHUNK = 64
SPLIT_SEED = 3
SEEDS = 2
LR = 0.05
DROPOUT = 0.2
STEPS_PER_EPOCH = N_TRAIN // BATCH

SGD_TRICKS: dict[str, Any] = {  # L2 + clipping + per-epoch decay + EMA + early stopping, on SGD with momentum
    "l2": 0.05,
    "clip": True,
    "clip_norm": 0.5,
    "schedule": "per_epoch_decay",
    "decay_rate": 0.7,
    "averaging": "ema",
    "ema_decay": 0.8,
    "early_stopping": True,
}
ARMS: list[dict[str, Any]] = [
    {"name": "sgd_tricks", **SGD_TRICKS, "patience": 100.0, "min_delta": 0.0},
    # the same program; every epoch after the first fails min_delta: it stops at epoch 2 and restores epoch 1
    {"name": "sgd_tricks_stopped", **SGD_TRICKS, "patience": 1.0, "min_delta": 10.0},
    {  # decoupled weight decay + warm-up cosine + SWA, on Adam
        "name": "adam_wd_warmup_swa",
        "optimizer": "adam",
        "learning_rate": 0.01,
        "weight_decay": 0.05,
        "schedule": "warmup_cosine",
        "warmup_epochs": 1,
        "alpha": 0.1,
        "averaging": "swa",
        "swa_start": 2,
    },
    {  # no update and no batch norm: every zero (padding) row is classified as class 0, its label
        "name": "frozen_weights",
        "learning_rate": 0.0,
        "model.norm": None,
    },
]


# ------------------------------------------------------------------------------------------ data
def _standardize(x_tr: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Per-feature (x - mean) / std with the training subset's float64 statistics (std <= 1e-8 -> 1)."""
    flat = x_tr.reshape(len(x_tr), -1).astype(np.float64)
    mean, std = flat.mean(0), flat.std(0)
    scale = np.where(std > 1e-8, std, 1.0)
    mean32, scale32 = mean.astype(np.float32).reshape(x_tr.shape[1:]), scale.astype(np.float32).reshape(x_tr.shape[1:])
    return [(np.asarray(x, np.float32) - mean32) / scale32 for x in (x_tr, *others)]


def reference_data(dataset: str, n_train: int, n_val: int, **dataset_kwargs: Any) -> dict[str, np.ndarray]:
    ds = jdata.load(dataset, **dataset_kwargs)
    x_tr, y_tr, x_val, y_val = jdata.train_val_split(
        jax.random.PRNGKey(SPLIT_SEED), ds.x_train, ds.y_train, n_val=n_val
    )
    x_tr, y_tr = np.asarray(x_tr)[:n_train], np.asarray(y_tr)[:n_train]
    x_tr, x_val, x_te = _standardize(x_tr, np.asarray(x_val), np.asarray(ds.x_test))
    return {
        "x_tr": x_tr,
        "y_tr": y_tr,
        "x_val": x_val,
        "y_val": np.asarray(y_val),
        "x_te": x_te,
        "y_te": np.asarray(ds.y_test),
    }


# ---------------------------------------------------------------------------------- reference loop
def _optimizer(arm: dict[str, Any], steps_per_epoch: int, epochs: int) -> tuple[optax.GradientTransformation, Any]:
    """The arm's optimizer and schedule, from optax's public pieces."""
    lr = arm.get("learning_rate", LR)
    if arm.get("schedule") == "per_epoch_decay":
        sched = optax.exponential_decay(lr, steps_per_epoch, arm["decay_rate"], staircase=True)
    elif arm.get("schedule") == "warmup_cosine":
        sched = optax.warmup_cosine_decay_schedule(
            0.0, lr, arm["warmup_epochs"] * steps_per_epoch, steps_per_epoch * epochs, end_value=arm["alpha"] * lr
        )
    else:
        sched = optax.constant_schedule(lr)
    if arm.get("optimizer") == "adam":
        tx = optax.adamw(sched, weight_decay=arm.get("weight_decay", 0.0))
    else:
        tx = optax.sgd(sched, momentum=0.9)
    if arm.get("clip"):
        tx = optax.chain(optax.clip_by_global_norm(arm["clip_norm"]), tx)
    return tx, sched


def _evaluate(model, params, mstate, x, y) -> tuple[float, float]:
    logits = _logits(model)(params, mstate, jnp.asarray(x))
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(y))
    return float(jnp.mean(ce)), float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(y)))


_JITTED: dict[Any, Any] = {}


def _cached(key: Any, make: Any) -> Any:
    """One jitted function per key for the whole module (a new closure would compile again)."""
    if key not in _JITTED:
        _JITTED[key] = make()
    return _JITTED[key]


def _logits(model):
    """``x -> logits`` in evaluation mode, jitted once per model."""
    return _cached(id(model), lambda: jax.jit(lambda p, s, x: model.apply(p, s, x, train=False)[0]))


def reference_run(
    model, arm: dict[str, Any], d: dict[str, np.ndarray], seed: int, *, rate: float, epochs: int, batch: int
):
    """One member, trained as the engine documents it; returns (metrics per epoch, member facts)."""
    n = len(d["x_tr"])
    spe = n // batch
    tx, sched = _optimizer(arm, spe, epochs)
    l2 = arm.get("l2", 0.0)
    hp = {"dropout_rate": jnp.float32(rate)}

    def loss(params, mstate, x, y, dkey):
        logits, new_ms = model.apply(params, mstate, x, key=dkey, train=True, hparams=hp)
        ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
        penalty = sum(0.5 * jnp.sum(jnp.square(w)) for w in jax.tree_util.tree_leaves(params) if w.ndim >= 2)
        return ce + l2 * penalty, (new_ms, ce, jnp.mean(jnp.argmax(logits, -1) == y))

    def step_fn(params, mstate, opt_state, x, y, dkey):
        (_, (new_ms, ce, acc)), g = jax.value_and_grad(loss, has_aux=True)(params, mstate, x, y, dkey)
        updates, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, updates), new_ms, opt_state, ce, acc

    step = _cached((id(model), arm["name"], rate, epochs, batch), lambda: jax.jit(step_fn))

    root = seed_key(seed)
    params, mstate = model.init(key_for(root, "init"), d["x_tr"].shape[1:])
    opt_state = tx.init(params)
    ema = optax.ema(arm.get("ema_decay", 0.0), debias=True)
    ema_state, avg = ema.init(params), params
    snapshots: list[Any] = []
    t, frozen = 0, False
    best = {"loss": np.inf, "epoch": -1, "state": None, "count": 0, "stop": -1}
    x_tr, y_tr = jnp.asarray(d["x_tr"]), jnp.asarray(d["y_tr"])
    history = []
    for epoch in range(epochs):
        order = np.asarray(jdata.epoch_batches(jax.random.fold_in(key_for(root, "data"), epoch), n, batch))
        ces, accs = [], []
        for idx in order:
            dkey = jax.random.fold_in(key_for(root, "dropout"), t)
            new = step(params, mstate, opt_state, x_tr[idx], y_tr[idx], dkey)
            ces.append(float(new[3]))
            accs.append(float(new[4]))
            if not frozen:  # a stopped member computes its batch metrics but applies nothing
                params, mstate, opt_state = new[:3]
                t += 1
                if arm.get("averaging") == "ema":
                    avg, ema_state = ema.update(params, ema_state)
        if arm.get("early_stopping") and not frozen:
            vl = _evaluate(model, params, mstate, d["x_val"], d["y_val"])[0]
            if vl < best["loss"] - arm["min_delta"]:
                best.update(loss=vl, epoch=epoch + 1, state=(params, mstate), count=0)
            else:
                best["count"] += 1
                if best["count"] >= arm["patience"]:
                    frozen, best["stop"] = True, epoch + 1
                    params, mstate = best["state"]
        if arm.get("averaging") == "swa":
            if epoch + 1 >= arm["swa_start"]:
                snapshots.append(params)
                avg = jax.tree_util.tree_map(
                    lambda *xs: np.mean(np.stack([np.asarray(v, np.float64) for v in xs]), 0), *snapshots
                )
            else:
                avg = params
        m = {"train_loss": np.mean(ces), "train_acc": np.mean(accs), "lr": float(sched(t))}
        targets = [("", params)] + ([("avg_", avg)] if arm.get("averaging") else [])
        for prefix, p in targets:
            for split in ("val", "test"):
                x, y = (d["x_val"], d["y_val"]) if split == "val" else (d["x_te"], d["y_te"])
                m[f"{prefix}{split}_loss"], m[f"{prefix}{split}_acc"] = _evaluate(model, p, mstate, x, y)
        history.append(m)
    return history, {"stopped_epoch": best["stop"], "best_epoch": best["epoch"], "params": params, "mstate": mstate}


# ------------------------------------------------------------------------------------- comparison
def _rows(result, arm: str, seed: int) -> dict[tuple[int, str], float]:
    return {(r["epoch"], r["metric"]): r["value"] for r in result.metric_rows if r["arm"] == arm and r["seed"] == seed}


def _compare(result, arm_name: str, seed: int, history: list[dict], *, rtol: float, n_val: int, n_test: int) -> None:
    rows = _rows(result, arm_name, seed)
    for epoch, ref in enumerate(history, start=1):
        for metric, value in ref.items():
            got = rows[(epoch, metric)]
            where = f"{arm_name} seed {seed} epoch {epoch} {metric}"
            if metric.endswith("_acc"):
                n = {"val": n_val, "test": n_test}.get(metric.split("_")[-2], BATCH)
                assert abs(got - value) <= 1.0 / n + 1e-6, (where, got, value)
            else:
                np.testing.assert_allclose(got, value, rtol=rtol, atol=1e-6, err_msg=where)


def _padding_would_count(model, params, mstate, x_shape) -> bool:
    """Whether a zero (padding) row is classified as class 0, the label padding rows carry."""
    logits, _ = model.apply(params, mstate, jnp.zeros((1, *x_shape)), train=False)
    return int(jnp.argmax(logits[0])) == 0


@pytest.fixture(scope="module")
def digits_ref() -> dict[str, np.ndarray]:
    return reference_data("digits", N_TRAIN, N_VAL)


def mlp_experiment() -> Experiment:
    return Experiment(
        name="reference_mlp",
        dataset="digits",
        preprocess="standardize",
        n_train=N_TRAIN,
        n_val=N_VAL,
        split_seed=SPLIT_SEED,
        model="mlp",
        model_kwargs={"widths": [32], "norm": "batch"},
        optimizer="momentum",
        execution="scan",
        eval_batch_size=EVAL_CHUNK,
        epochs=EPOCHS,
        batch_size=BATCH,
        hparams={"learning_rate": LR, "dropout_rate": DROPOUT},
        arms=ARMS,
        seeds=SEEDS,
        metrics=("val_acc",),
    )


def test_mlp_with_dropout_and_batch_norm_matches_an_optax_loop(digits_ref, tmp_path: Path) -> None:
    """Curves, evaluations (padded chunks), L2, decoupled decay, clipping, EMA / SWA weights, early
    stopping and both schedules equal the independent loop's."""
    d = digits_ref
    assert len(d["x_val"]) % EVAL_CHUNK and len(d["x_te"]) % EVAL_CHUNK  # the last chunks are padded
    result = run(mlp_experiment(), out_dir=tmp_path, progress=False, plot=False, checkpoint=False)
    models = {norm: jmodels.get("mlp", widths=[32], norm=norm, num_classes=10) for norm in ("batch", None)}
    for arm in ARMS:
        model = models[arm.get("model.norm", "batch")]
        for seed in range(SEEDS):
            history, facts = reference_run(model, arm, d, seed, rate=DROPOUT, epochs=EPOCHS, batch=BATCH)
            rtol = 1e-3 if arm.get("optimizer") == "adam" else 2e-4
            _compare(result, arm["name"], seed, history, rtol=rtol, n_val=len(d["x_val"]), n_test=len(d["x_te"]))
            member = next(r for r in result.member_rows if r["arm"] == arm["name"] and r["seed"] == seed)
            if arm["name"] == "sgd_tricks_stopped":
                assert (
                    (member["stopped_epoch"], member["best_epoch"])
                    == (facts["stopped_epoch"], facts["best_epoch"])
                    == (2, 1)
                )
            final = result.final_states[f"{arm['name']}/seed={seed}"]
            # Adam (lr 0.01) moves a weight by up to ~lr per update; its rounding differs from optax's in
            # near-zero weights by a few 1e-5 after these updates: 1% of one step is the absolute tolerance
            atol = 1e-4 if arm.get("optimizer") == "adam" else 1e-5
            for a, b in zip(jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(facts["params"])):
                np.testing.assert_allclose(a, b, rtol=rtol * 10, atol=atol)
            if arm["name"] == "frozen_weights":  # here padding rows counted as examples would raise the accuracy
                assert _padding_would_count(model, facts["params"], facts["mstate"], d["x_tr"].shape[1:])


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def fashion_subset(folder: Path, n_test: int) -> Path:
    """The real Fashion-MNIST training files and its first ``n_test`` test images, as IDX files in ``folder``
    (the whole 10,000-image test split would make evaluation dominate the test's time)."""
    ds = jdata.load("fashion_mnist")
    for stem, x, y in (("train", ds.x_train, ds.y_train), ("t10k", ds.x_test[:n_test], ds.y_test[:n_test])):
        _write_idx(folder / f"{stem}-images-idx3-ubyte.gz", np.asarray(x).reshape(len(x), 28, 28))
        _write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", np.asarray(y))
    return folder


def test_notebook_cnn_matches_an_optax_loop(tmp_path: Path) -> None:
    """The guide's dropout-notebook CNN (dropout 0.5) on Fashion-MNIST, host-loop execution, 2 epochs."""
    try:
        files = fashion_subset(tmp_path, n_test=500)
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST files not installed (CI installs them; apt-get install dataset-fashion-mnist): {e}")
    d = reference_data("fashion_mnist", 256, N_VAL, path=str(files))
    exp = Experiment(
        name="reference_cnn",
        dataset="fashion_mnist",
        dataset_kwargs={"path": str(files)},
        preprocess="standardize",
        n_train=256,
        n_val=N_VAL,
        split_seed=SPLIT_SEED,
        model="cnn",
        optimizer="momentum",
        execution="loop",
        eval_batch_size=EVAL_CHUNK,
        epochs=2,
        batch_size=64,
        hparams={"learning_rate": 0.02, "dropout_rate": 0.5},
        seeds=1,
        metrics=("val_acc",),
    )
    assert len(d["x_val"]) % EVAL_CHUNK and len(d["x_te"]) % EVAL_CHUNK  # the last chunks are padded
    result = run(exp, out_dir=tmp_path / "run", progress=False, plot=False, checkpoint=False)
    arm = {"name": "baseline", "learning_rate": 0.02}
    history, facts = reference_run(jmodels.get("cnn", num_classes=10), arm, d, 0, rate=0.5, epochs=2, batch=64)
    _compare(result, "baseline", 0, history, rtol=2e-4, n_val=len(d["x_val"]), n_test=len(d["x_te"]))
    for a, b in zip(
        jax.tree_util.tree_leaves(result.final_states["baseline/seed=0"]), jax.tree_util.tree_leaves(facts["params"])
    ):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-5)
