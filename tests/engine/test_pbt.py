"""Population-based training: the right members exploit and explore (an independent ranking of the run's own
metrics), a copied member's state is its source's (hyperparameters × 0.8 or × 1.2, also in the optimizer's
injected copy), and two runs write byte-identical lineage.csv and metrics.csv."""

from __future__ import annotations

import csv
import dataclasses

import jax
import numpy as np
import pytest
from support.experiments import search_toy

from jtricks import experiment, pbt, report, results_io, runner, search
from jtricks.engine import runtime

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`


BASE = search_toy()
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
    scores = [0.3, 0.9, nan, 0.5, 0.1, 0.7]  # val_acc, higher is better
    diverged = [False, False, False, False, False, True]  # member 5 diverged: last despite its score
    assert pbt.rank_members(scores, diverged, True) == [1, 3, 0, 4, 2, 5]
    assert pbt.rank_members([0.2, 0.1, 0.1], [False] * 3, False) == [1, 2, 0]  # ties to the lower index
    lr = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], np.float32)
    sources, values = pbt.exploit_explore(
        scores, diverged, {"learning_rate": lr}, search.PBT(every=1, fraction=0.5), True, np.random.default_rng(0), {}
    )
    bottom = [2, 4, 5]  # the worst 3 of 6 in the ranking above
    assert sorted(i for i in range(6) if sources[i] != i) == sorted(bottom)
    for i in range(6):
        if i in bottom:
            assert sources[i] in (1, 3, 0)
            assert values["learning_rate"][i] in {np.float32(np.float64(lr[sources[i]]) * c) for c in (0.8, 1.2)}
        else:
            assert sources[i] == i and values["learning_rate"][i] == lr[i]
    # out of range (dropout 0.9 x 1.2 >= 1): the source's value is kept; resample=1 draws from the factor's list
    _, v = pbt.exploit_explore(
        [1.0, 0.0],
        [False] * 2,
        {"dropout_rate": np.array([0.9, 0.1], np.float32)},
        search.PBT(every=1, perturb=(1.2,)),
        True,
        np.random.default_rng(0),
        {},
    )
    assert v["dropout_rate"].tolist() == [np.float32(0.9)] * 2
    _, v = pbt.exploit_explore(
        [1.0, 0.0],
        [False] * 2,
        {"dropout_rate": np.array([0.9, 0.1], np.float32)},
        search.PBT(every=1, resample=1.0),
        True,
        np.random.default_rng(0),
        {"dropout_rate": [0.25]},
    )
    assert v["dropout_rate"].tolist() == [np.float32(0.9), np.float32(0.25)]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The PBT run twice (the second from the compilation cache), the first with every exploit's state
    before and after the copy recorded, and the XLA programs the copy compiled."""
    calls = []
    real = pbt.apply_copies

    def spy(state, sources, values):
        with runtime.CompileMeter() as meter:
            after = real(state, sources, values)
        calls.append((jax.device_get(state), np.array(sources), jax.device_get(after), meter.programs))
        return after

    out = tmp_path_factory.mktemp("pbt")
    exp = dataclasses.replace(BASE, search=PBT)
    mp = pytest.MonkeyPatch()
    mp.setattr(pbt, "apply_copies", spy)
    try:
        a = runner.run(exp, out_dir=out / "a", progress=False, plot=True, compile_workers=1)
    finally:
        mp.undo()
    b = runner.run(exp, out_dir=out / "b", progress=False, plot=False, compile_workers=1)
    return a, b, calls


def test_copied_state_equals_its_source_with_perturbed_hparams(two_runs) -> None:
    a, _, calls = two_runs
    assert len(calls) == 2  # exploits after epochs 1 and 2
    rows = _lineage(a.out_dir / "lineage.csv")
    # the copy (gathers, keys kept, hyperparameters set) is one compiled program: the second exploit compiles nothing
    assert calls[0][3] <= 1 and calls[1][3] == 0
    for epoch, (before, sources, after, _) in zip((1, 2), calls):
        assert sorted(sources.tolist()) != list(range(4))  # someone copied
        lr = np.asarray(after.hparams["learning_rate"])
        assert [np.float32(float(r["learning_rate"])) for r in rows if r["epoch"] == str(epoch)] == lr.tolist()
        for i, src in enumerate(sources):
            for name in ("params", "opt_state", "model_state", "diverged_epoch", "step", "first_objective", "epoch"):
                x, y = getattr(after, name), getattr(before, name)
                if name == "opt_state":  # all but the injected hyperparameters (checked below)
                    x, y = x._replace(hyperparams={}), y._replace(hyperparams={})
                lx, ly = jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y)
                assert len(lx) == len(ly) and (len(lx) > 0 or name == "model_state")  # an MLP has no model state
                for u, v in zip(lx, ly):
                    np.testing.assert_array_equal(u[i], v[src], err_msg=f"{name} of member {i} (source {src})")
            np.testing.assert_array_equal(after.key[i], before.key[i])  # each member keeps its own key
            old = np.asarray(before.hparams["learning_rate"])
            expected = {old[i]} if src == i else {np.float32(np.float64(old[src]) * c) for c in (0.8, 1.2)}
            assert lr[i] in expected
        # the optimizer reads the injected copy: it holds the new values too
        np.testing.assert_array_equal(np.asarray(after.opt_state.hyperparams["learning_rate"]), lr)


def _lineage(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_pbt_run_lineage_consistent_and_reproducible(two_runs) -> None:
    a, b, _ = two_runs
    for f in ("lineage.csv", "metrics.csv"):  # reruns: byte for byte
        assert (a.out_dir / f).read_bytes() == (b.out_dir / f).read_bytes(), f
    assert a.compiles == {"group0/init": 1, "group0/epoch": 1}  # the population keeps its size: no recompile
    assert (a.out_dir / "lineage.png").stat().st_size > 0
    manifest = results_io.check_complete(a.out_dir)
    assert manifest["search"]["groups"][0]["exploit_epochs"] == [1, 2]
    rows = _lineage(a.out_dir / "lineage.csv")
    metrics = report.read_metrics_csv(a.out_dir / "metrics.csv")
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
    summary = (a.out_dir / "summary.md").read_text()
    copied = next(r for r in rows if r["epoch"] == "1" and r["copied_from"])
    assert "## Population-based training" in summary and f"1 ← {copied['copied_from']}" in summary
    # where bit-identity holds: a member's rows equal the plain grid's (same programs, from the compilation
    # cache) up to its first copy, and entirely when it never copies (it is only ever a source)
    full = runner.run(BASE, progress=False, plot=False, compile_workers=1)
    first_copy = {
        m: min((int(r["epoch"]) for r in rows if r["member"] == m and r["copied_from"]), default=3) for m in members
    }
    assert sorted(first_copy.values()) == [1, 1, 2, 3]  # this lineage: one member never copies
    for arm in a.arms:
        cut = first_copy[f"{arm.name}/seed=0"]
        mine = [r for r in a.metric_rows if r["arm"] == arm.name]
        ref = [r for r in full.metric_rows if r["arm"] == arm.name]
        assert [r for r in mine if r["epoch"] <= cut] == [r for r in ref if r["epoch"] <= cut]
        if cut < 3:  # after its copy it is another run
            assert [r for r in mine if r["epoch"] == 3] != [r for r in ref if r["epoch"] == 3]
    assert manifest["search"]["groups"][0]["final_hparams"] == {
        m: {"learning_rate": float(lr[(2, m)])} for m in members
    }


def test_a_diverged_member_ranks_last_and_is_healthy_after_its_copy(two_runs) -> None:
    # after `two_runs` (requested for that: its programs are in the compilation cache), the same program
    # (learning rates are data); a learning rate of 1e4 diverges in epoch 1
    exp = dataclasses.replace(
        BASE,
        grid={"learning_rate": [1e4, 0.05, 0.1, 0.2]},
        samples=None,
        search=search.PBT(every=1, fraction=0.25, metric="val_loss"),
    )
    res = runner.run(exp, progress=False, plot=False, compile_workers=1)
    first = res.search[0]["exploits"][0]
    assert first["ranking"][-1] == "learning_rate=10000/seed=0"
    assert list(first["copies"]) == ["learning_rate=10000/seed=0"]
    diverged = {m["arm"]: m["diverged_epoch"] for m in res.member_rows}
    assert diverged["learning_rate=10000"] == -1  # un-frozen by the copy, trained on to the end
    assert np.isfinite(res.history("learning_rate=10000", "val_loss")[0, 2])
    assert not np.isfinite(res.history("learning_rate=10000", "train_loss")[0, 0])
