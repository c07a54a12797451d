"""Small experiments that several test modules train: a digits MLP that compiles and runs in seconds."""

from __future__ import annotations

from typing import Any

from jtricks.engine import experiment as jexp


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
