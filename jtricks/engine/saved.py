"""Trained models on disk: every member's parameters saved with orbax, and :func:`load` to get one back.

A run with an output folder (and ``save_models=True``, the default; CLI ``--no-save-models`` skips it)
writes ``models/`` in the results folder:

* ``models/group<g>_chunk<c>/`` — one orbax checkpoint per population chunk, written when the chunk
  finishes: its real members' arrays stacked on a leading member axis (padding copies left out), as
  ``{part: {"0": leaf 0, "1": leaf 1, ...}}`` in ``jax.tree_util.tree_leaves`` order, for the parts
  ``params`` (final; with early stopping the restored best once a member stopped), ``model_state`` (batch-norm
  running statistics), ``avg_params`` (with ``averaging="ema"``/``"swa"``: the averaged weights the
  ``avg_*`` metrics evaluate), ``best_params`` / ``best_model_state`` (with early stopping: the weights
  of the best monitored epoch so far) and ``hparams`` (``{name: (members,)}``, the members' numeric
  hyperparameters). A part with no arrays is left out.
* ``models/index.json`` — ``{"format": 1, "chunks": [{"folder", "group", "input_shape", "num_outputs",
  "num_train", "sha256", "members": [[arm, seed], ...], "preprocess"}]}``; member *i* of a chunk is row *i* of its
  arrays. ``sha256`` is :func:`jtricks.checkpoint.checksum` of the chunk's arrays, checked by :func:`load`.
  ``preprocess`` is the group's input preprocessing fitted on its training split
  (:meth:`jtricks.data.Preprocessing.to_json`: the method, and the standardization statistics or the scaled
  range); a folder saved without it has it fitted again from the experiment's data on :func:`load`.

:func:`load` ``(run_dir, arm=..., seed=...)`` rebuilds the arm's experiment (from the manifest's
configuration, or the ``experiment`` you pass when it holds objects of your own), its model and its
training configuration, re-creates the tree structure with ``jax.eval_shape(model.init, ...)`` and returns
a :class:`SavedMember`, whose :meth:`~SavedMember.apply` and :meth:`~SavedMember.evaluate` run the model
in evaluation mode (dropout off, batch norm on running statistics) exactly as the run evaluated it.
:meth:`~SavedMember.apply` takes *raw* inputs (as the data set holds them) and applies the run's preprocessing
first (``preprocess="standardize"``: the training split's mean and scale); ``apply(x, preprocess=False)`` runs the
model on inputs you preprocessed yourself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jtricks import data as jdata
from jtricks import regularize as jreg
from jtricks._core import files as jfiles
from jtricks.engine import catalog as jcatalog
from jtricks.engine import checkpoint as jckpt
from jtricks.engine import configure as jconfigure
from jtricks.engine import experiment as jexp
from jtricks.engine import grid as jgrid
from jtricks.engine import prepare as jprep
from jtricks.engine import train as jtrain
from jtricks.engine import validation as jvalidation
from jtricks.results import folders as jfolders

__all__ = ["save_chunk", "write_index", "load", "SavedMember", "FOLDER", "INDEX"]

#: The folder of the saved models in a results folder, and its index file.
FOLDER = "models"
INDEX = "index.json"
_FORMAT = 1
Which = Literal["final", "best", "averaged"]


def _flat(tree: Any, n: int) -> dict[str, np.ndarray]:
    return {str(i): np.asarray(leaf)[:n] for i, leaf in enumerate(jax.tree_util.tree_leaves(tree))}


def _payload(config: jtrain.TrainConfig, state: jtrain.TrainState, n: int) -> dict[str, dict[str, np.ndarray]]:
    """The parts saved for the first ``n`` members of a population ``state`` (empty parts dropped)."""
    parts: dict[str, Any] = {"params": state.params, "model_state": state.model_state}
    if config.averaging == "ema":
        parts["avg_params"] = jreg.ema_params(state.averaging)
    elif config.averaging == "swa":
        parts["avg_params"] = jreg.swa_params(state.averaging)
    if config.early_stopping:
        parts["best_params"], parts["best_model_state"] = state.early.best_params
    payload = {k: _flat(v, n) for k, v in parts.items()}
    payload["hparams"] = {k: np.asarray(v)[:n] for k, v in state.hparams.items()}
    return {k: v for k, v in payload.items() if v}


def save_chunk(
    folder: str | os.PathLike,
    group: int,
    chunk: int,
    config: jtrain.TrainConfig,
    state: jtrain.TrainState,
    members: Sequence[tuple[str, int]],
    *,
    input_shape: Sequence[int],
    num_outputs: int,
    num_train: int,
    preprocessing: jdata.Preprocessing | None = None,
) -> dict[str, Any]:
    """Save the first ``len(members)`` members of the population ``state`` to ``FOLDER/group<g>_chunk<c>``
    (replacing an earlier save) with orbax; return the chunk's entry of the index (:func:`write_index`), with
    ``preprocessing`` (the group's, fitted on its training split) when given.

    Raises:
      OSError: the folder cannot be written (the message names it and the OS error).
    """
    import orbax.checkpoint as ocp

    name = f"group{group}_chunk{chunk}"
    path = Path(folder) / name
    payload = _payload(config, state, len(members))
    try:
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(path.resolve(), payload)
    except Exception as e:  # orbax / tensorstore raise many types for a failed write
        reason = e.strerror if isinstance(e, OSError) and e.strerror else (str(e).splitlines() or [type(e).__name__])[0]
        raise OSError(getattr(e, "errno", None), f"cannot write the saved models {path}: {reason}") from None
    entry = {
        "folder": name,
        "group": group,
        "input_shape": [int(d) for d in input_shape],
        "num_outputs": int(num_outputs),
        "num_train": int(num_train),
        "sha256": jckpt.checksum(payload),
        "members": [[a, int(s)] for a, s in members],
    }
    if preprocessing is not None:
        entry["preprocess"] = preprocessing.to_json()
    return entry


def write_index(folder: str | os.PathLike, chunks: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``FOLDER/index.json`` (atomically) listing the saved chunks and their members."""
    doc = {"format": _FORMAT, "chunks": list(chunks)}
    return jfiles.write_atomic(Path(folder) / INDEX, json.dumps(doc, indent=2) + "\n")


# --------------------------------------------------------------------------------------------- load
@dataclasses.dataclass(frozen=True)
class SavedMember:
    """One trained member of a run: its arrays, the model and the configuration it was trained with.

    Attributes:
      arm, seed: which member.
      params, model_state: the final parameters and model state (batch-norm statistics; ``{}`` or ``None``
        when the model has none), as numpy arrays in the model's own tree structure.
      avg_params: the averaged weights (EMA / SWA runs), else ``None``.
      best_params, best_model_state: with early stopping, the weights of the best monitored epoch, else ``None``.
      hparams: the member's numeric hyperparameters (``{name: float}``).
      model: the rebuilt :class:`jtricks.models.Model` (or adapter): ``model.apply(params, model_state, x, ...)``.
      experiment: the arm's :class:`jtricks.experiment.Experiment` (its data settings give the same splits).
      config: the :class:`jtricks.train.TrainConfig` of the member's static group.
      preprocessing: the run's input preprocessing (:class:`jtricks.data.Preprocessing`, fitted on the
        training split), which :meth:`apply` applies to raw inputs.
    """

    arm: str
    seed: int
    params: Any
    model_state: Any
    avg_params: Any
    best_params: Any
    best_model_state: Any
    hparams: dict[str, float]
    model: Any
    experiment: jexp.Experiment
    config: jtrain.TrainConfig
    preprocessing: jdata.Preprocessing
    _programs: dict[Any, Any] = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        model = getattr(self.model, "name", type(self.model).__name__)
        return (
            f"SavedMember(arm={self.arm!r}, seed={self.seed}, model={model!r}, "
            f"preprocess={self.preprocessing.method!r}: apply(x) takes raw inputs and preprocesses them as the run "
            "did; apply(x, preprocess=False) runs the model on inputs preprocessed already)"
        )

    def weights(self, which: Which = "final") -> tuple[Any, Any]:
        """``(params, model_state)`` of ``which``: ``"final"``, ``"best"`` (early stopping) or ``"averaged"``
        (EMA/SWA; with the final model state, as the run evaluated them)."""
        if which == "final":
            return self.params, self.model_state
        if which == "best" and self.best_params is not None:
            return self.best_params, self.best_model_state
        if which == "averaged" and self.avg_params is not None:
            return self.avg_params, self.model_state
        have = (
            ["final"]
            + (["best"] if self.best_params is not None else [])
            + (["averaged"] if self.avg_params is not None else [])
        )
        raise ValueError(f"`which` must be one of {have} for this member, got {which!r}")

    def _hp(self, names: Sequence[str]) -> dict[str, jax.Array] | None:
        return {k: jnp.float32(self.hparams[k]) for k in names} if names else None

    def apply(self, x: Any, *, which: Which = "final", preprocess: bool = True) -> jax.Array:
        """The model's outputs on a batch of *raw* inputs ``x`` (as the data set holds them) in evaluation mode:
        dropout off, batch norm on its running statistics.

        ``x`` is first preprocessed as the run's splits were (:attr:`preprocessing`: with
        ``preprocess="standardize"`` the training split's mean and scale, with ``"unit"`` / ``"symmetric"`` its
        scaled range), on the host with the same arithmetic; ``preprocess=False`` feeds ``x`` to the model as it
        is (inputs already preprocessed, e.g. ``jtricks.prepare.prepare_data(member.experiment).host``).
        """
        if not isinstance(preprocess, bool):
            raise TypeError(f"`preprocess` must be a bool, got {preprocess!r}")
        params, mstate = self.weights(which)
        inputs = self.preprocessing(np.asarray(x)) if preprocess else x
        out, _ = self.model.apply(
            params,
            mstate,
            jnp.asarray(inputs, jnp.float32),
            key=None,
            train=False,
            hparams=self._hp(self.config.model_hparam_names()),
        )
        return out

    def evaluate(
        self, split: Literal["val", "test"] = "test", *, which: Which = "final", data: jtrain.DeviceData | None = None
    ) -> dict[str, float]:
        """``{"loss": ..., metric: ...}`` on the ``split`` of the run's data (prepared again from the arm's
        experiment: the same split and preprocessing) or of ``data``, computed by the engine's evaluation
        (:func:`jtricks.train.make_evaluate`) as in the run: the numbers it recorded for ``which``."""
        if split not in ("val", "test"):
            raise ValueError(f"`split` must be 'val' or 'test', got {split!r}")
        params, mstate = self.weights(which)
        if data is None:
            data = jprep.prepare_data(self.experiment, self.config.loss).device
        x, y, m = (
            (data.x_val, data.y_val, data.val_mask) if split == "val" else (data.x_test, data.y_test, data.test_mask)
        )
        chunk = jtrain.eval_chunk(self.config, data)
        if chunk not in self._programs:  # one program per chunk size, reused by every split and weights
            evaluate = jtrain.make_evaluate(self.config, chunk)
            self._programs[chunk] = jax.jit(jax.vmap(evaluate, in_axes=(0, 0, 0, 0, None, None, None)))
        one = lambda t: jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], t)  # noqa: E731  a population of 1
        hp = {k: jnp.full((1,), v, jnp.float32) for k, v in self.hparams.items()}
        out = self._programs[chunk](one(params), one(mstate), jnp.ones((1,), jnp.float32), hp, x, y, m)
        return {k: float(v[0]) for k, v in out.items()}


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def _experiment(run_dir: Path, experiment: jexp.Experiment | str | None) -> jexp.Experiment:
    if isinstance(experiment, jexp.Experiment):
        return experiment
    if isinstance(experiment, str):
        return jcatalog.load_experiment(experiment)
    if experiment is not None:
        raise TypeError(
            f"`experiment` must be an Experiment, an experiment name or path, or None; got {type(experiment).__name__}"
        )
    manifest = jfolders.check_complete(run_dir)
    config = dict(manifest.get("config") or {})
    fields = {f.name for f in dataclasses.fields(jexp.Experiment)}
    # JSON has lists where the experiment had tuples (model arguments, grid values): arm names need the tuples
    for key in ("model_kwargs", "dataset_kwargs"):
        if isinstance(config.get(key), dict):
            config[key] = {k: _tuples(v) for k, v in config[key].items()}
    if isinstance(config.get("grid"), dict):
        config["grid"] = {k: [_tuples(v) for v in vs] for k, vs in config["grid"].items()}
    if isinstance(config.get("arms"), list):
        config["arms"] = [{k: _tuples(v) for k, v in a.items()} if isinstance(a, dict) else a for a in config["arms"]]
    try:
        exp = jexp.Experiment(**{k: v for k, v in config.items() if k in fields})
        jvalidation.validate(exp)
        return exp
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"cannot rebuild the experiment of {run_dir} from its manifest ({e}); pass experiment="
        ) from None


def _member_entry(index: Mapping[str, Any], run_dir: Path, arm: str, seed: int) -> tuple[Mapping[str, Any], int]:
    for chunk in index.get("chunks", []):
        for i, (a, s) in enumerate(chunk["members"]):
            if a == arm and s == seed:
                return chunk, i
    known = sorted({a for c in index.get("chunks", []) for a, _ in c["members"]})
    seeds = sorted({s for c in index.get("chunks", []) for a, s in c["members"] if a == arm})
    if arm not in known:
        raise ValueError(f"`arm` must be one of {known} (the arms saved in {run_dir}), got {arm!r}")
    raise ValueError(f"`seed` must be one of {seeds} for arm {arm!r}, got {seed!r}")


def _read_chunk(run_dir: Path, chunk: Mapping[str, Any]) -> dict[str, Any]:
    import orbax.checkpoint as ocp

    path = (run_dir / FOLDER / chunk["folder"]).resolve()
    try:
        with ocp.StandardCheckpointer() as ckptr:
            payload = ckptr.restore(path)
    except Exception as e:  # unreadable files: orbax / tensorstore raise many types
        raise ValueError(
            f"the saved models {path} are unreadable: {(str(e).splitlines() or [type(e).__name__])[0][:200]}"
        ) from None
    if jckpt.checksum(payload) != chunk.get("sha256"):
        raise ValueError(f"the saved models {path} are damaged (checksum mismatch)")
    return payload


def load(
    run_dir: str | os.PathLike, *, arm: str, seed: int, experiment: jexp.Experiment | str | None = None
) -> SavedMember:
    """The saved member ``(arm, seed)`` of the finished run in ``run_dir`` (see the module docstring).

    Args:
      run_dir: a results folder written with saved models (``runner.run(..., out_dir=...)``).
      arm: the arm's name (as in ``arms.json`` / ``metrics.csv``).
      seed: the member's seed.
      experiment: the run's experiment (an :class:`~jtricks.experiment.Experiment`, or an experiment name or
        file); ``None``: rebuilt from ``manifest.json`` (enough when it names only registered data sets,
        models, losses and optimizers; pass your own when the run used objects).

    Raises:
      ValueError: not a finished run, no saved models, an unknown arm or seed (the message lists the
        known ones), a damaged save, or an experiment that cannot be rebuilt.
    """
    run_dir = Path(run_dir)
    index_path = run_dir / FOLDER / INDEX
    if not index_path.is_file():
        raise ValueError(f"{run_dir} has no saved models ({index_path} not found; was it run with --no-save-models?)")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    chunk, i = _member_entry(index, run_dir, arm, seed)
    exp = _experiment(run_dir, experiment)
    arms = {a.name: a for a in jvalidation.validate(exp)}
    if arm not in arms:
        raise ValueError(f"the experiment given has no arm {arm!r} (its arms: {sorted(arms)})")
    arm_exp = arms[arm].experiment
    payload = _read_chunk(run_dir, chunk)
    hparams = {k: float(np.asarray(v)[i]) for k, v in payload.get("hparams", {}).items()}
    model = jconfigure.build_model(arm_exp, int(chunk["num_outputs"]))
    config = jconfigure.build_config(arm_exp, model, int(chunk["num_train"]), traced=jgrid.traced_hparams([hparams]))
    shapes = jax.eval_shape(
        lambda k: model.init(
            k, tuple(chunk["input_shape"]), {"init_scale": jnp.float32(1.0)} if config.init_scale else None
        ),
        jax.random.PRNGKey(0),
    )

    def part(name: str, template: Any) -> Any:
        leaves, treedef = jax.tree_util.tree_flatten(template)
        stored = payload.get(name, {})
        if len(stored) != len(leaves):
            raise ValueError(
                f"the saved {name} of {run_dir} hold {len(stored)} arrays, the rebuilt model {len(leaves)}: "
                "pass the run's experiment="
            )
        return jax.tree_util.tree_unflatten(treedef, [np.asarray(stored[str(j)])[i] for j in range(len(leaves))])

    params_t, mstate_t = shapes
    preprocessing = (
        jdata.Preprocessing.from_json(chunk["preprocess"])
        if "preprocess" in chunk
        else jprep.fit_preprocessing(arm_exp)  # saved before the record existed: fitted again, deterministically
    )
    averaged = part("avg_params", params_t) if "avg_params" in payload else None
    best = (
        (part("best_params", params_t), part("best_model_state", mstate_t)) if config.early_stopping else (None, None)
    )
    return SavedMember(
        arm,
        int(seed),
        part("params", params_t),
        part("model_state", mstate_t),
        averaged,
        *best,
        hparams,
        model,
        arm_exp,
        config,
        preprocessing,
    )
