"""Dropout on MNIST-1D: does dropout speed up training and reach higher accuracy? (the main job)

An MLP 40-256-256-10 trained with Adam on MNIST-1D (generated offline), dropout rate in
{0, 0.2, 0.5, 0.8}, 8 seeds: 32 members, one compiled program.
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="dropout_mnist1d",
    description="dropout rate {0, 0.2, 0.5, 0.8} on an MNIST-1D MLP, Adam, 8 seeds",
    dataset="mnist1d",
    preprocess="standardize",
    model="mlp",
    model_kwargs={"widths": (256, 256)},
    optimizer="adam",
    hparams={"learning_rate": 1e-3},
    epochs=30,
    batch_size=100,
    grid={"dropout_rate": [0.0, 0.2, 0.5, 0.8]},
    seeds=8,
    metrics=("test_acc", "val_acc", "train_loss", "val_loss"),
    target=0.6,
)
