"""Longer training for the convnets of ``architectures``: the notebook CNN, CNN+BN and ResNet-20 on Fashion-MNIST.

``architectures`` trains every model for the dropout notebook's 5 epochs at a constant learning rate, where
ResNet-20 stops at 0.91. This run gives the convnets 15 epochs with a cosine decay of Adam's learning
rate (1e-3 to 0) and otherwise the same settings (pixels in [0, 1], batch 64, 5,000 validation images,
8 seeds), to test the reference target "CNN+BN or ResNet >= 0.92 test accuracy" under a budget where
the models are trained out. Heavy on a CPU: run it on a GPU (experiments/gpu_runs.sh).
"""

import dataclasses
from pathlib import Path

from jtricks.experiment import load_experiment

_BASE = load_experiment(str(Path(__file__).with_name("architectures.py")))

EXPERIMENT = dataclasses.replace(
    _BASE,
    name="architectures_long",
    description="Notebook CNN vs CNN+BN vs ResNet-20 on Fashion-MNIST, Adam with cosine decay, 15 epochs, 8 seeds",
    arms=[a for a in _BASE.arms if a["name"] in ("cnn", "cnn_bn", "resnet")],
    schedule="cosine",
    hparams={**_BASE.hparams, "alpha": 0.0},
    epochs=15,
    target=0.92,
)
