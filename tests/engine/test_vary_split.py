"""Per-seed train/validation splits (``vary_split=True``): each seed draws its split of the training set from its
own ``"split"`` key stream; a member's numbers are bit for bit those of a run on a data set that holds that seed's
split as its own validation split."""

from __future__ import annotations

import types

import numpy as np
import pytest
from support.experiments import small_digits_mlp

from jtricks import data as jdata
from jtricks import runner
from jtricks import train as jtrain
from jtricks.keys import seed_key

pytestmark = pytest.mark.slow


def _pool() -> jdata.Dataset:
    ds = jdata.digits()
    x, y = np.asarray(ds.x_train, np.float32), np.asarray(ds.y_train)
    return jdata.arrays(x[:400], y[:400], np.asarray(ds.x_test, np.float32)[:100], ds.y_test[:100], num_classes=10)


@pytest.mark.parametrize("execution", ["scan", "loop"])
def test_each_seed_trains_and_validates_on_its_own_split(execution):
    pool = _pool()
    kw = dict(dataset=pool, preprocess="raw", n_train=None, n_val=100, epochs=2, execution=execution, batch_size=50)
    varied = runner.run(small_digits_mlp(vary_split=True, seeds=2, **kw), progress=False)
    config = types.SimpleNamespace(member_split=(400, 100, 300))
    vals = []
    for seed in (0, 1):
        val, tr = (np.asarray(a) for a in jtrain.split_rows(config, seed_key(seed)))
        assert sorted(np.concatenate([val, tr]).tolist()) == list(range(400))
        vals.append(set(val.tolist()))
        own = jdata.arrays(
            pool.x_train[tr], pool.y_train[tr], pool.x_test, pool.y_test, num_classes=10,
            x_val=pool.x_train[val], y_val=pool.y_train[val],
        )  # fmt: skip
        alone = runner.run(small_digits_mlp(seeds=1, seed_offset=seed, **{**kw, "dataset": own}), progress=False)
        mine = {(r["epoch"], r["metric"]): r["value"] for r in varied.metric_rows if r["seed"] == seed}
        assert mine == {(r["epoch"], r["metric"]): r["value"] for r in alone.metric_rows}
    assert vals[0] != vals[1]
