"""Architectures on Fashion-MNIST: MLP vs the notebook CNN vs CNN+BN vs ResNet vs Inception.

All with Adam (lr 1e-3), batch 64, pixels in [0, 1], 5,000 training images held out for
validation, 5 epochs (as the dropout notebook), 8 seeds; each architecture is its own compiled program:

* ``mlp``: 784-256-128-100-10 (the Fashion-MNIST benchmark's MLP), 248k parameters;
* ``cnn``: the dropout notebook's CNN, 34.8k parameters;
* ``cnn_bn``: the same with batch norm after each conv;
* ``resnet``: ResNet-20 (3 stages x 3 basic blocks, 16/32/64 channels, batch norm), 272k parameters;
* ``inception``: two Inception blocks (GoogLeNet style, no batch norm), 29.3k parameters.

The same on a 10% subset: ``architectures_small``. Parameters and time per epoch:
`python experiments/plots/architectures_table.py RUN_DIR [RUN_DIR_SMALL] --out docs/results/architectures`.
Heavy on a CPU: run it on a GPU (experiments/gpu_runs.sh).
"""

from jtricks.experiment import Experiment

ARMS = [
    {"name": "mlp", "model": "mlp", "model.widths": (256, 128, 100)},
    {"name": "cnn", "model": "cnn"},
    {"name": "cnn_bn", "model": "cnn", "model.norm": "batch"},
    {"name": "resnet", "model": "resnet"},
    {"name": "inception", "model": "inception"},
]

EXPERIMENT = Experiment(
    name="architectures",
    description="MLP vs CNN vs CNN+BN vs ResNet-20 vs Inception on Fashion-MNIST (55k images), Adam, 5 epochs, 8 seeds",
    dataset="fashion_mnist",
    preprocess="unit",
    n_val=5000,
    optimizer="adam",
    hparams={"learning_rate": 1e-3},
    epochs=5,
    batch_size=64,
    arms=ARMS,
    seeds=8,
    metrics=("test_acc", "val_acc", "train_acc", "train_loss", "val_loss"),
    target=0.9,
)
