"""Dropout on MNIST-1D: does dropout reach a higher accuracy? (the main job: `make run`)

The guide's dropout claim on data that needs no download: an MLP 40-256-256-10 (ReLU, He init)
trained with Adam (lr 3e-3, batch 100) for 30 epochs on MNIST-1D (generated offline: 3,500 train /
500 validation / 1,000 test signals), dropout rate in {0, 0.2, 0.5, 0.8} after each hidden layer,
8 seeds: 32 members in ONE compiled program (the rate is vmapped data).

This MLP overfits MNIST-1D (train accuracy -> 1 while the validation accuracy peaks around epoch
15-20), which is where dropout should help. Reference: the MNIST-1D paper's MLP reaches 68% test
accuracy (Greydanus, 2020). About 1-2 minutes on 2 CPU cores.
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="dropout_mnist1d",
    description="dropout rate {0, 0.2, 0.5, 0.8} on an MNIST-1D MLP 256-256, Adam, 30 epochs, 8 seeds",
    dataset="mnist1d",
    preprocess="standardize",
    model="mlp",
    model_kwargs={"widths": (256, 256)},
    optimizer="adam",
    hparams={"learning_rate": 3e-3},
    epochs=30,
    batch_size=100,
    grid={"dropout_rate": [0.0, 0.2, 0.5, 0.8]},
    seeds=8,
    metrics=("test_acc", "val_acc", "train_acc", "train_loss", "val_loss"),
    target=0.6,
)
