"""Population-based training: the right members exploit and explore (an independent ranking of the run's own
metrics), a copied member's state is its source's (hyperparameters × 0.8 or × 1.2, also in the optimizer's
injected copy), and two runs write byte-identical lineage.csv and metrics.csv."""

from __future__ import annotations

import csv
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import data, experiment, pbt, report, results_io, runner, search
from jtricks import train as jtrain


def _toy() -> data.Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(320, 8)).astype(np.float32)
    y = np.digitize(x @ rng.normal(size=8), np.linspace(-2, 2, 9)).astype(np.int32)
    return data.arrays(x[:256], y[:256], x[256:], y[256:], num_classes=10, name="toy")


# the same toy problem, population size and programs as tests/test_search.py (shared compilation cache)
BASE = experiment.Experiment(
    name="search_toy", dataset=_toy(), preprocess="raw", n_val=64, model="mlp", model_kwargs={"widths": (16,)},
    optimizer="sgd", epochs=3, batch_size=32, eval_batch_size=64, seeds=1,
    grid={"learning_rate": search.loguniform(1e-3, 1.0)}, samples=4, sample_seed=3,
    hparams={"dropout_rate": 0.0}, metrics=("val_acc", "train_loss"),
)
PBT = search.PBT(every=1, fraction=0.5, metric="val_loss")


def test_pbt_settings_refused_before_compiling() -> None:
    with pytest.raises(ValueError, match="every"):
        search.PBT(every=0)
    with pytest.raises(ValueError, match="fraction"):
        search.PBT(every=1, fraction=0.75)
    with pytest.raises(ValueError, match="perturb"):
        search.PBT(every=1, perturb=(0.8, -1.0))
    with pytest.raises(ValueError, match="resample"):
        search.PBT(every=1, resample=1.5)
    with pytest.raises(ValueError, match="smaller than the number of epochs"):
        experiment.validate(dataclasses.replace(BASE, search=search.PBT(every=3)))
    with pytest.raises(ValueError, match="numeric hyperparameters"):
        experiment.validate(dataclasses.replace(BASE, search=search.PBT(every=1, factors=("b1",))))
    with pytest.raises(ValueError, match="not measured"):
        experiment.validate(dataclasses.replace(BASE, search=search.PBT(every=1, metric="val_r2")))
    with pytest.raises(ValueError, match="max_members"):
        experiment.validate(dataclasses.replace(BASE, search=PBT, max_members=2))


def test_exploit_explore_picks_bottom_copies_top_and_perturbs() -> None:
    nan = float("nan")
    scores = [0.3, 0.9, nan, 0.5, 0.1, 0.7]            # val_acc, higher is better
    diverged = [False, False, False, False, False, True]  # member 5 diverged: last despite its score
    assert pbt.rank_members(scores, diverged, True) == [1, 3, 0, 4, 2, 5]
    assert pbt.rank_members([0.2, 0.1, 0.1], [False] * 3, False) == [1, 2, 0]  # ties to the lower index
    lr = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], np.float32)
    sources, values = pbt.exploit_explore(scores, diverged, {"learning_rate": lr}, search.PBT(every=1, fraction=0.5),
                                          True, np.random.default_rng(0), {})
    bottom = [2, 4, 5]  # the worst 3 of 6 in the ranking above
    assert sorted(i for i in range(6) if sources[i] != i) == sorted(bottom)
    for i in range(6):
        if i in bottom:
            assert sources[i] in (1, 3, 0)
            assert values["learning_rate"][i] in {np.float32(np.float64(lr[sources[i]]) * c) for c in (0.8, 1.2)}
        else:
            assert sources[i] == i and values["learning_rate"][i] == lr[i]
    # out of range (dropout 0.9 x 1.2 >= 1): the source's value is kept; resample=1 draws from the factor's list
    _, v = pbt.exploit_explore([1.0, 0.0], [False] * 2, {"dropout_rate": np.array([0.9, 0.1], np.float32)},
                               search.PBT(every=1, perturb=(1.2,)), True, np.random.default_rng(0), {})
    assert v["dropout_rate"].tolist() == [np.float32(0.9)] * 2
    _, v = pbt.exploit_explore([1.0, 0.0], [False] * 2, {"dropout_rate": np.array([0.9, 0.1], np.float32)},
                               search.PBT(every=1, resample=1.0), True, np.random.default_rng(0), {"dropout_rate": [0.25]})
    assert v["dropout_rate"].tolist() == [np.float32(0.9), np.float32(0.25)]


def test_copied_state_equals_its_source_with_perturbed_hparams() -> None:
    arms = experiment.validate(dataclasses.replace(BASE, optimizer="adam"))
    exp = arms[0].experiment
    config = experiment.build_config(exp, experiment.build_model(exp, 10), 256)
    hp = [jtrain.validate_hparams(config, dict(a.hparams)) for a in arms]
    stacked = {k: jnp.asarray(np.array([h[k] for h in hp], np.float32)) for k in config.hparam_names()}
    keys = jnp.stack([jax.random.PRNGKey(s) for s in range(4)])
    state = jax.vmap(lambda k, h: jtrain.init_state(config, k, h, (8,)))(keys, stacked)
    lr = np.asarray(state.hparams["learning_rate"])
    sources = np.array([0, 0, 2, 2])
    new_lr = lr.copy()
    new_lr[1], new_lr[3] = np.float32(lr[0] * 0.8), np.float32(lr[2] * 1.2)
    after = pbt.apply_copies(state, sources, {"learning_rate": new_lr})
    for i, src in enumerate(sources):
        for name in ("params", "opt_state", "model_state", "early", "diverged_epoch", "step", "first_objective"):
            a, b = getattr(after, name), getattr(state, name)
            if name == "opt_state":  # all but the injected hyperparameters (checked below)
                a, b = a._replace(hyperparams={}), b._replace(hyperparams={})
            la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
            assert len(la) == len(lb)
            for x, y in zip(la, lb):
                np.testing.assert_array_equal(np.asarray(x)[i], np.asarray(y)[src], err_msg=f"{name} of member {i}")
        np.testing.assert_array_equal(np.asarray(after.key)[i], np.asarray(state.key)[i])  # own key kept
    np.testing.assert_array_equal(np.asarray(after.hparams["learning_rate"]), new_lr)
    np.testing.assert_array_equal(np.asarray(after.opt_state.hyperparams["learning_rate"]), new_lr)


def _lineage(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_pbt_run_lineage_consistent_and_reproducible(tmp_path) -> None:
    exp = dataclasses.replace(BASE, search=PBT)
    a = runner.run(exp, out_dir=tmp_path / "a", progress=False, plot=True, compile_workers=1)
    b = runner.run(exp, out_dir=tmp_path / "b", progress=False, plot=False, compile_workers=1)
    for f in ("lineage.csv", "metrics.csv"):  # reruns: byte for byte
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert a.compiles == {"group0/init": 1, "group0/epoch": 1}  # the population keeps its size: no recompile
    assert (tmp_path / "a" / "lineage.png").stat().st_size > 0
    manifest = results_io.check_complete(tmp_path / "a")
    assert manifest["search"]["groups"][0]["exploit_epochs"] == [1, 2]
    rows = _lineage(tmp_path / "a" / "lineage.csv")
    metrics = report.read_metrics_csv(tmp_path / "a" / "metrics.csv")
    members = [f"{arm.name}/seed=0" for arm in a.arms]
    lr = {(0, r["member"]): np.float32(float(r["learning_rate"])) for r in rows if r["epoch"] == "0"}
    assert [lr[(0, m)] for m in members] == [np.float32(arm.hparams["learning_rate"]) for arm in a.arms]
    copies = 0
    for epoch in (1, 2):
        # independent ranking from metrics.csv: the lower half by val_loss (ties to the earlier member) copy
        # members of the upper half, and take their learning rate x 0.8 or x 1.2
        loss = {f"{r['arm']}/seed=0": r["value"] for r in metrics if r["metric"] == "val_loss" and r["epoch"] == epoch}
        order = sorted(members, key=lambda m: (loss[m], members.index(m)))
        at = {r["member"]: r for r in rows if r["epoch"] == str(epoch)}
        assert sorted(m for m in members if at[m]["copied_from"]) == sorted(order[2:])
        for m in members:
            src = at[m]["copied_from"]
            lr[(epoch, m)] = np.float32(float(at[m]["learning_rate"]))
            if src:
                copies += 1
                assert src in order[:2]
                assert lr[(epoch, m)] in {np.float32(np.float64(lr[(epoch - 1, src)]) * c) for c in (0.8, 1.2)}
            else:
                assert lr[(epoch, m)] == lr[(epoch - 1, m)]
    assert copies == 4
    assert manifest["search"]["groups"][0]["final_hparams"] == {m: {"learning_rate": float(lr[(2, m)])} for m in members}
