"""Gradient clipping on a second architecture: the MNIST-1D 1-D CNN.

`clipping` tested the claim on a deep MLP; here the 1-D CNN of `architectures_mnist1d` (3 conv1d layers of 25
channels + dense, 5,210 parameters) with SGD + momentum 0.9 at learning rates {0.01, 0.03, 0.1, 0.3, 1}
(vmapped), batch 100, 20 epochs, 8 seeds. Arms: no clipping, clipping the global gradient norm at theta = 1 and
theta = 10 (`clip_by_global_norm`, before momentum). Diverged members are frozen and counted.
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="clipping_cnn1d",
    description="no clipping vs clip-by-global-norm theta in {1, 10}, MNIST-1D 1-D CNN, SGD+momentum, 5 lr, 8 seeds",
    dataset="mnist1d",
    preprocess="standardize",
    model="cnn1d",
    optimizer="momentum",
    hparams={"gamma": 0.9},
    epochs=20,
    batch_size=100,
    arms=[
        {"name": "none"},
        {"name": "clip=1", "clip": True, "clip_norm": 1.0},
        {"name": "clip=10", "clip": True, "clip_norm": 10.0},
    ],
    grid={"learning_rate": [0.01, 0.03, 0.1, 0.3, 1.0]},
    seeds=8,
    metrics=("test_acc", "val_acc", "train_loss"),
)
