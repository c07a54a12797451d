"""Learning-rate decay: constant vs x0.98 per epoch vs step vs cosine.

MNIST-1D, an MLP 40-128-128-10 (ReLU, He init), SGD + momentum 0.9 at initial learning rates
{0.01, 0.03, 0.1, 0.3, 1} (vmapped), batch 100, 40 epochs, 8 seeds. Schedules (static, one program each):

* ``constant``;
* ``per_epoch_decay``: lr * 0.98^epoch (the guide's rule);
* ``step``: lr * 0.9^epoch, in steps at every epoch boundary (``decay_every_epochs`` left at its
  default 1; 0.9 instead of the usual x0.1 every few epochs);
* ``cosine``: from lr to 0 over the 40 epochs.
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="lr_decay",
    description=(
        "constant vs x0.98/epoch vs step (x0.9/epoch) vs cosine, MNIST-1D MLP 128-128, "
        "SGD+momentum at lr {0.01, 0.03, 0.1, 0.3, 1}, 8 seeds"
    ),
    dataset="mnist1d",
    preprocess="standardize",
    model="mlp",
    model_kwargs={"widths": (128, 128)},
    optimizer="momentum",
    hparams={"gamma": 0.9},
    epochs=40,
    batch_size=100,
    arms=[
        {"name": "constant", "schedule": "constant"},
        {"name": "x0.98/epoch", "schedule": "per_epoch_decay", "decay_rate": 0.98},
        {"name": "step x0.9/epoch", "schedule": "step", "decay_rate": 0.9},
        {"name": "cosine", "schedule": "cosine", "alpha": 0.0},
    ],
    grid={"learning_rate": [0.01, 0.03, 0.1, 0.3, 1.0]},
    seeds=8,
    metrics=("test_acc", "val_acc", "train_loss"),
)
