"""Optimizers: do momentum and Adam beat plain SGD, and how sensitive is each to its learning rate?

MNIST-1D, an MLP 40-128-128-10 (ReLU, He init), batch 100, 15 epochs, 8 seeds. Seven optimizers
(static: one compiled program each) x nine learning rates 1e-3 ... 10 in half-decade steps
(vmapped data): 7 x 9 x 8 = 504 members. Defaults of `jtricks.optim`: momentum / Nesterov
gamma 0.9, Adam b1 0.9 b2 0.999, RMSProp decay 0.9, Adagrad initial accumulator 0.1; normalized
SGD takes steps of length lr along g / ||g||.

The best learning rate of each optimizer and the accuracy-vs-learning-rate curves:
`python experiments/plots/lr_sensitivity.py RUN_DIR --factor optimizer --out docs/results/optimizers`.
"""

from jtricks.experiment import Experiment

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "normalized_sgd"]

EXPERIMENT = Experiment(
    name="optimizers",
    description=(
        "SGD, momentum, Nesterov, Adagrad, RMSProp, Adam, normalized SGD x 9 learning rates, "
        "MNIST-1D MLP 128-128, 8 seeds"
    ),
    dataset="mnist1d",
    preprocess="standardize",
    model="mlp",
    model_kwargs={"widths": (128, 128)},
    epochs=15,
    batch_size=100,
    grid={
        "optimizer": OPTIMIZERS,
        "learning_rate": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0],
    },
    seeds=8,
    metrics=("test_acc", "val_acc", "train_loss"),
)
