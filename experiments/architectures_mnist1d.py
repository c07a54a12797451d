"""Architectures on MNIST-1D: the MLP vs the paper's 1-D CNN (Greydanus, 2020: 68% vs 94%).

Adam, batch 100, 60 epochs (2,100 steps), 8 seeds; each architecture with its own learning rate
(set per arm):

* ``mlp``: 40-256-256-10, lr 3e-3 (the main job's MLP, no dropout);
* ``mlp_dropout``: the same with dropout 0.2;
* ``cnn1d``: 3 conv1d layers of 25 channels (kernels 5, 3, 3, stride 2) + dense, 5,210 parameters,
  lr 1e-2.

A translation-equivariant model with 15x fewer parameters should win on these shifted signals.
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="architectures_mnist1d",
    description="MLP vs MLP+dropout vs 1-D CNN on MNIST-1D, Adam, 60 epochs, 8 seeds",
    dataset="mnist1d",
    preprocess="standardize",
    optimizer="adam",
    epochs=60,
    batch_size=100,
    arms=[
        {"name": "mlp", "model": "mlp", "model.widths": (256, 256), "learning_rate": 3e-3},
        {"name": "mlp_dropout", "model": "mlp", "model.widths": (256, 256), "learning_rate": 3e-3, "dropout_rate": 0.2},
        {"name": "cnn1d", "model": "cnn1d", "learning_rate": 1e-2},
    ],
    seeds=8,
    metrics=("test_acc", "val_acc", "train_acc", "train_loss"),
)
