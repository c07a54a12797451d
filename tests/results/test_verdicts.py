"""The numbers of docs/results.md's verdict table against the published results folders (tools/verdicts.py)."""

from __future__ import annotations

import functools
import importlib.util
import math
import re
from pathlib import Path

import pytest

from jtricks import stats

pytestmark = pytest.mark.slow  # compiles populations / runs whole experiments: left out of `-m "not slow"`

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("verdicts", ROOT / "tools" / "verdicts.py")
verdicts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(verdicts)  # type: ignore[union-attr]


#: Intervals of the GPU experiments' folders that hold no metrics.csv yet (a difference between two non-baseline arms).
GPU_FOLDERS_WITHOUT_METRICS = {("architectures", "−0.030 [−0.039, −0.022]")}


def _verdict_lines() -> list[str]:
    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    table = text.split("## Verdicts", 1)[1].split("\n## ", 1)[0]
    return [ln for ln in table.splitlines() if ln.startswith("| ") and "(results/" in ln]


@functools.cache
def _candidates(experiment: str) -> list[tuple[float, ...]]:
    out: list[tuple[float, ...]] = []
    for r in verdicts.rows():
        if r["experiment"] == experiment or r["experiment"].startswith(experiment + "_"):
            out.append((float(r["mean"]), float(r["ci_lo"]), float(r["ci_hi"])))
            out.append((float(r["diff"]), float(r["diff_lo"]), float(r["diff_hi"])))
    for folder in (ROOT / "docs" / "results").glob(experiment + "*"):
        out += verdicts.published_triples(folder) + verdicts.paired_triples(folder)
    return [t for t in out if all(math.isfinite(x) for x in t)]


def _rounds_to(text: str, value: float) -> bool:
    """The printed number is ``value`` rounded to the printed decimals (Python's correctly rounded formatting of the
    float, so 0.0014999 is +0.001, never +0.002), sign included."""
    dec = len(text.split(".")[1]) if "." in text else 0
    return verdicts.number(text) == verdicts.number(f"{value:.{dec}f}")


def _matches(printed: tuple[str, str, str], candidate: tuple[float, ...]) -> bool:
    """Each printed number is the candidate rounded to the printed decimals."""
    return all(_rounds_to(text, value) for text, value in zip(printed, candidate))


def test_every_interval_in_the_verdict_table_is_in_the_published_files():
    lines = _verdict_lines()
    assert len(lines) >= 10
    checked, unmatched = 0, set()
    for line in lines:
        experiment = re.search(r"\(results/([a-z0-9_]+)/", line).group(1)
        effect = line.split(" | ")[2].replace("**", "")
        cands = _candidates(experiment)
        for m in verdicts.TRIPLE.finditer(effect):
            if any(_matches(m.groups(), c) for c in cands):
                checked += 1
            else:
                unmatched.add((experiment, m.group(0)))
    # every quoted interval is a summary row, a published table or a paired difference recomputed from metrics.csv,
    # except in the GPU folders published before metrics.csv was (to be rerun on a GPU; docs/results.md says so)
    assert unmatched == GPU_FOLDERS_WITHOUT_METRICS
    assert checked >= 35


def test_verdicts_csv_is_the_published_summaries(tmp_path):
    out = verdicts.write(tmp_path / "verdicts.csv")
    assert out.read_bytes() == (ROOT / "docs" / "results" / "verdicts.csv").read_bytes()
    rows = verdicts.rows()
    r = next(
        r
        for r in rows
        if (r["experiment"], r["metric"], r["arm"]) == ("dropout_mnist1d", "test_acc", "dropout_rate=0.2")
    )
    # the summary's paired difference is the one recomputed from the published per-member rows
    cells = verdicts.final_values(ROOT / "docs" / "results" / "dropout_mnist1d")
    a, b = cells[("dropout_rate=0.2", "test_acc")], cells[(r["baseline"], "test_acc")]
    d = stats.paired_diff_ci([a[s] for s in sorted(a)], [b[s] for s in sorted(a)])
    assert math.isclose(float(r["diff"]), d.diff, rel_tol=1e-12) and math.isclose(
        float(r["diff_lo"]), d.lo, rel_tol=1e-12
    )
    assert r["verdict"] == "better" and r["adjust"] == "holm"


def test_report_rerenders_every_published_folder_byte_for_byte(tmp_path):
    """`jtricks report` on a copy of each published folder that holds its rows rewrites summary.md and
    summary.csv with exactly the published bytes."""
    import shutil

    from jtricks import report, results_io

    folders = [
        f for f in sorted((ROOT / "docs" / "results").iterdir()) if report.result_file(f, "metrics.csv").is_file()
    ]
    assert len(folders) >= 11
    for folder in folders:
        copy = tmp_path / folder.name
        shutil.copytree(folder, copy)
        results_io.check_complete(copy)
        report.render(copy, plot=False)
        for name in ("summary.md", "summary.csv"):
            assert (copy / name).read_bytes() == (folder / name).read_bytes(), f"{folder.name}/{name}"


def _summary_value(experiment: str, arm: str, column: str, metric: str = "test_acc") -> float:
    (r,) = [r for r in verdicts.rows() if (r["experiment"], r["arm"], r["metric"]) == (experiment, arm, metric)]
    return float(r[column])


def _old_summary_value(experiment: str, arm: str, column: str = "mean") -> float:
    import csv

    with (ROOT / "docs" / "results" / experiment / "summary.csv").open(encoding="utf-8") as f:
        (r,) = [r for r in csv.DictReader(f) if (r["arm"], r["metric"]) == (arm, "test_acc")]
    return float(r[column])


def _overfitting_holm() -> dict[str, float]:
    """Holm over the 8 test-accuracy comparisons with `none` (the averaged weights' accuracy for ema and swa)."""
    cells = verdicts.final_values(ROOT / "docs" / "results" / "overfitting")
    base = cells[("none", "test_acc")]
    arms = {a: "test_acc" for a in ("l2=1e-3", "l2=1e-2", "wd=0.1", "wd=1", "dropout=0.5", "early_stopping")}
    arms |= {"ema": "avg_test_acc", "swa": "avg_test_acc"}
    seeds = sorted(base)
    p = [stats.paired_diff_ci([cells[(a, m)][s] for s in seeds], [base[s] for s in seeds]).p for a, m in arms.items()]
    return dict(zip(arms, stats.adjust_pvalues(p, "holm")))


def _seed_range(experiment: str, arm: str) -> tuple[float, float]:
    values = verdicts.final_values(ROOT / "docs" / "results" / experiment)[(arm, "test_acc")].values()
    return min(values), max(values)


def test_single_numbers_of_results_md_at_their_stated_precision():
    """Numbers stated outside intervals: each phrase of docs/results.md, and the value it states, recomputed from the
    published files and rounded to the stated decimals."""
    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    holm = _overfitting_holm()
    glorot = _seed_range("init", "depth20,activation=relu,init=glorot_normal")
    adam = _summary_value("optimizers", "optimizer=adam,learning_rate=0.1", "mean")
    resnet = _old_summary_value("architectures", "resnet")
    num = r"([+−-]?[0-9]+\.[0-9]+)"
    stated = {
        rf"Holm over the experiment's 8 test-accuracy comparisons {num}, {num}": (holm["ema"], holm["swa"]),
        rf"Glorot's seeds spread {num}–{num}": glorot,
        rf"Adam falls to {num} \[": (adam,),
        rf"ResNet-20 \(272k params\) \*\*{num}\*\* \[": (resnet,),
        rf"after the notebook's 5 epochs at a constant rate: {num} \[": (resnet,),
        rf"ResNet-20 0\.831 > Inception {num};": (_old_summary_value("architectures_small", "inception"),),
        rf"it is {num} short": (0.92 - resnet,),
    }
    for pattern, values in stated.items():
        m = re.search(pattern, text)
        assert m, pattern
        for printed, value in zip(m.groups(), values):
            assert _rounds_to(printed, value), (pattern, printed, value)


def test_overfitting_equivalence_stated_in_results_md():
    """The TOST verdicts docs/results.md states for `overfitting`: the experiment file's margin applied to the
    published rows."""
    import json

    from jtricks import experiment as jexp
    from jtricks import report

    folder = ROOT / "docs" / "results" / "overfitting"
    margin = jexp.load_experiment(str(ROOT / "experiments" / "overfitting.py")).equivalence_margin
    rows = report.summarize(
        report.read_metrics_csv(report.result_file(folder, "metrics.csv")),
        report.read_members_csv(folder / "members.csv"),
        json.loads((folder / "arms.json").read_text(encoding="utf-8")),
        metrics=("test_acc",),
        equivalence_margin=margin,
    )
    verdict = {r["arm"]: r["verdict"] for r in rows}
    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert f"smallest effect of interest ±{margin['test_acc']:g} now declared" in text
    assert "Holm over 6 comparisons" in text and {r["eq_family"] for r in rows} == {6}
    assert [a for a, v in verdict.items() if v == "equivalent"] == ["l2=1e-3", "wd=0.1"]
    assert "L2 1e-3 and weight decay 0.1 are equivalent to none" in text
    for arm in ("wd=1", "dropout=0.5", "early_stopping", "l2=1e-2"):
        assert verdict[arm] == "not resolved", arm
    assert "weight decay 1, dropout, early stopping and L2 1e-2 are not resolved" in text


#: The compared arms of each experiment in docs/results.md's budget table (at the best learning rates where the
#: experiment sweeps them; every arm otherwise).
BUDGET_ARMS = {
    "scaling": [
        f"preprocess={p},learning_rate={lr}"
        for p, lr in [("raw", "1e-05")] + [(p, "0.01") for p in ("unit", "symmetric", "standardize")]
    ],
    "lr_decay": [
        "constant,learning_rate=0.1",
        "x0.98/epoch,learning_rate=0.3",
        "cosine,learning_rate=0.3",
        "step x0.9/epoch,learning_rate=0.3",
    ],
    "batchnorm": ["norm=None,learning_rate=0.1", "norm=batch,learning_rate=0.3"],
    "clipping": ["none,learning_rate=0.025", "clip=1,learning_rate=0.1", "clip=10,learning_rate=0.025"],
    "optimizers": [
        f"optimizer={o},learning_rate={lr}"
        for o, lr in [
            ("sgd", 1),
            ("momentum", 0.1),
            ("nesterov", 0.1),
            ("adagrad", 0.3),
            ("rmsprop", 0.01),
            ("adam", 0.01),
            ("normalized_sgd", 1),
        ]
    ],
}


def _budget_table() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    table = text.split("## Budgets", 1)[1].split("\n## ", 1)[0]
    rows = [ln.split(" | ") for ln in table.splitlines() if ln.startswith("| `")]
    return {re.match(r"\| `([a-z0-9_]+)`", r[0]).group(1): r for r in rows}


def test_budget_table_of_results_md_is_the_published_files():
    """Each current folder's row of the budget table: its epochs, the mean validation curves' best epochs, the
    members' median best epochs and how many are best at the last epoch, as the published files give them."""
    import csv

    from jtricks import report

    table = _budget_table()
    current = [e for e in table if report.result_file(ROOT / "docs" / "results" / e, "metrics.csv").is_file()]
    assert len(current) >= 9 and len(table) >= 13
    for experiment in current:
        folder = ROOT / "docs" / "results" / experiment
        with (folder / "summary.csv").open(encoding="utf-8") as f:
            val = {r["arm"]: r for r in csv.DictReader(f) if r["metric"] == "val_acc"}
        arms = BUDGET_ARMS.get(experiment, list(val))
        members = report.read_members_csv(folder / "members.csv")
        metric_rows = report.read_metrics_csv(report.result_file(folder, "metrics.csv"))
        budget = report.budgets(metric_rows, members)
        n = {a: sum(1 for m in members if m["arm"] == a and m["diverged_epoch"] < 0) for a in arms}
        row = table[experiment]
        epochs = max(r["epoch"] for r in metric_rows)
        assert row[1] == str(epochs), experiment
        curve = {val[a]["best_epoch"] for a in arms}
        assert (
            set(
                re.findall(
                    r"(?<![\d.×=])(\d+)(?![\d.]| arms)", re.sub(r"\(lr [\d.]+\)|rate [\d.]+:|θ = \d+|1-D", "", row[2])
                )
            )
            <= curve
        ), experiment
        medians = {f"{budget[a][0]:g}" for a in arms}
        stated = re.sub(r"\[[^\]]*\]|×[\d.]+|\d+/\d+", "", row[3])  # interval labels, ×0.98, counts
        assert set(re.findall(r"\d+(?:\.\d+)?", stated)) <= medians, experiment
        last = {round(budget[a][1] * n[a]) for a in arms}
        at_most = re.search(r"at most (\d+)/8", row[3])
        if at_most:
            assert int(at_most.group(1)) == max(last), experiment
        else:
            assert {int(k) for k in re.findall(r"(\d+)/8", row[3])} <= last, experiment
