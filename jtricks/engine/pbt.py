"""Population-based training inside one compiled population (Jaderberg et al., 2017).

The population of a static group trains as usual; at the end of every ``PBT.every`` epochs (before the
last) the members are ranked by a validation metric and

* **exploit**: each of the bottom ``m = max(1, floor(n · fraction))`` members copies the whole
  :class:`jtricks.train.TrainState` (parameters, optimizer state, model state, averaging and early-stopping
  state, step counts, divergence flag) of a member drawn uniformly from the top ``m``; it keeps only its own
  PRNG key (its own data order and dropout noise from then on);
* **explore**: each explored hyperparameter ``h`` of a copied member becomes ``h_source · c`` with ``c``
  drawn uniformly from ``perturb`` (or, with probability ``resample``, a fresh draw from the factor's grid
  distribution or list); a value outside the hyperparameter's allowed range keeps the source's value.
  The value is written both into ``state.hparams`` and into the optimizer's injected hyperparameters
  (``opt_state.hyperparams``, :func:`jtricks.optim.build`), which is where the optimizer reads it.

The ranking is in the metric's direction, diverged or non-finite members last, ties to the lower member
index. The copy is ``x[sources]`` on every leaf of the state, on device, at the epoch boundary: the
population keeps its size, so the epoch program is never recompiled. All random choices come from
``numpy.random.default_rng([sample_seed, group, epoch])``, so a rerun repeats the same lineage. A member
that copies a healthy member is healthy again (its ``diverged_epoch`` is the source's, -1). A PBT
member is not a standalone run of any one configuration: its history is that of its slot (arm, seed),
whose parameters and hyperparameters change at the exploit epochs; ``lineage.csv`` records how.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jtricks import hparams as jhparams
from jtricks.engine import population as jpop
from jtricks.engine import search as jsearch

__all__ = [
    "rank_members",
    "exploit_explore",
    "apply_copies",
    "run_pbt",
    "write_lineage",
    "plot_lineage",
    "markdown",
    "LINEAGE_COLUMNS",
]

#: The fixed columns of ``lineage.csv``; one column per explored hyperparameter follows.
LINEAGE_COLUMNS = ("group", "epoch", "member", "copied_from", "score")


def rank_members(scores: Sequence[float], diverged: Sequence[bool], higher_is_better: bool) -> list[int]:
    """The member indices best first: by ``scores`` in the metric's direction; diverged or non-finite
    members last; ties to the lower index."""
    sign = -1.0 if higher_is_better else 1.0

    def key(i: int) -> tuple[int, float, int]:
        s = float(scores[i])
        return (1, 0.0, i) if diverged[i] or not math.isfinite(s) else (0, sign * s, i)

    return sorted(range(len(scores)), key=key)


def exploit_explore(
    scores: Sequence[float],
    diverged: Sequence[bool],
    current: Mapping[str, np.ndarray],
    pbt: jsearch.PBT,
    higher_is_better: bool,
    rng: np.random.Generator,
    distributions: Mapping[str, Any],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One exploit/explore step on the host: ``(sources, values)``.

    ``sources[i]`` is the member whose state member ``i`` takes (``i`` itself when it is not replaced);
    ``values[k]`` the float32 values of hyperparameter ``k`` afterwards. ``current[k]`` holds the values
    before; ``distributions[k]`` is what ``resample`` draws from (a :class:`jtricks.search.Distribution`, or
    a list of values; ``None``: perturb only). Random choices per replaced member, in index order: the
    source, then per hyperparameter ``u ~ U(0,1)`` (resample when ``u < resample``) and the ``perturb`` index.
    """
    n = len(scores)
    order = rank_members(scores, diverged, higher_is_better)
    m = max(1, math.floor(n * pbt.fraction)) if n >= 2 else 0
    top, bottom = order[:m], sorted(order[n - m :]) if m else []
    sources = np.arange(n)
    values = {k: np.asarray(v, dtype=np.float32).copy() for k, v in current.items()}
    for i in bottom:
        src = int(top[int(rng.integers(m))])
        sources[i] = src
        for k in current:
            u, j = float(rng.random()), int(rng.integers(len(pbt.perturb)))
            dist = distributions.get(k)
            if u < pbt.resample and dist is not None:
                v = dist.draw(rng, 1)[0] if jsearch.is_distribution(dist) else dist[int(rng.integers(len(dist)))]
                new = np.float32(v)
            else:
                new = np.float32(np.float64(current[k][src]) * pbt.perturb[j])
            spec = jhparams.REGISTRY.get(k)
            ok = np.isfinite(new) and (spec is None or spec.contains(float(new)))
            values[k][i] = new if ok else current[k][src]
    return sources, values


def _set_hparams(state: Any, columns: Mapping[str, jax.Array]) -> Any:
    """``state`` with ``state.hparams[k]`` (and ``opt_state.hyperparams[k]`` where the optimizer keeps a copy)
    replaced by the whole column ``columns[k]``."""
    hp = {k: columns[k].astype(v.dtype) if k in columns else v for k, v in state.hparams.items()}

    def put_opt(opt: Any) -> Any:
        if hasattr(opt, "inner_opt_state") and hasattr(opt, "_replace"):  # gradient accumulation (optax.MultiSteps)
            return opt._replace(inner_opt_state=put_opt(opt.inner_opt_state))
        if hasattr(opt, "hyperparams") and hasattr(opt, "_replace"):
            hyper = {k: columns[k].astype(v.dtype) if k in columns else v for k, v in opt.hyperparams.items()}
            return opt._replace(hyperparams=hyper)
        return opt

    return state._replace(hparams=hp, opt_state=put_opt(state.opt_state))


@jax.jit
def _copy(state: Any, index: np.ndarray, columns: Mapping[str, np.ndarray]) -> Any:
    """Every leaf of ``state`` gathered at ``index`` but the keys, the explored hyperparameters set to ``columns``:
    one compiled program per population shape, however many exploits run."""
    taken = jax.tree_util.tree_map(lambda x: x[index], state)
    return _set_hparams(taken._replace(key=state.key), columns)


def apply_copies(state: Any, sources: np.ndarray, values: Mapping[str, np.ndarray]) -> Any:
    """The population state after exploit/explore: every leaf gathered at ``sources`` (rows past
    ``len(sources)``, padding, keep theirs), each member's own ``key`` kept, the explored hyperparameters set
    (one compiled program, :func:`_copy`)."""
    size = int(state.step.shape[0])
    index = np.concatenate([np.asarray(sources, dtype=np.int32), np.arange(len(sources), size, dtype=np.int32)])
    columns = {}
    for k, v in values.items():
        column = np.asarray(state.hparams[k], dtype=np.float32).copy()  # padded rows keep theirs
        column[: len(v)] = v
        columns[k] = column
    return _copy(state, index, columns)


def _host(state: Any, names: Sequence[str], n: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(state.hparams[k])[:n].astype(np.float32) for k in names}


def run_pbt(
    members: Sequence[tuple[Any, int]],
    pbt: jsearch.PBT,
    programs: Any,
    inputs: Callable[[Sequence[tuple[Any, int]], int], tuple[Any, Any]],
    *,
    epochs: int,
    metric: str,
    higher_is_better: bool,
    explored: Sequence[str],
    distributions: Mapping[str, Any],
    seed: int,
    group: int = 0,
    devices: int = 1,
    place: Callable[[Any], Any] = lambda s: s,
    on_epoch: Callable[[int, Any, Mapping[str, np.ndarray], Sequence[int]], None] = lambda *a: None,
    collect: Callable[[Sequence[tuple[Any, int]], Any, list], None],
) -> dict[str, Any]:
    """Train ``members`` (``(arm, seed)`` pairs of one static group) with population-based training.

    Arguments as :func:`jtricks.search.run_halving`; ``explored`` names the perturbed hyperparameters,
    ``distributions`` what ``resample`` draws from, ``seed`` / ``group`` seed the random choices. Returns
    the record: ``exploit_epochs``, per exploit the ranking and the copies, ``final_hparams`` per member,
    the ``lineage`` rows (:data:`LINEAGE_COLUMNS` + the explored names; epoch 0: the initial values).
    """
    n = len(members)
    names = [f"{arm.name}/seed={s}" for arm, s in members]
    state = programs.init(*place(inputs(members, jpop.padded_size(n, devices))))
    current = _host(state, explored, n)
    lineage = [
        {
            "group": group,
            "epoch": 0,
            "member": names[i],
            "copied_from": "",
            "score": float("nan"),
            **{k: float(current[k][i]) for k in explored},
        }
        for i in range(n)
    ]
    record: dict[str, Any] = {
        "search": str(pbt),
        "metric": metric,
        "explored": list(explored),
        "exploit_epochs": list(pbt.exploit_epochs(epochs)),
        "exploits": [],
        "stop_epoch": {arm.name: epochs for arm, _ in members},
        "members_per_epoch": [n] * epochs,
        "population_per_epoch": [jpop.padded_size(n, devices)] * epochs,
        "member_epochs": n * epochs,
        "member_epochs_full": n * epochs,
    }
    history: list[dict[str, np.ndarray]] = []
    for epoch in range(1, epochs + 1):
        state, m = programs.run_epoch(state)
        history.append({k: np.asarray(v) for k, v in m.items()})
        on_epoch(epoch, state, history[-1], range(n))
        if epoch not in record["exploit_epochs"]:
            continue
        scores = history[-1][metric][:n].astype(np.float64)
        diverged = np.asarray(state.diverged_epoch)[:n] >= 0
        rng = np.random.default_rng([seed, group, epoch])
        sources, current = exploit_explore(scores, diverged, current, pbt, higher_is_better, rng, distributions)
        state = place(apply_copies(state, sources, current))
        copies = {names[i]: names[int(s)] for i, s in enumerate(sources) if int(s) != i}
        record["exploits"].append(
            {
                "epoch": epoch,
                "ranking": [names[i] for i in rank_members(scores, diverged, higher_is_better)],
                "copies": copies,
            }
        )
        lineage += [
            {
                "group": group,
                "epoch": epoch,
                "member": names[i],
                "copied_from": copies.get(names[i], ""),
                "score": float(scores[i]),
                **{k: float(current[k][i]) for k in explored},
            }
            for i in range(n)
        ]
    collect(members, state, history)
    record["final_hparams"] = {names[i]: {k: float(current[k][i]) for k in explored} for i in range(n)}
    record["lineage"] = lineage
    return record


def write_lineage(path: str | Path, rows: Sequence[Mapping[str, Any]], explored: Sequence[str]) -> None:
    """``lineage.csv``: one row per member and exploit epoch (epoch 0: the initial values) with the member
    it copied (empty: none), its score at that epoch and its hyperparameters after explore (exact float32
    values, shortest round-trip text)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([*LINEAGE_COLUMNS, *explored])
        for r in rows:
            score = "" if not math.isfinite(r["score"]) else repr(float(r["score"]))
            w.writerow(
                [r["group"], r["epoch"], r["member"], r["copied_from"], score, *(repr(float(r[k])) for k in explored)]
            )


def plot_lineage(
    path: str | Path,
    rows: Sequence[Mapping[str, Any]],
    explored: Sequence[str],
    *,
    epochs: int | None = None,
    title: str = "",
) -> None:
    """``lineage.png``: per explored hyperparameter, each member's value over the epochs (log scale when
    positive) up to ``epochs`` (default: the last exploit epoch); at an exploit epoch a copied member's old
    line ends (×) and a dashed edge joins its source's previous value to its new one."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    members = list(dict.fromkeys(r["member"] for r in rows))
    at = {(r["epoch"], r["member"]): r for r in rows}
    marks = sorted({r["epoch"] for r in rows})
    end = marks[-1] if epochs is None else max(marks[-1], epochs)
    colors = colormaps["tab20"]
    fig = Figure(figsize=(7, 3.2 * len(explored)))
    FigureCanvasAgg(fig)
    for p, k in enumerate(explored):
        ax = fig.add_subplot(len(explored), 1, p + 1)
        for mi, mem in enumerate(members):
            c = colors(mi % 20)
            for e0, e1 in zip(marks, marks[1:]):
                before, after = at[(e0, mem)][k], at[(e1, mem)]
                if after["copied_from"]:
                    ax.plot([e0, e1], [before, before], color=c, lw=1.2)
                    ax.plot([e1], [before], marker="x", color=c)
                    ax.plot([e0, e1], [at[(e0, after["copied_from"])][k], after[k]], color=c, ls="--", lw=0.9)
                else:
                    ax.plot([e0, e1], [before, after[k]], color=c, lw=1.2)
            final = at[(marks[-1], mem)][k]
            ax.plot([marks[-1], end], [final, final], color=c, lw=1.2)
            ax.plot([end], [final], marker="o", color=c, ms=3, label=mem if p == 0 else None)
        if all(r[k] > 0 for r in rows):
            ax.set_yscale("log")
        ax.set_ylabel(k)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch (exploit/explore at the end of it)")
        ax.grid(alpha=0.3)
    if len(members) <= 16:
        fig.axes[0].legend(fontsize=6, ncol=2, loc="best")
    fig.suptitle(title or "PBT lineage")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)


def markdown(records: Sequence[Mapping[str, Any]]) -> str:
    """The "Population-based training" section of ``summary.md``: per member its explored hyperparameters
    at the start and at the end, and its copies (``epoch ← source``). The summary's arm names are the
    members' starting values: a PBT member is its slot, not one configuration."""
    lines = [
        "## Population-based training",
        "",
        f"`{records[0]['search']}`, ranked by {records[0]['metric']}; arm names give each member's starting "
        "values, which change at its copies (`lineage.csv`, `lineage.png`).",
        "",
        "| member | start | end | copies (epoch ← member) |",
        "|---|---|---|---|",
    ]
    for rec in records:
        start = {r["member"]: r for r in rec["lineage"] if r["epoch"] == 0}
        for member, end in rec["final_hparams"].items():
            fmt = lambda d: ", ".join(f"{k}={d[k]:.6g}" for k in rec["explored"])  # noqa: E731
            copies = "; ".join(
                f"{e['epoch']} ← {e['copies'][member]}" for e in rec["exploits"] if member in e["copies"]
            )
            lines.append(f"| {member} | {fmt(start[member])} | {fmt(end)} | {copies or '-'} |")
    return "\n".join(lines) + "\n"
