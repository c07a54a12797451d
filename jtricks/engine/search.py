"""Search inside one compiled population: sampled factors, successive halving and the settings of
population-based training (:class:`PBT`, run by :mod:`jtricks.pbt`).

**Sampled factors.** A ``grid`` value may be a distribution instead of a list of values:

* :func:`loguniform` ``(low, high)``: ``exp(U(log low, log high))``, for scale parameters (learning rates);
* :func:`uniform` ``(low, high)``: ``U(low, high)``;
* :func:`choice` ``([v1, v2, ...])``: one of the values, each with probability ``1/k``.

With ``Experiment.samples = N`` the distribution factors are drawn ``N`` times *jointly* (``N``
configurations, random search), and the list factors are crossed with them (``lists × N``). Factor
``k``'s draws come from ``numpy.random.default_rng([sample_seed, stable_id(k)])``, so a run is
reproducible and adding a factor does not change another factor's draws. Numeric draws are rounded to
6 significant digits (the arm name shows the exact value) and are ordinary numeric hyperparameters:
vmapped data, no recompilation.

**Successive halving** (:class:`Halving`). At the end of each rung epoch the configurations (arms) of a
static group are ranked by a validation metric (the mean over their seeds at that epoch, in the metric's
direction; a configuration with a diverged or non-finite member ranks last; ties go to the earlier arm),
the top ``max(1, floor(n · keep))`` of every bracket continue and the others stop. The population runs at
a few fixed sizes (**buckets**: the first population's padded size ``P``, then ``padded(ceil(P/2))``,
``padded(ceil(P/4))``, ...); after a rung the survivors are re-packed (``x[idx]`` on every leaf of the
population state, one compiled gather) into the smallest bucket that holds them, when ``Halving.repack``
asks for it (``"always"``; ``"auto"``: when the measured epoch time saved over the remaining epochs exceeds
the measured compile time of one more epoch program; ``"never"``: one epoch program, the halted members'
lanes run on and their results are discarded). Every bucket compiles its epoch program once. Members never
interact, so a member's history is bit for bit its standalone run whatever the population it ran in (the
engine's population-size invariance).
References: Jamieson & Talwalkar 2016 (successive halving), Li et al. 2018 (Hyperband), Li et al. 2020
(ASHA).
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jtricks._core.keys import stable_id
from jtricks.engine import population as jpop
from jtricks.engine import runtime as jruntime

__all__ = [
    "Distribution",
    "LogUniform",
    "Uniform",
    "Choice",
    "loguniform",
    "uniform",
    "choice",
    "is_distribution",
    "parse_distribution",
    "grid_combos",
    "Halving",
    "REPACK",
    "PBT",
    "check_search",
    "rank_survivors",
    "config_scores",
    "gather",
    "bucket_size",
    "repack_pays",
    "run_halving",
]

_DIGITS = 6  # significant digits kept of a numeric draw


class Distribution:
    """A distribution of one factor's values (see :func:`loguniform`, :func:`uniform`, :func:`choice`)."""

    numeric: bool = True

    def draw(self, rng: np.random.Generator, n: int) -> list[Any]:
        """``n`` values drawn with ``rng``."""
        raise NotImplementedError


def _round(v: float, low: float, high: float) -> float:
    """``v`` to :data:`_DIGITS` significant digits, kept inside ``[low, high]``."""
    return min(max(float(f"{v:.{_DIGITS}g}"), low), high)


def _check_bounds(kind: str, low: Any, high: Any, positive: bool) -> tuple[float, float]:
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v):
            raise ValueError(f"{kind}: `{name}` must be a finite number, got {v!r}")
    if positive and low <= 0:
        raise ValueError(f"{kind}: `low` must be > 0 (a log scale), got {low!r}")
    if not low < high:
        raise ValueError(f"{kind}: needs low < high, got low={low!r}, high={high!r}")
    return float(low), float(high)


@dataclasses.dataclass(frozen=True)
class LogUniform(Distribution):
    """``exp(U(log low, log high))``; ``0 < low < high``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_bounds("loguniform", self.low, self.high, positive=True)

    def draw(self, rng: np.random.Generator, n: int) -> list[Any]:
        u = rng.uniform(math.log(self.low), math.log(self.high), size=n)
        return [_round(float(math.exp(x)), self.low, self.high) for x in u]

    def __str__(self) -> str:
        return f"loguniform({self.low:g}, {self.high:g})"


@dataclasses.dataclass(frozen=True)
class Uniform(Distribution):
    """``U(low, high)``; ``low < high``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_bounds("uniform", self.low, self.high, positive=False)

    def draw(self, rng: np.random.Generator, n: int) -> list[Any]:
        return [_round(float(x), self.low, self.high) for x in rng.uniform(self.low, self.high, size=n)]

    def __str__(self) -> str:
        return f"uniform({self.low:g}, {self.high:g})"


@dataclasses.dataclass(frozen=True)
class Choice(Distribution):
    """One of ``values`` (uniformly); any values a grid list could hold (static ones form static groups)."""

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Sequence) or not self.values:
            raise ValueError(f"choice: `values` must be a non-empty list, got {self.values!r}")
        object.__setattr__(self, "values", tuple(self.values))

    @property
    def numeric(self) -> bool:  # type: ignore[override]
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values)

    def draw(self, rng: np.random.Generator, n: int) -> list[Any]:
        return [self.values[int(i)] for i in rng.integers(0, len(self.values), size=n)]

    def __str__(self) -> str:
        return f"choice({list(self.values)!r})"


def loguniform(low: float, high: float) -> LogUniform:
    """A log-uniform factor on ``[low, high]`` (``0 < low < high``)."""
    return LogUniform(low, high)


def uniform(low: float, high: float) -> Uniform:
    """A uniform factor on ``[low, high]``."""
    return Uniform(low, high)


def choice(values: Sequence[Any]) -> Choice:
    """A factor drawn uniformly from ``values``."""
    return Choice(tuple(values) if isinstance(values, (list, tuple)) else values)  # type: ignore[arg-type]


def is_distribution(v: Any) -> bool:
    """Whether ``v`` is a sampled factor (:class:`Distribution`)."""
    return isinstance(v, Distribution)


_CALL = re.compile(r"^\s*(loguniform|uniform|choice)\s*\((.*)\)\s*$", re.S)


def parse_distribution(text: str) -> Distribution | None:
    """``"loguniform(1e-4, 1e-1)"`` / ``"uniform(0, 0.5)"`` / ``"choice([1, 2])"`` → the distribution;
    any other text → ``None``. The arguments are Python literals."""
    m = _CALL.match(text)
    if m is None:
        return None
    try:
        args = ast.literal_eval(f"({m.group(2)},)")
    except (ValueError, SyntaxError) as e:
        raise ValueError(
            f"cannot parse the arguments of {text!r}: give Python literals, e.g. loguniform(1e-4, 1e-1)"
        ) from e
    fn = {"loguniform": loguniform, "uniform": uniform, "choice": choice}[m.group(1)]
    expected = 1 if m.group(1) == "choice" else 2
    if len(args) != expected:
        raise ValueError(f"{m.group(1)} takes {expected} argument(s), got {text!r}")
    return fn(*args)


def grid_combos(grid: Mapping[str, Any], samples: int | None, seed: int) -> list[dict[str, Any]]:
    """The grid's configurations: the Cartesian product of the list factors, crossed with ``samples``
    joint draws of the distribution factors (list combinations outermost, in declaration order).

    Raises ``ValueError`` when the grid has distributions but ``samples`` is not a positive int, or when
    ``samples`` is given without any distribution.
    """
    dists = {k: v for k, v in grid.items() if is_distribution(v)}
    lists = {k: v for k, v in grid.items() if not is_distribution(v)}
    if not dists:
        if samples is not None:
            raise ValueError("'samples' is set but no grid factor is a distribution (loguniform, uniform, choice)")
        return [dict(zip(lists, combo)) for combo in itertools.product(*lists.values())]
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(
            f"grid factors {sorted(dists)} are distributions: 'samples' must be a positive int, got {samples!r}"
        )
    draws = {k: d.draw(np.random.default_rng([seed, stable_id(k)]), samples) for k, d in dists.items()}
    out = []
    for combo in itertools.product(*lists.values()):
        for i in range(samples):
            values = {**dict(zip(lists, combo)), **{k: draws[k][i] for k in dists}}
            out.append({k: values[k] for k in grid})  # declaration order
    return out


# ------------------------------------------------------------------------------------- halving
#: The re-packing policies of :class:`Halving` (how it runs; the numbers are the same under each).
REPACK: tuple[str, ...] = ("auto", "always", "never")


@dataclasses.dataclass(frozen=True)
class Halving:
    """Successive halving: at the end of each epoch in ``rungs`` keep the best ``keep`` fraction of the
    configurations of every bracket and stop the others.

    Attributes:
      rungs: the epochs (1-based, increasing, each before the last epoch) after which configurations are cut.
      keep: the fraction kept at each rung, in (0, 1): ``max(1, floor(n · keep))`` of ``n`` configurations.
      metric: the validation metric ranked (``None``: ``val_acc`` when measured, else the first metric's or
        ``val_loss``); its direction comes from :mod:`jtricks.metrics`.
      across: the factors whose values compete (``None``: every arm of a static group competes); arms
        that differ in any other factor are in separate brackets, e.g. ``across=("learning_rate",)``
        halves the learning rates of each optimizer separately.
      repack: when the survivors move into a smaller population (one of :data:`REPACK`): ``"always"`` when
        they fit a smaller bucket; ``"never"`` (one epoch program per group, no compute saved); ``"auto"``
        when ``epochs_left · epoch_s · (1 - new/size) > compile_s`` (:func:`repack_pays`, measured times).
        It changes where members run, never their numbers, so it is not part of the method's text (the
        manifest's ``search``).
    """

    rungs: tuple[int, ...]
    keep: float = 0.5
    metric: str | None = None
    across: tuple[str, ...] | None = None
    repack: str = "auto"

    def __post_init__(self) -> None:
        rungs = self.rungs
        if (
            isinstance(rungs, int)
            or not isinstance(rungs, Sequence)
            or not rungs
            or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in rungs)
            or list(rungs) != sorted(set(rungs))
        ):
            raise ValueError(f"Halving: `rungs` must be a non-empty increasing list of epochs >= 1, got {rungs!r}")
        object.__setattr__(self, "rungs", tuple(rungs))
        k = self.keep
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 < k < 1:
            raise ValueError(f"Halving: `keep` must be a fraction in (0, 1), got {k!r}")
        if self.metric is not None and (not isinstance(self.metric, str) or not self.metric.startswith("val_")):
            raise ValueError(f"Halving: `metric` must be None or a validation metric ('val_...'), got {self.metric!r}")
        if self.across is not None:
            if isinstance(self.across, str) or not all(isinstance(a, str) for a in self.across):
                raise ValueError(f"Halving: `across` must be None or a list of factor names, got {self.across!r}")
            object.__setattr__(self, "across", tuple(self.across))
        if self.repack not in REPACK:
            raise ValueError(f"Halving: `repack` must be one of {', '.join(map(repr, REPACK))}, got {self.repack!r}")

    def __str__(self) -> str:
        return f"Halving(rungs={list(self.rungs)}, keep={self.keep:g}, metric={self.metric!r}, across={self.across!r})"

    def bracket(self, factors: Mapping[str, Any]) -> tuple:
        """The bracket of an arm with ``factors``: its values of the factors that do not compete."""
        if self.across is None:
            return ()
        return tuple(sorted((k, repr(v)) for k, v in factors.items() if k not in self.across))


@dataclasses.dataclass(frozen=True)
class PBT:
    """Population-based training (Jaderberg et al., 2017): at the end of every ``every`` epochs the members
    are ranked by a validation metric, the bottom ``fraction`` copy the whole training state of members drawn
    from the top ``fraction`` (exploit) and multiply each explored hyperparameter by one of ``perturb``, or
    redraw it from its factor's distribution with probability ``resample`` (explore).

    Attributes:
      every: the exploit/explore interval in epochs (at epochs ``every, 2·every, ...`` before the last).
      fraction: the fraction of members replaced and copied from, in (0, 0.5]: ``max(1, floor(n · fraction))``.
      metric: the validation metric ranked (``None``: as :class:`Halving`); direction from :mod:`jtricks.metrics`.
      perturb: the factors a copied hyperparameter is multiplied by (one drawn uniformly per value).
      resample: the probability, per copied member and hyperparameter, of redrawing it from the grid's
        distribution (a list factor: one of its values) instead of perturbing it.
      factors: the numeric hyperparameters explored (``None``: the grid's numeric factors).
    """

    every: int
    fraction: float = 0.25
    metric: str | None = None
    perturb: tuple[float, ...] = (0.8, 1.2)
    resample: float = 0.0
    factors: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"PBT: `every` must be an int >= 1 (epochs), got {self.every!r}")
        f = self.fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 0.5:
            raise ValueError(f"PBT: `fraction` must be a fraction in (0, 0.5], got {f!r}")
        p = self.perturb
        if (
            isinstance(p, (str, bytes))
            or not isinstance(p, Sequence)
            or not p
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0 for v in p)
        ):
            raise ValueError(f"PBT: `perturb` must be a non-empty list of positive numbers, got {p!r}")
        object.__setattr__(self, "perturb", tuple(float(v) for v in p))
        r = self.resample
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r <= 1:
            raise ValueError(f"PBT: `resample` must be a probability in [0, 1], got {r!r}")
        if self.metric is not None and (not isinstance(self.metric, str) or not self.metric.startswith("val_")):
            raise ValueError(f"PBT: `metric` must be None or a validation metric ('val_...'), got {self.metric!r}")
        if self.factors is not None:
            if (
                isinstance(self.factors, str)
                or not isinstance(self.factors, Sequence)
                or not self.factors
                or not all(isinstance(a, str) for a in self.factors)
            ):
                raise ValueError(
                    f"PBT: `factors` must be None or a non-empty list of hyperparameter names, got {self.factors!r}"
                )
            object.__setattr__(self, "factors", tuple(self.factors))

    def __str__(self) -> str:
        return (
            f"PBT(every={self.every}, fraction={self.fraction:g}, metric={self.metric!r}, "
            f"perturb={list(self.perturb)}, resample={self.resample:g}, factors={self.factors!r})"
        )

    def exploit_epochs(self, epochs: int) -> tuple[int, ...]:
        """The epochs (1-based) after which members exploit and explore: multiples of ``every`` before ``epochs``."""
        return tuple(range(self.every, epochs, self.every))

    def explored(self, grid: Mapping[str, Any], hparam_names: Sequence[str]) -> tuple[str, ...]:
        """The explored hyperparameters: ``factors``, else the grid factors that are numeric hyperparameters."""
        return self.factors if self.factors is not None else tuple(k for k in grid if k in hparam_names)


def check_search(
    search: Any,
    *,
    epochs: int,
    max_members: int | None,
    grid_keys: Sequence[str],
    measured: frozenset[str],
    hparam_names: frozenset[str] = frozenset(),
) -> None:
    """``Experiment.search``: ``None``, a :class:`Halving` whose rungs lie before the last epoch, whose
    metric is measured and whose ``across`` names grid factors, or a :class:`PBT` with an exploit epoch
    before the last whose explored factors are numeric hyperparameters of every arm; the group runs as one
    population."""
    if search is None:
        return
    if not isinstance(search, (Halving, PBT)):
        raise TypeError(
            f"'search' must be None, jtricks.search.Halving(...) or jtricks.search.PBT(...), got {search!r}"
        )
    if search.metric is not None and search.metric not in measured:
        raise ValueError(
            f"{type(search).__name__} metric {search.metric!r} is not measured; validation metrics: "
            f"{sorted(m for m in measured if m.startswith('val_'))}"
        )
    if max_members is not None:
        raise ValueError(
            "'max_members' cannot be combined with 'search': successive halving and PBT run each "
            "static group as one population (set max_members=None)"
        )
    if isinstance(search, PBT):
        if not search.exploit_epochs(epochs):
            raise ValueError(f"PBT every={search.every} must be smaller than the number of epochs ({epochs})")
        explored = search.explored(list(grid_keys), sorted(hparam_names))
        bad = sorted(set(explored) - set(hparam_names))
        if not explored or bad:
            raise ValueError(
                "PBT explores numeric hyperparameters of every arm; "
                f"`factors` {bad or '(none: no numeric grid factor)'} "
                f"are not; the arms' numeric hyperparameters: {sorted(hparam_names)}"
            )
        return
    if search.rungs[-1] >= epochs:
        raise ValueError(f"Halving rungs {list(search.rungs)} must lie before the last epoch ({epochs})")
    unknown = sorted(set(search.across or ()) - set(grid_keys))
    if unknown:
        raise ValueError(f"Halving `across` names {unknown}, not grid factors; the grid has {list(grid_keys)}")


def rank_survivors(scores: Sequence[float], brackets: Sequence[Any], keep: float, higher_is_better: bool) -> list[int]:
    """The indices of the configurations that continue, ascending.

    ``scores[j]`` is configuration ``j``'s score (NaN: diverged, ranks last), ``brackets[j]`` its bracket;
    in each bracket of ``n`` configurations the best ``max(1, floor(n · keep))`` are kept, ties going to
    the lower index.
    """
    kept: list[int] = []
    for b in dict.fromkeys(brackets):
        idx = [j for j, bj in enumerate(brackets) if bj == b]
        sign = -1.0 if higher_is_better else 1.0

        def key(j: int) -> tuple[int, float, int]:
            s = float(scores[j])
            return (0, sign * s, j) if math.isfinite(s) else (1, 0.0, j)

        n_keep = max(1, math.floor(len(idx) * keep))
        kept += sorted(idx, key=key)[:n_keep]
    return sorted(kept)


def config_scores(values: np.ndarray, member_config: Sequence[int], n_configs: int) -> list[float]:
    """Each configuration's score: the mean of its members' ``values`` (NaN when any is not finite)."""
    out = []
    for j in range(n_configs):
        v = np.asarray([values[i] for i, c in enumerate(member_config) if c == j], dtype=np.float64)
        out.append(float(v.mean()) if v.size and np.all(np.isfinite(v)) else float("nan"))
    return out


@jax.jit
def _take(leaves: list[jax.Array], index: jax.Array) -> list[jax.Array]:
    return [x[index] for x in leaves]


def gather(tree: Any, idx: Sequence[int]) -> Any:
    """Every leaf's rows ``idx`` along the leading (member) axis: the device leaves in one compiled program
    (one per tree structure and shapes, however often it runs), the host leaves with numpy."""
    rows = np.asarray(idx, dtype=np.int32)
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    device = [i for i, x in enumerate(leaves) if isinstance(x, jax.Array)]
    out = [x if isinstance(x, jax.Array) else np.asarray(x)[rows] for x in leaves]
    if device:
        for i, x in zip(device, _take([leaves[i] for i in device], rows)):
            out[i] = x
    return jax.tree_util.tree_unflatten(treedef, out)


def bucket_size(members: int, size: int, devices: int = 1) -> int:
    """The smallest population bucket that holds ``members``, starting from a population of ``size``:
    ``size``, ``padded(ceil(size/2))``, ``padded(ceil(size/4))``, ... (:func:`jtricks.population.padded_size`).

    >>> bucket_size(8, 16), bucket_size(5, 16), bucket_size(1, 16), bucket_size(7, 12)
    (8, 8, 2, 12)
    """
    while True:
        half = jpop.padded_size(-(-size // 2), devices)
        if half >= size or half < members:
            return size
        size = half


def repack_pays(epoch_s: float, compile_s: float, size: int, new_size: int, epochs_left: int) -> bool:
    """Whether moving a population of ``size`` into one of ``new_size`` saves time: the epoch time saved,
    ``epochs_left · epoch_s · (1 - new_size/size)`` (epoch time taken as proportional to the population),
    exceeds ``compile_s``, the cost of compiling the smaller population's epoch program."""
    return epochs_left * epoch_s * (1.0 - new_size / size) > compile_s


class _EpochClock:
    """Runs the epochs of a population and measures them: the compile seconds of an epoch program (trace,
    lowering, XLA; the largest seen, or ``compile_s`` given) and per population size the fastest epoch
    without its compile time, for :func:`repack_pays`."""

    def __init__(self, compile_s: float | None) -> None:
        self.compile_s = float(compile_s or 0.0)
        self.epoch_s: dict[int, float] = {}

    def run(self, programs: Any, state: Any, size: int) -> tuple[Any, dict[str, np.ndarray]]:
        with jruntime.CompileMeter() as meter:
            t0 = time.perf_counter()
            state, m = programs.run_epoch(state)
            m = {k: np.asarray(v) for k, v in m.items()}
            wall = time.perf_counter() - t0
        compiled = meter.xla_s + meter.lowering_s
        self.compile_s = max(self.compile_s, compiled)
        self.epoch_s[size] = min(self.epoch_s.get(size, math.inf), max(wall - compiled, 0.0))
        return state, m

    def repack(self, policy: str, size: int, new_size: int, epochs_left: int) -> bool:
        if new_size >= size or policy == "never":
            return False
        return policy == "always" or repack_pays(self.epoch_s[size], self.compile_s, size, new_size, epochs_left)


def _rung(
    search: Halving,
    arms: Mapping[str, Any],
    alive: Sequence[tuple[Any, int]],
    values: np.ndarray,
    epoch: int,
    higher_is_better: bool,
) -> tuple[list[int], dict[str, Any]]:
    """One rung: the indices (into ``alive``) of the surviving members and the rung's record; ``values`` holds
    the ranked metric of the ``alive`` members."""
    names = list(dict.fromkeys(arm.name for arm, _ in alive))
    member_config = [names.index(arm.name) for arm, _ in alive]
    scores = config_scores(values, member_config, len(names))
    brackets = [search.bracket(arms[n].factors) for n in names]
    kept = set(rank_survivors(scores, brackets, search.keep, higher_is_better))
    rung = {
        "epoch": epoch,
        "scores": dict(zip(names, scores)),
        "kept": [names[j] for j in sorted(kept)],
        "halted": [n for j, n in enumerate(names) if j not in kept],
    }
    return [i for i, c in enumerate(member_config) if c in kept], rung


def _repacked(state: Any, history: list[dict[str, np.ndarray]], rows: Sequence[int], size: int) -> tuple[Any, list]:
    """The population's ``rows`` padded with copies of the first to ``size`` (on device: one compiled gather)."""
    idx = list(rows) + [rows[0]] * (size - len(rows))
    return gather(state, idx), [gather(h, idx) for h in history]


def _on_host(state: Any, history: list[dict[str, np.ndarray]], rows: Sequence[int]) -> tuple[Any, list]:
    """The population's ``rows`` on the host, what collecting members reads (one transfer, nothing compiled)."""
    return gather(jax.device_get(state), rows), [gather(h, rows) for h in history]


def run_halving(
    members: Sequence[tuple[Any, int]],
    search: Halving,
    programs: Any,
    inputs: Callable[[Sequence[tuple[Any, int]], int], tuple[Any, Any]],
    *,
    epochs: int,
    metric: str,
    higher_is_better: bool,
    devices: int = 1,
    place: Callable[[Any], Any] = lambda s: s,
    on_epoch: Callable[[int, Any, Mapping[str, np.ndarray], Sequence[int]], None] = lambda *a: None,
    collect: Callable[[Sequence[tuple[Any, int]], Any, list], None],
    compile_s: float | None = None,
) -> dict[str, Any]:
    """Train ``members`` (``(arm, seed)`` pairs of one static group) with successive halving.

    ``inputs(members, size)`` gives the population's keys and hyperparameters (padded to ``size``),
    ``programs`` its :class:`jtricks.programs.GroupPrograms`; populations are padded with copies of the first
    member to :func:`jtricks.population.padded_size` for ``devices`` devices and re-packed into buckets
    (:func:`bucket_size`) as ``search.repack`` says, ``place`` puts a re-packed state on the devices.
    ``on_epoch(epoch, state, metrics, rows)`` sees each epoch with the rows of the members still training;
    ``collect(members, state, history)`` receives every member once (its rows first): the halted ones at
    their rung, the survivors at the end. ``compile_s``: the epoch program's compile time when it was
    compiled ahead. Returns the record: per rung the scores, the kept and halted arms; each arm's
    ``stop_epoch``; ``members_per_epoch`` (training) and ``population_per_epoch`` (computed, padding and
    halted lanes included); ``member_epochs`` (run) and ``member_epochs_full`` (what the full grid would run).
    """
    arms = {arm.name: arm for arm, _ in members}
    alive, rows = list(members), list(range(len(members)))
    size = jpop.padded_size(len(alive), devices)
    state = programs.init(*place(inputs(alive, size)))
    clock = _EpochClock(compile_s)
    history: list[dict[str, np.ndarray]] = []
    record: dict[str, Any] = {
        "search": str(search),
        "repack": search.repack,
        "metric": metric,
        "rungs": [],
        "stop_epoch": {},
        "members_per_epoch": [],
        "population_per_epoch": [],
        "member_epochs_full": len(members) * epochs,
    }
    for epoch in range(1, epochs + 1):
        state, m = clock.run(programs, state, size)
        history.append(m)
        record["members_per_epoch"].append(len(alive))
        record["population_per_epoch"].append(size)
        on_epoch(epoch, state, m, rows)
        if epoch not in search.rungs:
            continue
        keep, rung = _rung(search, arms, alive, m[metric][rows], epoch, higher_is_better)
        record["rungs"].append(rung)
        record["stop_epoch"].update({n: epoch for n in rung["halted"]})
        drop = [i for i in range(len(alive)) if i not in set(keep)]
        if drop:
            collect([alive[i] for i in drop], *_on_host(state, history, [rows[i] for i in drop]))
        alive, rows = [alive[i] for i in keep], [rows[i] for i in keep]
        new_size = bucket_size(len(alive), size, devices)
        if clock.repack(search.repack, size, new_size, epochs - epoch):
            state, history = _repacked(state, history, rows, new_size)
            state, rows, size = place(state), list(range(len(alive))), new_size
    collect(alive, *_on_host(state, history, rows))
    record["stop_epoch"].update({arm.name: epochs for arm, _ in alive})
    record["member_epochs"] = int(sum(record["members_per_epoch"]))
    return record


def manifest_section(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``search`` section of ``manifest.json`` from the groups' records: ``stop_epoch`` (arm → the
    last epoch it ran), ``member_epochs`` (run) and ``member_epochs_full`` (the full grid's), ``groups``."""
    return {
        "method": records[0]["search"],
        "stop_epoch": {k: v for r in records for k, v in r["stop_epoch"].items()},
        "member_epochs": sum(int(r["member_epochs"]) for r in records),
        "member_epochs_full": sum(int(r["member_epochs_full"]) for r in records),
        "groups": [{k: v for k, v in r.items() if k != "lineage"} for r in records],  # lineage: lineage.csv
    }
