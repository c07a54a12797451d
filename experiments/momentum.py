"""The momentum coefficient: how much does gamma matter, at each learning rate?

SGD with momentum ``v <- gamma v + g``, ``theta <- theta - lr v`` (`jtricks.optim`'s `momentum`) at
gamma in {0, 0.5, 0.9, 0.99} (gamma = 0 is plain SGD) x learning rates {0.01, 0.03, 0.1, 0.3}, on the MNIST-1D MLP
40-128-128-10 of `optimizers` (ReLU, He init), batch 100, 15 epochs, 8 seeds. Gamma and the learning rate are both
vmapped data: 128 members in one compiled program. The step's long-run size is about lr / (1 - gamma), so the
comparison at each group's best learning rate (`experiments/plots/lr_sensitivity.py RUN --baseline gamma=0`)
separates "momentum helps" from "momentum is a larger step".
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="momentum",
    description="momentum gamma {0, 0.5, 0.9, 0.99} x lr {0.01, 0.03, 0.1, 0.3}, MNIST-1D MLP 128-128, 8 seeds",
    dataset="mnist1d",
    preprocess="standardize",
    model="mlp",
    model_kwargs={"widths": (128, 128)},
    optimizer="momentum",
    epochs=15,
    batch_size=100,
    grid={"gamma": [0.0, 0.5, 0.9, 0.99], "learning_rate": [0.01, 0.03, 0.1, 0.3]},
    seeds=8,
    metrics=("test_acc", "val_acc", "train_loss"),
)
