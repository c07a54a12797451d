"""Tuned optimizers: SGD, momentum and Adam compared, each at its own learning rate tuned on validation.

MNIST-1D, an MLP 40-128-128-10, batch 100, 8 epochs. Tuning: 16 learning rates drawn log-uniformly from
[1e-3, 1] (the same 16 for every optimizer, `sample_seed` 0), one tuning seed (seed 8, disjoint from the
comparison's), successive halving within each optimizer at epochs 2 and 4 (16 -> 8 -> 4 configurations),
the value with the best validation accuracy at epoch 8 kept. Then 8 seeds x 3 optimizers at the tuned
values. `python experiments/plots/tuning_vs_grid.py` compares the halving's choice and compute with the
exhaustive grid's (the 16 values of every optimizer run for all 8 epochs).
"""

from jtricks.experiment import Experiment
from jtricks.search import Halving, loguniform
from jtricks.tuning import Tune

EXPERIMENT = Experiment(
    name="tuned_optimizers",
    description=(
        "SGD, momentum, Adam, each with its learning rate tuned by successive halving, MNIST-1D MLP 128-128, 8 seeds"
    ),
    dataset="mnist1d",
    preprocess="standardize",
    model="mlp",
    model_kwargs={"widths": (128, 128)},
    epochs=8,
    batch_size=100,
    grid={"optimizer": ["sgd", "momentum", "adam"]},
    tune=Tune(
        factors={"learning_rate": loguniform(1e-3, 1.0)},
        samples=16,
        halving=Halving(rungs=(2, 4), keep=0.5, metric="val_acc"),
        seeds=1,
    ),
    seeds=8,
    metrics=("test_acc", "val_acc", "train_loss"),
)
