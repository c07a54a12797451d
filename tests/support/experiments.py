"""Small experiments that several test modules train: a digits MLP that compiles and runs in seconds."""

from __future__ import annotations

from typing import Any

import numpy as np

from jtricks import data as jdata
from jtricks.engine import experiment as jexp
from jtricks.engine import search as jsearch


def small_digits_mlp(**changes: Any) -> jexp.Experiment:
    """A one-hidden-layer MLP (32 units, Adam 3e-3) on 640 digits images, 3 epochs, 2 seeds; ``changes`` replace
    any field."""
    base: dict[str, Any] = dict(
        name="tiny",
        description="tiny digits MLP",
        dataset="digits",
        preprocess="unit",
        n_val=200,
        n_train=640,
        model="mlp",
        model_kwargs={"widths": (32,)},
        optimizer="adam",
        hparams={"learning_rate": 3e-3},
        epochs=3,
        batch_size=64,
        eval_batch_size=128,
        seeds=2,
    )
    return jexp.Experiment(**{**base, **changes})


def search_toy() -> jexp.Experiment:
    """The search tests' toy problem: 10 classes from a noisy linear score of 8 Gaussian features (320 examples),
    an MLP of 16 units under SGD, the learning rate sampled log-uniformly in [1e-3, 1] (4 samples, 1 seed, 3
    epochs). Halving and PBT run on it with the same population size, so they share compiled programs."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(320, 8)).astype(np.float32)
    y = np.digitize(x @ rng.normal(size=8), np.linspace(-2, 2, 9)).astype(np.int32)
    return jexp.Experiment(
        name="search_toy",
        dataset=jdata.arrays(x[:256], y[:256], x[256:], y[256:], num_classes=10, name="toy"),
        preprocess="raw",
        n_val=64,
        model="mlp",
        model_kwargs={"widths": (16,)},
        optimizer="sgd",
        epochs=3,
        batch_size=32,
        eval_batch_size=64,
        seeds=1,
        grid={"learning_rate": jsearch.loguniform(1e-3, 1.0)},
        samples=4,
        sample_seed=3,
        hparams={"dropout_rate": 0.0},
        metrics=("val_acc", "train_loss"),
    )
