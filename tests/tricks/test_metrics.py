"""jtricks.metrics: each metric against a numpy formula, chunked evaluation with padding, full names and directions."""

from __future__ import annotations

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import losses, metrics, report

RNG = np.random.default_rng(0)
N, K = 37, 10


def _classification() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = RNG.normal(size=(N, K)).astype(np.float32)
    y = RNG.integers(0, K, size=N).astype(np.int32)
    return z, y, np.asarray(losses.cross_entropy(jnp.asarray(z), jnp.asarray(y)))


def _evaluate(
    names: list[str], z: np.ndarray, y: np.ndarray, loss: np.ndarray, chunk: int | None = None
) -> dict[str, float]:
    """Whole split in one call, or in chunks of ``chunk`` rows with the last one zero-padded and masked."""
    ms = [metrics.get(n) for n in names]
    widths = metrics.stat_widths(ms, z[:1], y[:1], loss[:1])
    totals_of = jax.jit(lambda *a: metrics.evaluate_totals(ms, *a))
    if chunk is None:
        totals = totals_of(z, y, loss, np.ones(len(y), bool))
    else:
        totals = 0.0
        for start in range(0, len(y), chunk):
            pad = max(0, start + chunk - len(y))
            sl = slice(start, start + chunk)
            zc, yc, lc = (
                np.concatenate([a[sl], np.full((pad,) + a.shape[1:], np.nan if a.dtype.kind == "f" else 0, a.dtype)])
                for a in (z, y, loss)
            )
            mask = np.arange(chunk) < chunk - pad
            totals = totals + totals_of(zc, yc, lc, mask)
    return {k: float(v) for k, v in metrics.finalize_totals(ms, totals, len(y), widths=widths).items()}


def test_classification_metrics_match_numpy_whole_and_chunked():
    z, y, loss = _classification()
    rank = (z > z[np.arange(N), y][:, None]).sum(1)  # logits above the label's
    ref = {
        "acc": (z.argmax(1) == y).mean(),
        "top5_acc": (rank < 5).mean(),
        "top1_acc": (z.argmax(1) == y).mean(),
        "top3_acc": (np.argsort(-z, 1)[:, :3] == y[:, None]).any(1).mean(),
        "loss": loss.astype(np.float64).mean(),
    }
    whole = _evaluate(list(ref), z, y, loss)
    chunked = _evaluate(list(ref), z, y, loss, chunk=8)  # 5 chunks, the last padded with NaN rows
    for name, value in ref.items():
        assert whole[name] == pytest.approx(value, rel=1e-6), name
        assert chunked[name] == pytest.approx(value, rel=1e-6), name
    assert chunked["acc"] == whole["acc"] and chunked["top5_acc"] == whole["top5_acc"]  # counts: exact


def test_binary_accuracy_of_one_logit():
    z = RNG.normal(size=(N, 1)).astype(np.float32)
    y = RNG.integers(0, 2, size=N).astype(np.float32)
    got = _evaluate(["acc"], z, y, np.zeros(N, np.float32))["acc"]
    assert got == pytest.approx(((z[:, 0] > 0) == (y == 1)).mean(), rel=1e-6)


@pytest.mark.parametrize("outputs", [1, 3])
def test_regression_metrics_match_numpy_whole_and_chunked(outputs):
    y = (2.0 + RNG.normal(size=(N, outputs))).astype(np.float32)
    o = (y + 0.5 * RNG.normal(size=(N, outputs))).astype(np.float32)
    if outputs == 1:
        y = y[:, 0]  # (B,) targets against (B, 1) outputs
    loss = np.asarray(losses.mse(jnp.asarray(o), jnp.asarray(y)))
    yy, oo = y.reshape(N, -1).astype(np.float64), o.astype(np.float64)
    r2 = np.mean(1.0 - ((oo - yy) ** 2).sum(0) / ((yy - yy.mean(0)) ** 2).sum(0))
    ref = {"mse": ((oo - yy) ** 2).mean(), "r2": r2, "loss": ((oo - yy) ** 2).mean()}
    for chunk in (None, 8):
        got = _evaluate(list(ref), o, y, loss, chunk=chunk)
        for name, value in ref.items():
            assert got[name] == pytest.approx(value, rel=1e-5), (name, chunk)


def test_evaluate_totals_is_vmap_stable_and_masks_nan_padding():
    z, y, loss = _classification()
    ms = [metrics.get("loss"), metrics.get("acc")]
    mask = np.arange(N) < 30
    z_nan = z.copy()
    z_nan[30:] = np.nan
    loss_nan = loss.copy()
    loss_nan[30:] = np.nan
    totals_of = jax.jit(lambda *a: metrics.evaluate_totals(ms, *a))
    alone = totals_of(z[:30], y[:30], loss[:30], np.ones(30, bool))
    masked = totals_of(z_nan, y, loss_nan, mask)
    assert np.isfinite(masked).all()
    np.testing.assert_allclose(masked, alone, rtol=1e-6)
    stack = lambda a: np.stack([a, a[::-1], a])  # noqa: E731
    pop = jax.jit(jax.vmap(lambda a, b, c: metrics.evaluate_totals(ms, a, b, c, mask)))(stack(z), stack(y), stack(loss))
    for i in range(3):
        np.testing.assert_array_equal(pop[i], totals_of(stack(z)[i], stack(y)[i], stack(loss)[i], mask))


def test_user_metric_and_get_errors():
    mae = metrics.metric(lambda o, y: jnp.abs(o[:, 0] - y), name="mae", higher_is_better=False)
    o = RNG.normal(size=(N, 1)).astype(np.float32)
    y = RNG.normal(size=N).astype(np.float32)
    totals = metrics.evaluate_totals([mae], o, y, np.zeros(N, np.float32), np.ones(N, bool))
    assert float(mae.finalize(totals, N)) == pytest.approx(np.abs(o[:, 0] - y).mean(), rel=1e-6)
    assert metrics.get(mae) is mae
    with pytest.raises(ValueError, match=r"unknown metric 'f1'; allowed: 'acc', 'top5_acc', 'loss', 'mse', 'r2'"):
        metrics.get("f1")
    with pytest.raises(TypeError, match="higher_is_better"):
        metrics.get(lambda o, y: o)
    with pytest.raises(ValueError, match="split prefix"):
        metrics.metric(lambda o, y: o, name="val_mae", higher_is_better=False)
    with pytest.raises(TypeError, match="higher_is_better"):
        metrics.metric(lambda o, y: o, name="mae", higher_is_better=1)


def test_parse_full_names():
    assert metrics.parse("test_r2") == ("test", "r2")
    assert metrics.parse("avg_val_acc") == ("avg_val", "acc")
    assert metrics.parse("train_loss") == ("train", "loss")
    assert metrics.parse("val_top3_acc") == ("val", "top3_acc")
    assert metrics.parse("lr") == ("", "lr")
    assert metrics.parse("grad_norm/dense_0") == ("", "grad_norm/dense_0")
    assert metrics.parse("test_mae", custom=["mae"]) == ("test", "mae")
    with pytest.raises(ValueError, match="must start with a split"):
        metrics.parse("holdout_acc")
    with pytest.raises(ValueError, match=r"unknown metric 'f1' in 'test_f1'"):
        metrics.parse("test_f1")


def _repository_metric_names() -> set[str]:
    root = pathlib.Path(__file__).resolve().parents[2]
    text = "".join(
        p.read_text()
        for p in [
            *root.glob("experiments/*.py"),
            *root.glob("experiments/plots/*.py"),
            *root.glob("jtricks/results/*.py"),
        ]
    )
    return set(re.findall(r"\b((?:avg_)?(?:train|val|test)_(?:acc|loss)|grad_norm|lr)\b", text))


def test_direction_of_every_metric_name_in_the_repository_agrees_with_report():
    found = _repository_metric_names()
    assert {"train_loss", "val_acc", "test_acc", "avg_test_acc", "grad_norm"} <= found
    for name in found:
        assert metrics.direction(name) == report.metric_direction(name), name
        assert metrics.higher_is_better(name) == (report.metric_direction(name) > 0), name
    assert metrics.higher_is_better("test_r2") and not metrics.higher_is_better("test_mse")
    assert not metrics.higher_is_better("grad_norm") and metrics.direction("lr") == 0
    mae = metrics.metric(lambda o, y: o, name="mae", higher_is_better=False)
    assert metrics.direction("val_mae", {"mae": mae}) == -1
    # the results read a run's recorded directions first; a metric no one declared is of unknown direction
    assert (
        report.metric_direction("val_score", {"val_score": "higher"}) == 1 and report.metric_direction("val_score") == 0
    )
