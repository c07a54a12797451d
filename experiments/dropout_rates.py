"""Dropout at the low end of the guide's range: is a rate of 0.1 already useful?

The guide recommends rates of 10-50%; the main job (`dropout_mnist1d`) tried {0, 0.2, 0.5, 0.8}. The same MLP
40-256-256-10 (ReLU, He init), Adam (lr 3e-3, batch 100), 30 epochs on MNIST-1D, at dropout rates
{0, 0.1, 0.2, 0.3, 0.5} after each hidden layer, 8 seeds: 40 members in one compiled program (the rate is vmapped
data). Baseline: rate 0. About a minute on 2 CPU cores.
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="dropout_rates",
    description="dropout rate {0, 0.1, 0.2, 0.3, 0.5} on an MNIST-1D MLP 256-256, Adam, 30 epochs, 8 seeds",
    dataset="mnist1d",
    preprocess="standardize",
    model="mlp",
    model_kwargs={"widths": (256, 256)},
    optimizer="adam",
    hparams={"learning_rate": 3e-3},
    epochs=30,
    batch_size=100,
    grid={"dropout_rate": [0.0, 0.1, 0.2, 0.3, 0.5]},
    seeds=8,
    metrics=("test_acc", "val_acc", "train_acc", "train_loss", "val_loss"),
    target=0.6,
)
