"""Architectures on 10% of Fashion-MNIST (5,500 training images): does the best model change with the data?

The arms of ``architectures`` (MLP, notebook CNN, CNN+BN, ResNet-20, Inception), Adam (lr 1e-3),
batch 64, on a fixed subset of 5,500 training images (the same validation and test sets), 15 epochs
(1,290 steps, 30% of the full run's 4,295), 8 seeds.
Heavy on a CPU: run it on a GPU (experiments/gpu_runs.sh).
"""

import dataclasses
from pathlib import Path

from jtricks.experiment import load_experiment

# the same arms and settings as `architectures` (loaded from the file beside this one), on 10% of the data
EXPERIMENT = dataclasses.replace(
    load_experiment(str(Path(__file__).with_name("architectures.py"))),
    name="architectures_small",
    description=(
        "MLP vs CNN vs CNN+BN vs ResNet-20 vs Inception on 10% of Fashion-MNIST (5,500 images), "
        "Adam, 15 epochs, 8 seeds"
    ),
    n_train=5500,
    epochs=15,
    target=0.85,
)
