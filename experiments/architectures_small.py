"""Architectures on 10% of Fashion-MNIST (5,500 training images): does the best model change with the data?

The arms of ``architectures`` (MLP, notebook CNN, CNN+BN, ResNet-20, Inception), Adam (lr 1e-3),
batch 64, on a fixed subset of 5,500 training images (the same validation and test sets), 15 epochs
(1,290 steps, 30% of the full run's 4,295), 8 seeds.
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
    name="architectures_small",
    description="MLP vs CNN vs CNN+BN vs ResNet-20 vs Inception on 10% of Fashion-MNIST (5,500 images), Adam, 15 epochs, 8 seeds",
    dataset="fashion_mnist",
    preprocess="unit",
    n_train=5500,
    n_val=5000,
    optimizer="adam",
    hparams={"learning_rate": 1e-3},
    epochs=15,
    batch_size=64,
    arms=ARMS,
    seeds=8,
    metrics=("test_acc", "val_acc", "train_acc", "train_loss", "val_loss"),
    target=0.85,
)
