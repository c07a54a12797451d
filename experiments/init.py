"""Weight initialization in a deep narrow MLP: N(0,1) vs uniform vs gaussian vs LeCun vs Glorot vs He.

MNIST-1D, an MLP with 10 or 20 hidden layers of 32 units, tanh or ReLU, six initializers
(`jtricks.init`: standard_normal = N(0, 1); uniform = U(+-1/sqrt(n_in)); gaussian = N(0, (1/n_in)^2);
lecun_normal = N(0, 1/n_in); glorot_normal = N(0, 2/(n_in+n_out)); he_normal = N(0, 2/n_in)),
trained with SGD + momentum 0.9 (lr 0.02, batch 100) for 30 epochs, 8 seeds. Every (depth,
activation, init) is a static choice: 24 compiled programs.

The per-layer activation std and gradient norm at initialization (the picture of vanishing /
exploding signals) are plotted by `python experiments/plots/init_by_depth.py --out docs/results/init`.
"""

from jtricks.experiment import Experiment

INITS = ["standard_normal", "uniform", "gaussian", "lecun_normal", "glorot_normal", "he_normal"]

EXPERIMENT = Experiment(
    name="init",
    description="6 initializers x {tanh, relu} x {10, 20} hidden layers of 32 units, MNIST-1D, SGD+momentum, 8 seeds",
    dataset="mnist1d",
    preprocess="standardize",
    model="mlp",
    optimizer="momentum",
    hparams={"learning_rate": 0.02, "gamma": 0.9},
    epochs=30,
    batch_size=100,
    arms=[
        {"name": "depth10", "model.widths": (32,) * 10},
        {"name": "depth20", "model.widths": (32,) * 20},
    ],
    grid={"model.activation": ["tanh", "relu"], "model.init": INITS},
    baseline="depth10,activation=tanh,init=glorot_normal",
    seeds=8,
    metrics=("test_acc", "val_acc", "train_loss"),
)
