"""Data augmentation in the engine: its own key stream (initial weights, data order and dropout masks of a seed
unchanged), population members bit for bit their standalone runs, augmentation hyperparameters vmapped, settings
checked before anything loads."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support.experiments import small_digits_mlp

from jtricks import data, prepare, runner
from jtricks import experiment as jexp
from jtricks import models as jmodels
from jtricks import optim as joptim
from jtricks import train as jtrain
from jtricks.keys import seed_key

pytestmark = pytest.mark.slow  # whole runs and populations: left out of `-m "not slow"`

ALL = ("crop", "flip", "cutout", "mixup")


def small_exp(**kw) -> jexp.Experiment:
    return small_digits_mlp(**{"name": "aug", "description": "digits MLP with augmentation", "epochs": 2, **kw})


@pytest.fixture(scope="module")
def digits():
    prepared = prepare.prepare_data(small_exp())
    return prepared.device, prepared.input_shape


def _config(augment=(), *, dropout: bool = True, epochs: int = 2) -> jtrain.TrainConfig:
    spec = joptim.OptimizerSpec("adam", schedule="per_epoch_decay", steps_per_epoch=10)
    return jtrain.TrainConfig(
        model=jmodels.mlp((32,), 10, dropout_rate=0.5 if dropout else 0.0),
        optimizer=spec,
        epochs=epochs,
        batch_size=64,
        eval_batch_size=128,
        dropout=dropout,
        augment=augment,
        crop_padding=2,
    )


def _stack(hps: list[dict]) -> dict:
    return {k: jnp.asarray(np.array([h[k] for h in hps], np.float32)) for k in hps[0]}


def _equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def test_switching_augmentation_on_keeps_init_and_data_order(digits) -> None:
    dd, input_shape = digits
    on, off = _config(ALL), _config(())
    key = seed_key(7)
    s_on = jtrain.init_state(on, key, jtrain.validate_hparams(on, {"mixup_alpha": 0.4}), input_shape)
    s_off = jtrain.init_state(off, key, jtrain.validate_hparams(off, {}), input_shape)
    assert _equal(s_on.params, s_off.params)
    n = int(dd.x_train.shape[0])
    np.testing.assert_array_equal(jtrain.epoch_indices(on, s_on, n), jtrain.epoch_indices(off, s_off, n))
    assert set(on.hparam_names()) - set(off.hparam_names()) == {"flip_rate", "cutout_size", "mixup_alpha"}


def test_identity_augmentations_leave_the_run_bit_for_bit(digits) -> None:
    """flip at rate 0, cutout of size 0 and mixup at alpha 0 are identities: with dropout on, the run is the
    run without augmentation bit for bit, so the dropout masks and the batches are the same."""
    dd, _ = digits
    on, off = _config(("flip", "cutout", "mixup")), _config(())
    hp_on = jtrain.validate_hparams(on, {"flip_rate": 0.0, "cutout_size": 0.0, "mixup_alpha": 0.0})
    hp_off = jtrain.validate_hparams(off, {})
    key = seed_key(3)
    st_on, h_on = jax.jit(jtrain.make_train(on, dd))(key, jtrain.as_arrays(hp_on))
    st_off, h_off = jax.jit(jtrain.make_train(off, dd))(key, jtrain.as_arrays(hp_off))
    assert _equal(st_on.params, st_off.params)
    assert _equal(h_on, h_off)
    # and augmenting does change the run
    hp = dict(hp_on, flip_rate=0.5)
    _, h_flip = jax.jit(jtrain.make_train(on, dd))(key, jtrain.as_arrays(hp))
    assert not np.array_equal(h_flip["train_loss"], h_off["train_loss"])


def test_population_members_equal_standalone_runs_with_augmentation(digits) -> None:
    dd, _ = digits
    config = _config(ALL)
    train = jtrain.make_train(config, dd)
    members = [(0, 0.5, 4.0, 0.2), (1, 0.0, 0.0, 0.0), (2, 1.0, 2.0, 1.0), (3, 0.3, 3.0, 0.4)]
    hps = [
        jtrain.validate_hparams(config, {"flip_rate": r, "cutout_size": s, "mixup_alpha": a}) for _, r, s, a in members
    ]
    keys = jnp.stack([seed_key(m[0]) for m in members])
    pop_state, pop_hist = jax.jit(jax.vmap(train))(keys, _stack(hps))
    sub_state, sub_hist = jax.jit(jax.vmap(train))(keys[1:3], _stack(hps[1:3]))  # a population of another size
    alone = jax.jit(train)
    for i, (seed, *_) in enumerate(members):
        st, hist = alone(seed_key(seed), jtrain.as_arrays(hps[i]))
        member = lambda tree, j=i: jax.tree_util.tree_map(lambda x: x[j], tree)  # noqa: E731
        assert _equal(st.params, member(pop_state.params)), f"member {i}: params differ from its standalone run"
        assert _equal(hist, member(pop_hist)), f"member {i}: history differs from its standalone run"
        if 1 <= i <= 2:
            assert _equal(hist, jax.tree_util.tree_map(lambda x, j=i - 1: x[j], sub_hist))
    assert len({float(v) for v in pop_hist["train_loss"][:, -1]}) == 4  # the members really differ


def test_a_grid_over_augmentation_hyperparameters_is_one_program() -> None:
    exp = small_exp(
        augment=("crop", "flip", "cutout", "mixup"),
        crop_padding=2,
        grid={"mixup_alpha": [0.0, 0.4], "cutout_size": [0, 4]},
        epochs=1,
    )
    res = runner.run(exp, progress=False, plot=False)
    assert res.compiles == {"group0/init": 1, "group0/epoch": 1}
    assert len(res.arms) == 4
    finals = {a.name: tuple(res.history(a.name, "train_loss")[:, -1]) for a in res.arms}
    assert len(set(finals.values())) == 4


@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"augment": ("crop", "rotate")}, "'augment' must be a list of distinct names among ['crop', 'flip', 'cutout'"),
        ({"augment": ("flip", "flip")}, "a name given twice"),
        ({"augment": ("mixup",), "loss": "mse"}, "augment 'mixup' mixes the losses of two label sets"),
        ({"augment": ("crop",), "crop_padding": -1}, "'crop_padding' must be an int >= 0"),
        ({"augment": ("flip",), "hparams": {"flip_rate": 1.5}}, "'flip_rate' must lie in [0, 1]"),
        ({"augment": ("cutout",), "hparams": {"cutout_size": -3}}, "'cutout_size' must lie in [0, inf)"),
        ({"hparams": {"mixup_alpha": 0.2}}, "hyperparameter(s) ['mixup_alpha'] are not read by arm"),
    ],
)
def test_augmentation_settings_are_checked_before_anything_loads(kw, fragment: str) -> None:
    with pytest.raises(ValueError) as e:
        jexp.validate(small_exp(**kw))
    assert fragment in str(e.value), str(e.value)


def test_image_augmentations_need_images_mixup_does_not() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(96, 6)).astype(np.float32), (np.arange(96) % 3).astype(np.int32)
    flat = data.arrays(x[:64], y[:64], x[64:], y[64:], num_classes=3, name="flat")
    common = dict(dataset=flat, preprocess="raw", n_val=16, n_train=None, batch_size=16, eval_batch_size=16, epochs=1)
    with pytest.raises(ValueError, match=r"augment \['flip'\] needs NHWC images.*shape \(6,\)"):
        runner.run(small_exp(augment=("flip",), **common), progress=False, plot=False)
    res = runner.run(small_exp(augment=("mixup",), **common), progress=False, plot=False)
    assert np.all(np.isfinite(res.history("baseline", "train_loss")))


def test_augment_from_the_command_line() -> None:
    exp = small_exp()
    one = jexp.with_settings(exp, jexp.parse_set(["augment=[crop,flip]", "crop_padding=2"], exp))
    assert tuple(one.augment) == ("crop", "flip") and one.crop_padding == 2 and not one.grid
    swept = jexp.with_settings(exp, jexp.parse_set(["augment=[['flip'],['crop','flip']]"], exp))
    assert swept.grid == {"augment": [("flip",), ("crop", "flip")]}
    arms = jexp.validate(swept)
    assert [a.name for a in arms] == ["augment=flip", "augment=cropxflip"]
    assert len({jexp.static_signature(a.experiment) for a in arms}) == 2  # augmentation is part of the program
