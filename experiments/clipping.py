"""Gradient clipping: does clipping the gradient norm tame exploding gradients?

A deep MLP (10 hidden layers of 64 ReLU units, He init) on MNIST-1D with SGD + momentum 0.9 at
learning rates {0.00625, 0.0125, 0.025, 0.05, 0.1, 0.2, 0.4} (vmapped, up to high ones), batch 100, 20 epochs, 8 seeds.
Arms: no clipping, clipping the global gradient norm at theta = 1 and theta = 10 (`clip_by_global_norm`, applied
before momentum). A member whose loss or gradient becomes non-finite is frozen and counted in the
`diverged` column; members that blow up into dead ReLUs without a NaN end at chance (~0.10).
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="clipping",
    description=(
        "no clipping vs clip-by-global-norm theta in {1, 10}, deep MLP 64x10, "
        "SGD+momentum at lr {0.00625, 0.0125, 0.025, 0.05, 0.1, 0.2, 0.4}, 8 seeds"
    ),
    dataset="mnist1d",
    preprocess="standardize",
    model="mlp",
    model_kwargs={"widths": (64,) * 10},
    optimizer="momentum",
    hparams={"gamma": 0.9},
    epochs=20,
    batch_size=100,
    arms=[
        {"name": "none"},
        {"name": "clip=1", "clip": True, "clip_norm": 1.0},
        {"name": "clip=10", "clip": True, "clip_norm": 10.0},
    ],
    grid={"learning_rate": [0.00625, 0.0125, 0.025, 0.05, 0.1, 0.2, 0.4]},
    seeds=8,
    metrics=("test_acc", "val_acc", "train_loss"),
)
