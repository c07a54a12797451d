"""An experiment's data path: load → validation split → training subset → preprocess → check → device.

:func:`prepare_data` turns the data settings of an :class:`~jtricks.experiment.Experiment` (a registered
name or a :class:`jtricks.data.Dataset` object) into the device-resident splits the engine trains on, and
:func:`check_targets` checks the targets against the loss and the model's output width on the host,
before anything compiles.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, NamedTuple

import jax
import numpy as np

from jtricks import data as jdata
from jtricks import losses as jlosses
from jtricks.engine import train as jtrain

__all__ = ["PreparedData", "prepare_data", "fit_preprocessing", "check_batch_size", "check_targets", "model_outputs"]


class PreparedData(NamedTuple):
    """The prepared splits of one data setting.

    Attributes:
      device: the device-resident splits (:class:`jtricks.train.DeviceData`).
      num_outputs: the class count, or the regression target width.
      input_shape: one example's shape.
      host: ``{"train": (x, y), "val": (x, y), "test": (x, y)}`` after preprocessing (numpy).
      checksum: sha256 of the prepared arrays (for the manifest).
      description: the data set's short description.
      preprocessing: the :class:`jtricks.data.Preprocessing` fitted on the training split (saved with the
        models, so that a loaded member preprocesses raw inputs as the run did).
      member_split: with ``vary_split``, ``(pool, n_val, n_train)`` (:class:`jtricks.train.TrainConfig`):
        ``device.x_train`` is the pool every member splits by its own ``"split"`` key; else ``None``.
      stream: with ``data_placement="stream"``, the training split on the host (``device.x_train`` and
        ``device.y_train`` are then shapes only, and ``host["train"]`` holds the raw inputs); else ``None``.
    """

    device: jtrain.DeviceData
    num_outputs: int
    input_shape: tuple[int, ...]
    host: dict[str, tuple[np.ndarray, np.ndarray]]
    checksum: str
    description: str
    preprocessing: jdata.Preprocessing | None = None
    stream: jdata.HostSplit | None = None
    member_split: tuple[int, int, int] | None = None

    @property
    def num_train(self) -> int:
        """The examples one member trains on."""
        return self.member_split[2] if self.member_split is not None else int(self.device.x_train.shape[0])


def _load(exp: Any) -> jdata.Dataset:
    if isinstance(exp.dataset, jdata.Dataset):
        return exp.dataset
    return jdata.load(exp.dataset, **dict(exp.dataset_kwargs))


def _split(exp: Any, ds: jdata.Dataset) -> jdata.Dataset:
    """Hold out ``n_val`` examples by the fixed ``split_seed`` unless the data set has its own validation split;
    then take the ``n_train`` subset."""
    if ds.x_val is None:
        if exp.n_val >= ds.num_train:
            raise ValueError(f"n_val={exp.n_val} leaves no training examples: the data set has {ds.num_train}")
        x_tr, y_tr, x_val, y_val = jdata.train_val_split(
            jax.random.PRNGKey(exp.split_seed), ds.x_train, ds.y_train, n_val=exp.n_val
        )
    else:
        x_tr, y_tr, x_val, y_val = ds.x_train, ds.y_train, ds.x_val, ds.y_val
    if exp.n_train is not None:
        if exp.n_train > len(x_tr):
            raise ValueError(
                f"n_train={exp.n_train} exceeds the {len(x_tr)} training examples left after the validation split"
            )
        x_tr, y_tr = x_tr[: exp.n_train], y_tr[: exp.n_train]
    return dataclasses.replace(
        ds, x_train=np.asarray(x_tr), y_train=np.asarray(y_tr), x_val=np.asarray(x_val), y_val=np.asarray(y_val)
    )


#: Rows hashed at once by :func:`_checksum` for a streamed training split.
_HASH_ROWS = 4096


def _checksum(arrays: list[Any]) -> str:
    """sha256 over ``(dtype, shape)`` and the bytes of each array; a :class:`jtricks.data.HostSplit` counts as its
    preprocessed float32 inputs, hashed a block of rows at a time (the digest of the whole array's bytes)."""
    h = hashlib.sha256()
    for a in arrays:
        if isinstance(a, jdata.HostSplit):
            h.update(str((np.dtype(np.float32).str, tuple(a.x.shape))).encode())
            for i in range(0, a.num_examples, _HASH_ROWS):
                x, _ = a.rows(np.arange(i, min(i + _HASH_ROWS, a.num_examples)))
                h.update(np.ascontiguousarray(x).tobytes())
            continue
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def prepare_data(exp: Any, loss: jlosses.Loss | None = None) -> PreparedData:
    """Load ``exp.dataset``, split, subset, preprocess (statistics from the training subset only) and put
    the splits on the device, with the target dtype the loss expects (default: ``exp.loss``). With
    ``exp.data_placement == "stream"`` the training split stays on the host (:func:`jtricks.train.streamed_data`):
    its raw inputs (a memory map stays one) are preprocessed batch by batch as they are gathered."""
    loss = jlosses.get(exp.loss) if loss is None else loss
    loaded = _load(exp)
    ds = _split(exp, loaded)
    preprocessing = jdata.fit_preprocessing(ds, exp.preprocess)
    _check_batch(exp.batch_size, ds.num_train)
    if exp.data_placement == "stream":
        return _prepare_streamed(exp, loss, ds, preprocessing)
    if exp.vary_split:
        return _prepare_pool(exp, loss, loaded, ds, preprocessing)
    pre = preprocessing.dataset(ds)
    host = {"train": (pre.x_train, pre.y_train), "val": (pre.x_val, pre.y_val), "test": (pre.x_test, pre.y_test)}
    if loss.targets == "real":  # a Dataset built without data.arrays may hold float64 targets
        jdata.warn_float32_targets({f"y_{k}": y for k, (_, y) in host.items()}, ds.name)
    device = jtrain.device_data(
        *host["train"],
        *host["val"],
        *host["test"],
        eval_batch_size=exp.eval_batch_size,
        targets=loss.targets,
        train_eval=exp.train_eval,
    )
    checksum = _checksum([a for pair in host.values() for a in pair])
    return PreparedData(device, ds.num_outputs, tuple(ds.input_shape), host, checksum, repr(ds), preprocessing)


def _prepare_pool(
    exp: Any, loss: jlosses.Loss, loaded: jdata.Dataset, ds: jdata.Dataset, preprocessing: jdata.Preprocessing
) -> PreparedData:
    """:func:`prepare_data` for ``vary_split``: the whole training set on the device as the pool each member
    splits by its own key (``member_split``); the preprocessing is the one fitted on the ``split_seed`` split's
    training part, the same for every member; ``device.x_val`` is that split's validation part (its shape and mask
    are every member's, its values replaced by the member's own)."""
    if loaded.x_val is not None:
        raise ValueError(
            f"vary_split=True draws each seed's validation split from the training set, but the data set "
            f"{loaded.name!r} has its own validation split; use vary_split=False (the allowed value for it)"
        )
    if exp.train_eval:
        raise ValueError("vary_split=True with train_eval > 0 is not supported: train_eval must be 0 with it")
    pool = preprocessing(loaded.x_train)
    y_pool = np.asarray(loaded.y_train)
    device = jtrain.device_data(
        pool,
        y_pool,
        preprocessing(ds.x_val),
        ds.y_val,
        preprocessing(ds.x_test),
        ds.y_test,
        eval_batch_size=exp.eval_batch_size,
        targets=loss.targets,
    )
    host = {
        "train": (pool, y_pool),
        "val": (preprocessing(ds.x_val), ds.y_val),
        "test": (preprocessing(ds.x_test), ds.y_test),
    }
    checksum = _checksum([a for pair in host.values() for a in pair])
    split = (int(pool.shape[0]), int(exp.n_val), ds.num_train)
    return PreparedData(
        device, ds.num_outputs, tuple(ds.input_shape), host, checksum, repr(ds), preprocessing, member_split=split
    )


def _prepare_streamed(
    exp: Any, loss: jlosses.Loss, ds: jdata.Dataset, preprocessing: jdata.Preprocessing
) -> PreparedData:
    """:func:`prepare_data` with the training split on the host (a :class:`jtricks.data.HostSplit`)."""
    if loss.targets == "real":
        jdata.warn_float32_targets({"y_train": ds.y_train, "y_val": ds.y_val, "y_test": ds.y_test}, ds.name)
    split = jdata.HostSplit(ds.x_train, np.asarray(ds.y_train, jtrain.TARGET_DTYPES[loss.targets]), preprocessing)
    evaluated = {k: (preprocessing(getattr(ds, f"x_{k}")), getattr(ds, f"y_{k}")) for k in ("val", "test")}
    device = jtrain.streamed_data(
        split,
        *evaluated["val"],
        *evaluated["test"],
        eval_batch_size=exp.eval_batch_size,
        targets=loss.targets,
        train_eval=exp.train_eval,
    )
    host = {"train": (ds.x_train, ds.y_train), **evaluated}
    checksum = _checksum([split, ds.y_train] + [a for pair in evaluated.values() for a in pair])
    return PreparedData(
        device, ds.num_outputs, tuple(ds.input_shape), host, checksum, repr(ds), preprocessing, stream=split
    )


def fit_preprocessing(exp: Any) -> jdata.Preprocessing:
    """The preprocessing of ``exp`` fitted on its training split (loaded and split again, as
    :func:`prepare_data` does: the same statistics)."""
    if exp.preprocess == "raw":
        return jdata.Preprocessing("raw")
    return jdata.fit_preprocessing(_split(exp, _load(exp)), exp.preprocess)


def _check_batch(batch_size: int, num_train: int) -> None:
    """``ValueError`` unless one batch fits in the training split."""
    if batch_size > num_train:
        raise ValueError(f"batch_size={batch_size} exceeds the {num_train} training examples")


def check_batch_size(prepared: PreparedData, batch_size: int) -> None:
    """``ValueError`` unless one batch of ``batch_size`` fits in the prepared training split (groups that
    share prepared data may differ in batch size, so each checks its own)."""
    _check_batch(batch_size, prepared.num_train)


def model_outputs(model: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape of one example under ``model`` (abstract evaluation: nothing is compiled)."""
    params, state = jax.eval_shape(lambda k: model.init(k, tuple(input_shape), None), jax.random.PRNGKey(0))
    x = jax.ShapeDtypeStruct((2, *input_shape), np.float32)
    out = jax.eval_shape(lambda p, s, x: model.apply(p, s, x, key=None, train=False, hparams=None)[0], params, state, x)
    return tuple(out.shape[1:])


def check_targets(prepared: PreparedData, loss: jlosses.Loss, model: Any) -> None:
    """Check every split's targets against the loss and the model's output width (``ValueError`` naming the
    split), before anything compiles."""
    out_shape = model_outputs(model, prepared.input_shape)
    width = out_shape[-1] if out_shape else None
    for split, (_, y) in prepared.host.items():
        jlosses.check_targets(loss, np.asarray(y), num_outputs=width, split=split)
