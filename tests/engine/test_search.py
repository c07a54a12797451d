"""Search inside one population: sampled factors (reproducible, in bounds, vmapped) and successive halving
(the right configurations kept, the population re-packed, survivors bit for bit their standalone runs)."""

from __future__ import annotations

import dataclasses
import json
import math

import jax
import numpy as np
import pytest
from support.experiments import search_toy

from jtricks import experiment, results_io, runner, search

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`


BASE = search_toy()
HALVING = search.Halving(rungs=(1, 2), keep=0.5, metric="val_loss")


# ---------------------------------------------------------------------------------------- sampling
def test_draws_reproducible_within_bounds_and_independent_per_factor() -> None:
    grid = {
        "learning_rate": search.loguniform(1e-4, 1e-1),
        "dropout_rate": search.uniform(0.0, 0.5),
        "optimizer": ["sgd", "adam"],
        "b1": search.choice([0.8, 0.9]),
    }
    a = search.grid_combos(grid, 500, 7)
    assert a == search.grid_combos(grid, 500, 7)  # same seed: same draws
    assert a != search.grid_combos(grid, 500, 8)  # another seed: other draws
    assert len(a) == 1000 and [c["optimizer"] for c in a[:500]] == ["sgd"] * 500
    assert [c["learning_rate"] for c in a[:500]] == [c["learning_rate"] for c in a[500:]]  # shared by list combos
    lr = np.array([c["learning_rate"] for c in a[:500]])
    p = np.array([c["dropout_rate"] for c in a[:500]])
    assert lr.min() >= 1e-4 and lr.max() <= 1e-1 and p.min() >= 0.0 and p.max() <= 0.5
    # log-uniform: each of the three decades holds about a third of the draws (binomial sd ~ 21)
    counts = np.histogram(np.log10(lr), bins=[-4, -3, -2, -1])[0]
    assert np.all(np.abs(counts - 500 / 3) < 5 * 21), counts
    assert set(c["b1"] for c in a) == {0.8, 0.9}
    # a factor's draws do not depend on the other factors
    alone = search.grid_combos({"learning_rate": search.loguniform(1e-4, 1e-1)}, 500, 7)
    assert [c["learning_rate"] for c in alone] == list(lr)
    # values rounded to 6 significant digits: the arm name is the exact value
    assert all(float(format(v, "g")) == v for v in lr)


def test_bad_distributions_and_samples_refused() -> None:
    with pytest.raises(ValueError, match="low` must be > 0"):
        search.loguniform(0.0, 1.0)
    with pytest.raises(ValueError, match="low < high"):
        search.uniform(1.0, 1.0)
    with pytest.raises(ValueError, match="non-empty list"):
        search.choice([])
    with pytest.raises(ValueError, match="'samples' must be a positive int"):
        experiment.validate(dataclasses.replace(BASE, samples=None))
    with pytest.raises(ValueError, match="no grid factor is a distribution"):
        experiment.validate(dataclasses.replace(BASE, grid={"learning_rate": [0.1]}))
    with pytest.raises(ValueError, match="numeric hyperparameters"):
        experiment.validate(dataclasses.replace(BASE, grid={"batch_size": search.uniform(8, 64)}))
    with pytest.raises(ValueError, match="before the last epoch"):
        experiment.validate(dataclasses.replace(BASE, search=search.Halving(rungs=(3,))))
    with pytest.raises(ValueError, match="not measured"):
        experiment.validate(dataclasses.replace(BASE, search=search.Halving(rungs=(1,), metric="val_r2")))
    with pytest.raises(ValueError, match="across"):
        experiment.validate(dataclasses.replace(BASE, search=search.Halving(rungs=(1,), across=("optimizer",))))
    with pytest.raises(ValueError, match="max_members"):
        experiment.validate(dataclasses.replace(BASE, search=HALVING, max_members=2))
    with pytest.raises(ValueError, match="keep"):
        search.Halving(rungs=(1,), keep=1.0)


def test_set_parses_distributions_into_sampled_factors() -> None:
    settings = experiment.parse_set(
        ["learning_rate=loguniform(1e-3, 1e-1)", "samples=3", "optimizer=choice(['sgd','adam'])"]
    )
    assert settings["learning_rate"] == search.LogUniform(1e-3, 1e-1)
    exp = experiment.with_settings(BASE, settings)
    arms = experiment.validate(exp)
    assert len(arms) == 3 and exp.grid["optimizer"] == search.Choice(("sgd", "adam"))
    assert all(1e-3 <= a.hparams["learning_rate"] <= 1e-1 for a in arms)
    assert (
        arms[0].name == f"learning_rate={arms[0].hparams['learning_rate']:g},optimizer={arms[0].experiment.optimizer}"
    )
    with pytest.raises(ValueError, match="takes 2 argument"):
        experiment.parse_set(["learning_rate=loguniform(1e-3)"])


# ----------------------------------------------------------------------------------------- halving
def test_rank_survivors_direction_divergence_ties_and_brackets() -> None:
    nan = float("nan")
    assert search.rank_survivors([0.5, 0.9, 0.7, 0.9], [0] * 4, 0.5, True) == [1, 3]
    assert search.rank_survivors([0.5, 0.9, 0.7, 0.9], [0] * 4, 0.5, False) == [0, 2]
    assert search.rank_survivors([nan, 0.1, 0.1, 0.3], [0] * 4, 0.5, True) == [
        1,
        3,
    ]  # diverged last, tie -> lower index
    assert search.rank_survivors([nan, nan, nan], [0] * 3, 0.5, True) == [0]  # at least one kept
    assert search.rank_survivors([1, 2, 3, 4, 5, 6], ["a", "a", "a", "b", "b", "b"], 0.5, True) == [2, 5]
    assert search.config_scores(np.array([1.0, 3.0, nan, 2.0]), [0, 0, 1, 1], 2)[0] == 2.0
    assert math.isnan(search.config_scores(np.array([1.0, 3.0, nan, 2.0]), [0, 0, 1, 1], 2)[1])


@pytest.fixture(scope="module")
def full_and_halved(tmp_path_factory: pytest.TempPathFactory) -> tuple[runner.RunResult, runner.RunResult]:
    full = runner.run(BASE, progress=False, plot=False, compile_workers=1)
    out = tmp_path_factory.mktemp("halving")
    halved = runner.run(
        dataclasses.replace(BASE, search=HALVING), out_dir=out, progress=False, plot=False, compile_workers=1
    )
    return full, halved


def test_sampled_factor_is_vmapped_data(full_and_halved: tuple[runner.RunResult, runner.RunResult]) -> None:
    full, _ = full_and_halved
    lrs = [a.hparams["learning_rate"] for a in full.arms]
    assert len(set(lrs)) == 4 and all(1e-3 <= v <= 1.0 for v in lrs)
    assert full.compiles == {"group0/init": 1, "group0/epoch": 1}


def _rows(res: runner.RunResult, arm: str) -> list[tuple]:
    return [(r["epoch"], r["metric"], r["value"]) for r in res.metric_rows if r["arm"] == arm]


def _expected_kept(full: runner.RunResult, alive: list[str], epoch: int) -> list[str]:
    """Independent reference: the lower half by val_loss at ``epoch`` (ties to the earlier arm)."""
    score = {a: full.history(a, "val_loss")[0, epoch - 1] for a in alive}
    order = sorted(alive, key=lambda a: (score[a], alive.index(a)))
    return [a for a in alive if a in order[: max(1, len(alive) // 2)]]


def test_halving_keeps_the_best_and_saves_the_compute(full_and_halved, tmp_path) -> None:
    full, halved = full_and_halved
    names = [a.name for a in full.arms]
    rec = halved.search[0]
    kept1 = _expected_kept(full, names, 1)
    kept2 = _expected_kept(full, kept1, 2)
    assert [r["kept"] for r in rec["rungs"]] == [kept1, kept2]
    assert rec["members_per_epoch"] == [4, 2, 1]  # the population is re-packed
    assert (rec["member_epochs"], rec["member_epochs_full"]) == (7, 12)
    # one program per population size: 4, then 2, then the survivor alone padded to 2 (a device never runs one)
    assert halved.compiles == {"group0/init": 1, "group0/epoch": 2}
    stop = {a: 1 if a not in kept1 else 2 if a not in kept2 else 3 for a in names}
    assert rec["stop_epoch"] == stop
    for a in names:  # every member's rows up to its stop epoch, equal bit for bit to the full grid's
        assert _rows(halved, a) == [r for r in _rows(full, a) if r[0] <= stop[a]]
    # the folder is complete for `jtricks report`, with the search record in the manifest
    manifest = results_io.check_complete(halved.out_dir)
    assert manifest["search"]["stop_epoch"] == stop and manifest["search"]["member_epochs"] == 7
    assert (
        json.loads((halved.out_dir / "arms.json").read_text())[0]["factors"]["learning_rate"]
        == full.arms[0].hparams["learning_rate"]
    )


def test_survivor_is_its_standalone_run(full_and_halved) -> None:
    _, halved = full_and_halved
    winner = halved.search[0]["rungs"][-1]["kept"][0]
    lr = next(a.hparams["learning_rate"] for a in halved.arms if a.name == winner)
    alone = runner.run(
        dataclasses.replace(BASE, grid={"learning_rate": [lr]}, samples=None),
        progress=False,
        plot=False,
        compile_workers=1,
    )
    assert alone.arms[0].name == winner
    assert _rows(alone, winner) == _rows(halved, winner)
    leaves = lambda res: jax.tree_util.tree_leaves(res.final_states[f"{winner}/seed=0"])  # noqa: E731
    assert len(leaves(alone)) == len(leaves(halved)) > 0
    for x, y in zip(leaves(alone), leaves(halved)):
        np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------------- tune, then ablate
def test_tune_then_ablate_tunes_each_arm_and_states_the_budget(tmp_path) -> None:
    from jtricks import report, tuning

    exp = dataclasses.replace(
        BASE,
        grid={"dropout_rate": [0.0, 0.3]},
        samples=None,
        seeds=2,  # population sizes 4 and 2, as above
        tune=tuning.Tune(
            factors={"learning_rate": search.loguniform(1e-3, 1.0)},
            samples=2,
            halving=search.Halving(rungs=(1,), keep=0.5),
            metric="val_loss",
        ),
    )
    # the engine runs one experiment; tuning, then comparing, is a study above it
    with pytest.raises(ValueError, match="jtricks.studies.run"):
        runner.run(exp, progress=False)
    res = tuning.run(exp, out_dir=tmp_path, progress=False, plot=False, compile_workers=1)
    manifest = json.loads((tmp_path / "tuning" / "manifest.json").read_text())
    assert manifest["seeds"] == [2]  # tuning seeds disjoint from the comparison's
    stop = manifest["search"]["stop_epoch"]
    rows = report.read_metrics_csv(tmp_path / "tuning" / "metrics.csv")
    final_loss = {r["arm"]: r["value"] for r in rows if r["metric"] == "val_loss" and r["epoch"] == 3}
    arms = json.loads((tmp_path / "tuning" / "arms.json").read_text())
    for rate, row in zip([0.0, 0.3], res.tuning):
        mine = [a for a in arms if a["factors"]["dropout_rate"] == rate]
        assert len(mine) == 2 and sorted(stop[a["arm"]] for a in mine) == [1, 3]  # halved within the arm
        best = next(a for a in mine if stop[a["arm"]] == 3)
        other = next(a for a in mine if stop[a["arm"]] == 1)
        assert (
            manifest["search"]["groups"][0]["rungs"][0]["scores"][best["arm"]]
            <= manifest["search"]["groups"][0]["rungs"][0]["scores"][other["arm"]]
        )
        assert final_loss[best["arm"]] == row["score"]
        assert row["tuned"] == {"learning_rate": best["factors"]["learning_rate"]}
        assert (row["configurations"], row["member_epochs"], row["member_epochs_full"]) == (2, 4, 6)
        # expected validation performance at epoch 1, the last one both configurations reached: the mean loss of
        # one configuration, and of the better of two draws (lower is better): 3/4 the lower one, 1/4 the higher
        at_1 = sorted(
            r["value"]
            for r in rows
            if r["metric"] == "val_loss" and r["epoch"] == 1 and r["arm"] in {a["arm"] for a in mine}
        )
        evp = row["expected_performance"]
        assert (evp["epoch"], evp["left_out"], evp["n"]) == (1, 0, [1, 2])
        assert evp["mean"] == pytest.approx([sum(at_1) / 2, 0.75 * at_1[0] + 0.25 * at_1[1]], rel=1e-12)
        assert evp["sd"][1] == pytest.approx(math.sqrt(3) / 4 * (at_1[1] - at_1[0]), rel=1e-9)
    # the comparison: the arms at their tuned values, on the experiment's seeds
    assert [a.name for a in res.arms] == ["dropout_rate=0", "dropout_rate=0.3"]
    assert [a.hparams["learning_rate"] for a in res.arms] == [r["tuned"]["learning_rate"] for r in res.tuning]
    assert json.loads((tmp_path / "manifest.json").read_text())["seeds"] == [0, 1]
    summary = (tmp_path / "summary.md").read_text()
    assert "## Tuning" in summary and "| dropout_rate=0.3 |" in summary and "| 2 | 4 (6) |" in summary
    assert "### Expected validation performance" in summary and "| n = 1 | n = 2 |" in summary
    results_io.check_complete(tmp_path)
    results_io.check_complete(tmp_path / "tuning")
