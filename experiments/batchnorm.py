"""Batch normalization: higher accuracy and faster training, across learning rates?

MNIST-1D, an MLP 40-128-128-128-10 (ReLU, He init) with or without batch norm after every hidden
dense layer (static: 2 compiled programs), SGD + momentum 0.9 at learning rates {0.003, 0.01, 0.03, 0.1, 0.3, 1}
(vmapped), batch 100, 20 epochs, 8 seeds. "epochs to target" is the first epoch at which the mean
validation accuracy reaches 0.55.
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="batchnorm",
    description=(
        "with vs without batch norm x learning rate {0.003, 0.01, 0.03, 0.1, 0.3, 1}, MNIST-1D MLP 128x3, "
        "SGD+momentum, 8 seeds"
    ),
    dataset="mnist1d",
    preprocess="standardize",
    model="mlp",
    model_kwargs={"widths": (128, 128, 128)},
    optimizer="momentum",
    hparams={"gamma": 0.9},
    epochs=20,
    batch_size=100,
    grid={"model.norm": [None, "batch"], "learning_rate": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]},
    seeds=8,
    metrics=("test_acc", "val_acc", "train_loss"),
    target=0.55,
)
