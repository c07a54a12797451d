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
from jtricks.engine import runtime

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`


BASE = search_toy()
HALVING = search.Halving(rungs=(1, 2), keep=0.5, metric="val_loss", repack="always")


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
    with pytest.raises(ValueError, match="`repack` must be one of 'auto', 'always', 'never'"):
        search.Halving(rungs=(1,), repack="sometimes")
    assert str(search.Halving(rungs=(1,), repack="never")) == str(search.Halving(rungs=(1,)))  # how, not what


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
    # buckets: the first population's size halved (padded: never one member per device) while the survivors fit
    assert [search.bucket_size(m, 16) for m in (16, 9, 8, 5, 4, 3, 2, 1)] == [16, 16, 8, 8, 4, 4, 2, 2]
    assert [search.bucket_size(m, 12) for m in (7, 6, 4, 3, 1)] == [12, 6, 6, 3, 2]
    assert search.bucket_size(3, 8, devices=4) == 8 and search.bucket_size(2, 16, devices=2) == 4
    # re-pack when the epochs saved (6 epochs of 1 s, half the population) outweigh the compile
    assert search.repack_pays(1.0, 2.9, 16, 8, 6) and not search.repack_pays(1.0, 3.0, 16, 8, 6)
    assert not search.repack_pays(0.35, 10.0, 16, 8, 6)  # a small MLP on a CPU: the compile dominates
    assert math.isnan(search.config_scores(np.array([1.0, 3.0, nan, 2.0]), [0, 0, 1, 1], 2)[1])


@pytest.fixture(scope="module")
def full_and_halved(tmp_path_factory: pytest.TempPathFactory) -> tuple[runner.RunResult, runner.RunResult]:
    full = runner.run(BASE, progress=False, plot=False, compile_workers=1)
    out = tmp_path_factory.mktemp("halving")
    halved = runner.run(
        dataclasses.replace(BASE, search=HALVING), out_dir=out, progress=False, plot=False, compile_workers=1
    )
    return full, halved


@pytest.fixture(scope="module")
def fixed_shape(full_and_halved) -> tuple[runner.RunResult, list[int]]:
    """The halving of ``full_and_halved`` with ``repack="never"``, and the XLA programs compiled by each gather
    of the population state (collecting the halted members at the rungs, the survivor at the end)."""
    programs = []
    real = search.gather

    def spy(tree, idx):
        with runtime.CompileMeter() as meter:
            out = real(tree, idx)
        if not isinstance(tree, dict):  # the state, not a history row (numpy)
            programs.append(meter.programs)
        return out

    mp = pytest.MonkeyPatch()
    mp.setattr(search, "gather", spy)
    try:
        res = runner.run(
            dataclasses.replace(BASE, search=dataclasses.replace(HALVING, repack="never")),
            progress=False,
            plot=False,
            compile_workers=1,
        )
    finally:
        mp.undo()
    return res, programs


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
    assert rec["members_per_epoch"] == [4, 2, 1]
    # re-packed into buckets: 4, then 2, and the survivor stays in the bucket of 2 (a device never runs one)
    assert rec["population_per_epoch"] == [4, 2, 2] and rec["repack"] == "always"
    assert (rec["member_epochs"], rec["member_epochs_full"]) == (7, 12)
    # one program per bucket
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


def test_fixed_shape_halving_is_one_program_and_the_same_numbers(full_and_halved, fixed_shape) -> None:
    full, halved = full_and_halved
    never, programs = fixed_shape
    rec = never.search[0]
    assert never.compiles == {"group0/init": 1, "group0/epoch": 1}  # the grid's programs, no other epoch program
    assert rec["population_per_epoch"] == [4, 4, 4] and rec["members_per_epoch"] == [4, 2, 1]
    assert [r["kept"] for r in rec["rungs"]] == [r["kept"] for r in halved.search[0]["rungs"]]
    assert rec["stop_epoch"] == halved.search[0]["stop_epoch"]
    assert programs == [0, 0, 0]  # collecting members reads the state on the host: it compiles nothing
    assert never.metric_rows == halved.metric_rows and never.member_rows == halved.member_rows
    for name, params in halved.final_states.items():  # the halted lanes ran on: their state is the one at the rung
        for x, y in zip(jax.tree_util.tree_leaves(never.final_states[name]), jax.tree_util.tree_leaves(params)):
            np.testing.assert_array_equal(x, y)
    for arm in never.arms:  # and their rows stop at the rung, equal to the full grid's
        assert _rows(never, arm.name) == [r for r in _rows(full, arm.name) if r[0] <= rec["stop_epoch"][arm.name]]


def test_halted_member_is_its_standalone_run_to_its_stop_epoch(fixed_shape) -> None:
    never, _ = fixed_shape
    rung = never.search[0]["rungs"][0]
    first = rung["halted"][0]
    lr = next(a.hparams["learning_rate"] for a in never.arms if a.name == first)
    alone = runner.run(
        dataclasses.replace(BASE, grid={"learning_rate": [lr]}, samples=None, epochs=rung["epoch"]),
        progress=False,
        plot=False,
        compile_workers=1,
    )
    assert alone.arms[0].name == first and never.search[0]["stop_epoch"][first] == rung["epoch"]
    assert _rows(alone, first) == _rows(never, first)
    leaves = lambda res: jax.tree_util.tree_leaves(res.final_states[f"{first}/seed=0"])  # noqa: E731
    assert len(leaves(alone)) == len(leaves(never)) > 0
    for x, y in zip(leaves(alone), leaves(never)):
        np.testing.assert_array_equal(x, y)


def test_halving_with_programs_compiled_ahead(full_and_halved) -> None:
    # compiled ahead for the first population (compile_workers=2); the re-packed buckets compile their own
    _, halved = full_and_halved
    ahead = runner.run(dataclasses.replace(BASE, search=HALVING), progress=False, plot=False, compile_workers=2)
    assert ahead.search[0]["population_per_epoch"] == [4, 2, 2]
    assert ahead.metric_rows == halved.metric_rows


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
