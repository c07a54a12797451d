"""Averaging reduces variance: how much less do ensembles vary from seed to seed than single networks?

32 seeds of the MNIST-1D MLP 40-256-256-10 (ReLU, He init, Adam lr 3e-3, batch 100, 20 epochs), without dropout and
with dropout 0.2 (one compiled program, 64 members). In each arm the seeds are cut
into G = 32 / k disjoint groups of k consecutive seeds (k = 4: 8 groups); each group is one ensemble (mean of its
members' softmax probabilities, `jtricks.regularize.ensemble_accuracy`). With ``a_g`` the ensemble accuracy of
group g and ``m_g`` the mean accuracy of its members:

* single-member std ``s_1`` over the 32 members and across-group std ``s_k`` of ``a_g`` over the G groups, each
  with its chi-square interval ``[sqrt((n - 1) s^2 / chi2_{1 - alpha/2}), sqrt((n - 1) s^2 / chi2_{alpha/2})]``;
  averaging k independent errors would give ``s_k ~ s_1 / sqrt(k)`` at most;
* the ensemble's gain ``a_g - m_g``, a paired t interval over the G groups (`jtricks.stats.paired_diff_ci`), and
  the mean ensemble accuracy with its t interval over the groups.

The ensembles need the final weights, so the table is computed when this file is run as a script:

    python experiments/ensemble_variance.py --out runs/ensemble_variance

which runs the experiment, writes the usual results folder and adds ``ensemble_variance.md`` to it.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="ensemble_variance",
    description="32 seeds of an MNIST-1D MLP 256-256, dropout {0, 0.2}, ensembles of 4 from disjoint seed groups",
    dataset="mnist1d",
    preprocess="standardize",
    model="mlp",
    model_kwargs={"widths": (256, 256)},
    optimizer="adam",
    hparams={"learning_rate": 3e-3},
    epochs=20,
    batch_size=100,
    grid={"dropout_rate": [0.0, 0.2]},
    seeds=32,
    metrics=("test_acc", "val_acc", "train_loss"),
)

#: Members per ensemble.
GROUP_SIZE = 4


def group_accuracies(logits: Any, labels: Any, k: int) -> tuple[Any, Any]:
    """``(a, m)``: for each of the ``G = M // k`` disjoint groups of ``k`` consecutive members of ``logits``
    (``(M, n, classes)``), the ensemble accuracy ``a_g`` and the mean member accuracy ``m_g``; the ``M - G k`` last
    members are left out. ``ValueError`` naming ``k`` unless ``1 <= k <= M // 2`` (two groups at least)."""
    import jax.numpy as jnp
    import numpy as np

    from jtricks import regularize

    members = int(logits.shape[0])
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= members // 2:
        raise ValueError(
            f"k (members per ensemble) must be an int in [1, {members // 2}] for {members} members, got {k!r}"
        )
    groups = members // k
    correct = np.asarray(jnp.argmax(logits, -1) == jnp.asarray(labels)[None], np.float64).mean(axis=1)
    ens = [float(regularize.ensemble_accuracy(logits[g * k : (g + 1) * k], labels)) for g in range(groups)]
    return np.array(ens), correct[: groups * k].reshape(groups, k).mean(axis=1)


def std_ci(values: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """Sample std (ddof 1) of ``values`` and its chi-square interval at ``confidence`` (normal data)."""
    import numpy as np
    from scipy import stats as sps

    x = np.asarray(values, np.float64)
    n, s = x.size, float(np.std(x, ddof=1))
    alpha = 1.0 - confidence
    q_hi, q_lo = sps.chi2.ppf(1 - alpha / 2, n - 1), sps.chi2.ppf(alpha / 2, n - 1)
    return s, math.sqrt((n - 1) * s * s / q_hi), math.sqrt((n - 1) * s * s / q_lo)


def variance_report(member_acc: Any, ens_acc: Any, group_member_acc: Any, k: int, confidence: float = 0.95) -> str:
    """The Markdown table of the module docstring: single members vs ensembles of ``k`` (``member_acc``: every
    member's test accuracy; ``ens_acc`` / ``group_member_acc``: :func:`group_accuracies`)."""
    from jtricks import stats

    s1, s1_lo, s1_hi = std_ci(member_acc, confidence)
    sk, sk_lo, sk_hi = std_ci(ens_acc, confidence)
    single, ens = stats.mean_ci(member_acc, confidence), stats.mean_ci(ens_acc, confidence)
    gain = stats.paired_diff_ci(ens_acc, group_member_acc, confidence)
    conf = f"{confidence * 100:g}%"
    return "\n".join(
        [
            f"| | n | mean test acc [{conf} CI] | std over seeds / groups [{conf} CI] |",
            "|---|---:|---:|---:|",
            f"| single member | {single.n} | {single.mean:.4f} [{single.lo:.4f}, {single.hi:.4f}] | "
            f"{s1:.4f} [{s1_lo:.4f}, {s1_hi:.4f}] |",
            f"| ensemble of {k} (disjoint seed groups) | {ens.n} | {ens.mean:.4f} [{ens.lo:.4f}, {ens.hi:.4f}] | "
            f"{sk:.4f} [{sk_lo:.4f}, {sk_hi:.4f}] |",
            "",
            f"Ensemble minus the mean of its own members, paired over the {gain.n} groups: {gain.diff:+.4f} "
            f"[{gain.lo:+.4f}, {gain.hi:+.4f}] (p {gain.p:.2g}). Std ratio ensemble / single: {sk / s1:.2f} "
            f"(1/sqrt({k}) = {1 / math.sqrt(k):.2f} for independent errors).",
            "",
        ]
    )


def ensemble_variance_report(result: Any, k: int = GROUP_SIZE) -> str:
    """:func:`variance_report` of every arm of the run ``result`` (a :class:`jtricks.runner.RunResult` of this
    experiment), one section per arm."""
    import numpy as np

    spec = importlib.util.spec_from_file_location("_overfitting", Path(__file__).with_name("overfitting.py"))
    overfitting = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(overfitting)  # type: ignore[union-attr]
    parts = []
    for arm in result.arms:
        logits, labels, _ = overfitting.member_test_logits(result, arm.name)
        member_acc = (np.argmax(np.asarray(logits), -1) == np.asarray(labels)[None]).mean(axis=1)
        ens, group_members = group_accuracies(logits, labels, k)
        parts += [f"## {arm.name}", "", variance_report(member_acc, ens, group_members, k)]
    return "\n".join(parts)


if __name__ == "__main__":
    import argparse
    import dataclasses

    from jtricks import runner

    p = argparse.ArgumentParser(description="run ensemble_variance and add the single vs ensemble variance table")
    p.add_argument("--out", default="runs/ensemble_variance")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--k", type=int, default=GROUP_SIZE)
    args = p.parse_args()
    exp = EXPERIMENT
    if args.seeds:
        exp = dataclasses.replace(exp, seeds=args.seeds)
    if args.epochs:
        exp = dataclasses.replace(exp, epochs=args.epochs)
    res = runner.run(exp, out_dir=args.out)
    text = f"# ensemble_variance: single members vs ensembles of {args.k}\n\n" + ensemble_variance_report(res, args.k)
    Path(args.out, "ensemble_variance.md").write_text(text)
    print(text)
