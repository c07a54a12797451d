"""Adaptive seeds (jtricks.sequential) and the manifest's provenance, on a tiny registered data set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jtricks import data, experiment, provenance, report, runner, runtime, sequential, stats

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

N_IN = 12


def _toy(seed: int = 0) -> data.Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(360, N_IN)).astype(np.float32)
    w = rng.normal(size=(N_IN,)).astype(np.float32)
    y = np.digitize(x @ w, np.quantile(x @ w, [1 / 3, 2 / 3])).astype(np.int32)
    return data.arrays(x[:300], y[:300], x[300:], y[300:], num_classes=3, name="toy")


def _exp(**kw) -> experiment.Experiment:
    # the program (populations of max_members=2) is the one of tests/engine/test_byo.py's plain MLP run: one compile
    base = dict(
        name="seq",
        dataset="toy_sequential",
        n_val=60,
        model="mlp",
        model_kwargs={"widths": (16,)},
        optimizer="adam",
        epochs=2,
        batch_size=30,
        eval_batch_size=50,
        grid={"learning_rate": [0.001, 0.05]},
        seeds=2,
        max_members=2,
        metrics=("val_acc", "train_loss"),
    )
    return experiment.Experiment(**{**base, **kw})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    data.register_dataset("toy_sequential", _toy, overwrite=True)
    try:
        root = tmp_path_factory.mktemp("seq")
        seq, record = sequential.run_until_resolved(_exp(), 4, out_dir=root / "seq", progress=False, plot=False)
        direct = runner.run(_exp(seeds=4), out_dir=root / "direct", progress=False, plot=False, checkpoint=False)
        yield seq, record, direct
    finally:
        data.unregister_dataset("toy_sequential")


def test_batches_of_seeds_are_the_run_with_all_seeds(runs):
    seq, record, direct = runs
    # population-size independence: seeds 0-1 then 2-3 run apart give exactly the 4-seed run
    assert (seq.out_dir / "metrics.csv").read_bytes() == (direct.out_dir / "metrics.csv").read_bytes()
    assert (seq.out_dir / "members.csv").read_bytes() == (direct.out_dir / "members.csv").read_bytes()
    assert [look["seeds"] for look in record["looks"]] == [2, 4] and record["stopped_at"] == 4
    assert not record["looks"][0]["resolved"]  # at 2 of 4 seeds the exact O'Brien-Fleming level is 0.0056
    levels = sequential.spending([2, 4], 0.05, "obf-exact", family=1)  # one comparison
    assert [p["alpha"] for p in record["planned_looks"]] == levels and record["family"] == 1
    assert record["rule"] == "obf-exact" and levels[0] == pytest.approx(0.00557, rel=1e-2)
    manifest = json.loads((seq.out_dir / "manifest.json").read_text())
    assert manifest["sequential"] == json.loads(json.dumps(record)) and manifest["confidence"] == 1 - levels[-1]
    assert manifest["seeds"] == [0, 1, 2, 3]
    (arm,) = record["first_resolved_at"]
    last = record["looks"][-1]["comparisons"][arm]
    assert record["first_resolved_at"][arm] == (4 if last["verdict"] in ("better", "worse") else None)
    # each look's interval is the repeated confidence interval: the paired t interval at the look's level
    finals = {
        (r["arm"], r["seed"]): r["value"] for r in seq.metric_rows if r["metric"] == "val_acc" and r["epoch"] == 2
    }
    base = next(a for a in {a for a, _ in finals} if a != arm)
    for look in record["looks"]:
        seeds = range(look["seeds"])
        d = stats.paired_diff_ci([finals[arm, s] for s in seeds], [finals[base, s] for s in seeds], 1 - look["alpha"])
        c = look["comparisons"][arm]
        assert (c["diff"], c["lo"], c["hi"]) == pytest.approx((d.diff, d.lo, d.hi), rel=1e-12)
    summary_md = (seq.out_dir / "summary.md").read_text()
    assert summary_md.endswith((seq.out_dir / "sequential.md").read_text()) and "repeated CI" in summary_md
    # the folder re-renders byte for byte at the final look's level
    before = (seq.out_dir / "summary.csv").read_bytes(), (seq.out_dir / "summary.md").read_bytes()
    again = report.render(seq.out_dir, plot=False)
    assert ((seq.out_dir / "summary.csv").read_bytes(), (seq.out_dir / "summary.md").read_bytes()) == before
    assert again[0]["confidence"] == 1 - levels[-1]


def test_stops_at_the_first_look_where_everything_is_resolved(runs, monkeypatch):
    seq, record, _ = runs
    arm = next(iter(record["first_resolved_at"]))
    calls = []

    def resolved_look(rows, members, arm_dicts, exp, metric, alpha_j, directions):
        calls.append(alpha_j)
        return {
            "alpha": alpha_j,
            "comparisons": {arm: {"p_adjusted": 0.0, "test": "t", "verdict": "better"}},
            "resolved": True,
        }

    monkeypatch.setattr(sequential, "_look", resolved_look)
    res, rec = sequential.run_until_resolved(_exp(), 6, out_dir=None, progress=False, rule="bonferroni")
    assert calls == [0.05 / 3] and rec["stopped_at"] == 2 and rec["first_resolved_at"] == {arm: 2}
    assert sorted({r["seed"] for r in res.metric_rows}) == [0, 1]
    assert res.summary[0]["confidence"] == 1 - 0.05 / 3


def test_manifest_provenance(runs):
    _, _, direct = runs
    m = json.loads((direct.out_dir / "manifest.json").read_text())
    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert m["code"]["commit"] == head.stdout.strip() and isinstance(m["code"]["dirty"], bool)
    else:
        assert m["code"] is None
    # the command with no path outside the repository: the program's name, arguments relative to the repository
    assert m["command"]["argv"][0] == Path(sys.argv[0]).name and len(m["command"]["argv"]) == len(sys.argv)
    assert m["command"]["argv"] == provenance.command()["argv"]
    assert not any(a.startswith("/") for a in m["command"]["argv"]) and not m["command"]["cwd"].startswith("/")
    assert all(
        k == "XLA_FLAGS"
        or k.startswith(("JAX_", "XLA_"))
        or k in ("CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL", "ONEDNN_MAX_CPU_ISA")
        for k in m["environment"]
    )
    # set by the tests' conftest, as a folder name only
    assert m["environment"]["JAX_COMPILATION_CACHE_DIR"].startswith(".../jtricks-tests-xla-")
    # the machine and the numerics the numbers came from
    assert (
        m["machine"]["architecture"] and "cpu" in m["machine"] and m["numerics"]["mode"] == runtime.numerics_in_force()
    )
    hp = m["resolved"]["hparams"]
    assert set(hp) == {"learning_rate=0.001", "learning_rate=0.05"}
    adam = hp["learning_rate=0.05"]
    assert adam["learning_rate"] == 0.05 and (adam["b1"], adam["b2"]) == (0.9, 0.999) and "eps" in adam
    (group,) = m["resolved"]["groups"]
    assert group["dataset_kwargs"] == {"seed": 0}  # the generator's default seed, resolved
    assert group["model_kwargs"]["init"] == "he_normal" and group["model_kwargs"]["widths"] == [16]
    assert m["data"] and len(m["data"][0][1]) == 64  # sha256 of the prepared arrays


def test_provenance_helpers(tmp_path):
    from jtricks import provenance

    assert provenance.git_state(tmp_path) is None  # not a git checkout
    env = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false", "JAX_ENABLE_X64": "0", "HOME": "/root", "PATH": "/bin"}
    assert provenance.environment(env) == {"JAX_ENABLE_X64": "0", "XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}

    def loader(seed: int = 42, *, n: int = 10):
        return None

    assert provenance.call_arguments(loader, {"n": 3}) == {"seed": 42, "n": 3}
    assert provenance.call_arguments(loader, {"bad": 1}) is None


def test_an_equivalent_comparison_is_resolved_with_a_margin():
    """A look is resolved when every comparison is "better"/"worse" or, with an equivalence margin, "equivalent"."""
    rng = np.random.default_rng(4)
    seed_effect = rng.normal(0, 0.02, size=8)
    rows = [
        (arm, s, 1, "val_acc", 0.7 + seed_effect[s] + effect + rng.normal(0, 0.002))
        for arm, effect in (("base", 0.0), ("same", 0.0), ("up", 0.05))
        for s in range(8)
    ]
    arms = [{"arm": a, "factors": {}} for a in ("base", "same", "up")]
    looks = [
        sequential._look(rows, None, arms, experiment.Experiment(equivalence_margin=m), "val_acc", 0.05, {})
        for m in (None, 0.01)
    ]
    assert [c["verdict"] for c in looks[0]["comparisons"].values()] == ["n.s.", "better"]
    assert [c["verdict"] for c in looks[1]["comparisons"].values()] == ["equivalent", "better"]
    assert (looks[0]["resolved"], looks[1]["resolved"]) == (False, True)
