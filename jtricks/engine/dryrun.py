"""What a run would do, without doing it (``jtricks run NAME --dry-run``): the settings, the arms, the members and
their chunks, the programs each static group compiles, and an estimate of the device memory; nothing is loaded
(the built-in data sets' shapes are known: :func:`jtricks.data.known_shape`), compiled or written.

The memory estimate of a group, from shapes only (``jax.eval_shape`` of the members' initial state,
``jax.make_jaxpr`` of the model's forward pass; neither compiles nor runs anything):

* **data**: the train, validation and test splits on the device, float32 inputs, shared by the members;
* per member, **state**: parameters + optimizer state + the rest of the training state (batch-norm statistics,
  averaged weights, early stopping's best copy), as ``init_state`` builds it;
* per member, **gradients**: one more copy of the parameters;
* per member, **activations**: of the larger of the forward pass on one training batch and on one evaluation
  chunk (``eval_batch_size`` examples; the two never run at once), two ways: the outputs of its matrix products
  and convolutions (the layers' outputs, the least that reverse-mode differentiation keeps) and every
  intermediate value (XLA fuses most elementwise ones away, but also keeps buffers of its own);

``total = data + population size x (state + gradients + activations)``, given as the range of the two: an
estimate, not a bound (``python -m benchmarks.dry_run`` compares it with XLA's memory analysis of the compiled
programs). The compiled code is not counted. A data set whose shapes are not known without loading it
(a registered loader) gets no estimate, and the report says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtricks import data as jdata
from jtricks import losses as jlosses
from jtricks._core.keys import seed_key
from jtricks.engine import experiment as jexp
from jtricks.engine import grid as jgrid
from jtricks.engine import train as jtrain
from jtricks.engine.configure import build_config, build_model
from jtricks.engine.options import RunOptions
from jtricks.engine.plan import Group, Plan, plan
from jtricks.engine.programs import programs_of

__all__ = ["Memory", "GroupDryRun", "DryRun", "dry_run", "tree_bytes", "activation_bytes", "describe"]


@dataclasses.dataclass(frozen=True)
class Memory:
    """A group's device memory estimate in bytes (module docstring): ``low`` with the layers' outputs as the
    activations, ``high`` with every intermediate value."""

    data: int
    params: int
    opt_state: int
    other_state: int
    layer_outputs: int
    intermediates: int
    size: int

    def total(self, activations: int) -> int:
        """``data + size x (state + gradients + activations)``."""
        state = self.params + self.opt_state + self.other_state
        return self.data + self.size * (state + self.params + activations)

    @property
    def low(self) -> int:
        return self.total(self.layer_outputs)

    @property
    def high(self) -> int:
        return self.total(self.intermediates)


@dataclasses.dataclass(frozen=True)
class GroupDryRun:
    """One static group: its arms, members, chunks, programs, steps per epoch and memory (``None`` with
    ``why`` when it cannot be estimated without loading the data)."""

    group: Group
    mode: str
    programs: tuple[str, ...]
    steps_per_epoch: int | None
    memory: Memory | None
    why: str = ""


@dataclasses.dataclass(frozen=True)
class DryRun:
    """The plan of a run and what each group would build (:func:`dry_run`)."""

    plan: Plan
    groups: list[GroupDryRun]
    devices: int


def _nbytes(shape: Sequence[int], dtype: Any) -> int:
    """``prod(shape) x itemsize``; a typed PRNG key counts as its raw ``uint32[2]``."""
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:  # jax's extended dtypes (typed keys)
        itemsize = 8
    return math.prod(shape) * itemsize


def tree_bytes(tree: Any) -> int:
    """Bytes of every array (or ``ShapeDtypeStruct``) leaf of ``tree``: ``sum(prod(shape) x itemsize)``."""
    return int(sum(_nbytes(x.shape, x.dtype) for x in jax.tree_util.tree_leaves(tree)))


#: the primitives whose outputs are a layer's outputs (the least that backpropagation keeps)
LAYER_PRIMITIVES = frozenset({"dot_general", "conv_general_dilated"})


def activation_bytes(fn: Any, *args: Any) -> tuple[int, int]:
    """``(layers, every)``: bytes of the outputs of the matrix products and convolutions of ``fn(*args)`` (the
    layers' outputs), and of every intermediate value (the outputs of every equation of its jaxpr, nested jaxprs
    included), traced with ``jax.make_jaxpr`` on abstract ``args``: nothing is compiled or run."""
    closed = jax.make_jaxpr(fn)(*args)

    def count(jaxpr: Any) -> tuple[int, int]:
        layers = every = 0
        for eqn in jaxpr.eqns:
            subs = [p for p in eqn.params.values() if hasattr(p, "eqns") or hasattr(p, "jaxpr")]
            if subs:  # a call (pjit, custom_jvp, remat): its body's values, not its outputs twice
                for p in subs:
                    a, b = count(getattr(p, "jaxpr", p))
                    layers, every = layers + a, every + b
                continue
            size = sum(_nbytes(v.aval.shape, v.aval.dtype) for v in eqn.outvars)
            every += size
            layers += size if eqn.primitive.name in LAYER_PRIMITIVES else 0
        return layers, every

    return count(closed.jaxpr)


def _splits(exp: jexp.Experiment, shape: jdata.DatasetShape) -> tuple[int, int, int]:
    """(train, validation, test) examples after the validation split and ``n_train``, as the run would take them."""
    if shape.num_val:
        n_train, n_val = shape.num_train, shape.num_val
    else:
        n_train, n_val = shape.num_train - exp.n_val, exp.n_val
    if exp.n_train is not None:
        n_train = min(n_train, exp.n_train)
    return n_train, n_val, shape.num_test


def _group(g: Group) -> GroupDryRun:
    e0 = g.experiment
    shape = jdata.known_shape(e0.dataset, e0.dataset_kwargs)
    if shape is None:
        name = e0.dataset if isinstance(e0.dataset, str) else type(e0.dataset).__name__
        why = f"data set {name!r} has no shapes known without loading it (a registered loader)"
        return GroupDryRun(g, "?", (), None, None, why)
    loss = jlosses.get(e0.loss)
    n_train, n_val, n_test = _splits(e0, shape)
    outputs = shape.num_classes if shape.num_classes is not None else 1
    model = build_model(e0, outputs)
    config = build_config(e0, model, n_train, traced=jgrid.traced_hparams(a.hparams for a in g.arms))
    mode = jtrain.resolve_execution(config)
    key = jax.eval_shape(lambda: seed_key(0))
    hp = {k: jax.ShapeDtypeStruct((), jnp.float32) for k in config.hparam_names()}
    state = jax.eval_shape(lambda k, h: jtrain.init_state(config, k, h, shape.input_shape), key, hp)
    model_hp = {k: hp[k] for k in config.model_hparam_names() if k in hp}
    chunk = min(e0.eval_batch_size, n_val, n_test)  # evaluation runs in chunks of this many examples
    passes = [(e0.batch_size, True), (chunk, False)]  # a training batch, an evaluation chunk: never at once

    def forward(train: bool) -> Any:
        return lambda p, s, x, k, h: config.model.apply(p, s, x, key=k, train=train, hparams=h)

    counts = [
        activation_bytes(
            forward(train),
            state.params,
            state.model_state,
            jax.ShapeDtypeStruct((n, *shape.input_shape), jnp.float32),
            key,
            model_hp,
        )
        for n, train in passes
    ]
    layers, every = max(c[0] for c in counts), max(c[1] for c in counts)
    params, opt = tree_bytes(state.params), tree_bytes(state.opt_state)
    per_input = math.prod(shape.input_shape) * 4
    label = 4 * (1 if loss.targets != "real" else max(1, outputs))
    data = (n_train + n_val + n_test) * (per_input + label)
    memory = Memory(data, params, opt, tree_bytes(state) - params - opt, layers, every, g.size)
    return GroupDryRun(g, mode, programs_of(config, mode), max(1, n_train // e0.batch_size), memory)


def dry_run(exp: jexp.Experiment, options: RunOptions | None = None, **changes: Any) -> DryRun:
    """Plan ``exp`` (validated; :func:`jtricks.engine.plan.plan` with ``options`` / ``changes``) and estimate what
    each static group would build (module docstring); nothing is loaded, compiled or written."""
    the_plan = plan(exp, options, **changes)
    return DryRun(the_plan, [_group(g) for g in the_plan.groups], jax.local_device_count())


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _short(value: Any, width: int = 60) -> str:
    text = jexp.describe_object(value) if callable(value) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _settings(exp: jexp.Experiment) -> list[str]:
    """The resolved settings, one line per section (fields at their defaults left out)."""
    defaults = jexp.Experiment(name=exp.name)
    lines = []
    for section, fields in jexp.sections(exp).items():
        changed = {k: v for k, v in fields.items() if getattr(defaults, k, object()) != v or k in ("epochs", "seeds")}
        if changed:
            lines.append(f"  {section}: " + ", ".join(f"{k}={_short(v)}" for k, v in changed.items()))
    return lines


def describe(dr: DryRun, out: str | None = None) -> str:
    """The dry run as text: settings, arms, members and chunks, programs and memory per group, totals."""
    p, exp = dr.plan, dr.plan.experiment
    members = sum(len(c) for g in p.groups for c in g.chunks)
    lines = [
        f"{exp.name}: dry run (nothing loaded, compiled or written)" + (f"; results would go to {out}" if out else "")
    ]
    lines += ["settings:", *_settings(exp)]
    lines.append(
        f"arms ({len(p.arms)}): " + ", ".join(a.name for a in p.arms[:12]) + (" ..." if len(p.arms) > 12 else "")
    )
    lines.append(
        f"members: {len(p.arms)} arms x {len(p.seeds)} seeds = {members}, in {len(p.groups)} static group(s) "
        f"on {dr.devices} device(s)"
    )
    for gd in dr.groups:
        lines += _describe_group(gd, len(p.groups))
    known = [gd.memory for gd in dr.groups if gd.memory is not None]
    if known:
        lo, hi = max(m.low for m in known), max(m.high for m in known)
        lines.append(
            f"device memory: {_size(lo)} to {_size(hi)} at once (the largest group; groups run one after another)"
            + ("" if len(known) == len(dr.groups) else "; groups without an estimate not included")
        )
        if dr.devices > 1:
            per = [m.data + -(-m.size // dr.devices) * (m.low - m.data) // m.size for m in known]
            top = [m.data + -(-m.size // dr.devices) * (m.high - m.data) // m.size for m in known]
            lines.append(
                f"  per device ({dr.devices}; the members split, the data on each): {_size(max(per))} to "
                f"{_size(max(top))}"
            )
    lines.append(
        "estimated from shapes, nothing compiled (jax.eval_shape of the initial state, jax.make_jaxpr of the "
        "forward pass on a training batch and on an evaluation chunk): data + population x (params + optimizer "
        "+ other state + gradients + activations), the activations from the layers' outputs (low) to every "
        "intermediate value (high); an estimate, not a bound"
    )
    return "\n".join(lines)


def _describe_group(gd: GroupDryRun, n_groups: int) -> list[str]:
    g = gd.group
    sizes = [len(c) for c in g.chunks]
    padded = g.size * len(g.chunks) - sum(sizes)
    lines = [
        f"group {g.index + 1}/{n_groups}: {len(g.arms)} arm(s) ({', '.join(a.name for a in g.arms[:4])}"
        + (" ..." if len(g.arms) > 4 else "")
        + f"); {sum(sizes)} members in {len(g.chunks)} chunk(s) of population {g.size}"
        + (f" ({padded} padding copies)" if padded else ""),
    ]
    if gd.memory is None:
        lines.append(f"  programs and memory: not estimated: {gd.why}")
        return lines
    m = gd.memory
    epochs = g.experiment.epochs
    lines.append(
        f"  programs ({gd.mode} mode, compiled once for the group): {', '.join(gd.programs)}; "
        f"{gd.steps_per_epoch} steps/epoch x {epochs} epochs"
    )
    lines.append(
        f"  memory: data {_size(m.data)} + {m.size} x (params {_size(m.params)} + optimizer {_size(m.opt_state)}"
        f" + other state {_size(m.other_state)} + gradients {_size(m.params)} + activations"
        f" {_size(m.layer_outputs)} to {_size(m.intermediates)}) = {_size(m.low)} to {_size(m.high)}"
    )
    return lines
