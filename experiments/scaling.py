"""Input scaling: raw [0, 255] vs [0, 1] vs [-1, 1] vs standardized pixels (the guide: "keep values in range").

Fashion-MNIST (10,000 training images, 2,000 validation, the 10,000 test images), an MLP
784-128-10 (ReLU, He init) trained with SGD + momentum 0.9, batch 64, 4 epochs. The preprocessing
is static (one compiled program per choice); the learning rate {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1} is vmapped
data, so every scaling gets its best learning rate: raw inputs are not only a matter of a smaller
step. 4 x 6 arms x 8 seeds = 192 members.

The guide's precision example (float32 absorbs 1e-10 + 1e10) is `jtricks.data.float32_absorbs`;
run this file as a script to print it: `python experiments/scaling.py`.
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="scaling",
    description=(
        "raw [0,255] vs [0,1] vs [-1,1] vs standardized inputs, Fashion-MNIST MLP 784-128-10, "
        "SGD+momentum x 6 learning rates, 8 seeds"
    ),
    dataset="fashion_mnist",
    n_train=10000,
    n_val=2000,
    model="mlp",
    model_kwargs={"widths": (128,)},
    optimizer="momentum",
    hparams={"gamma": 0.9},
    epochs=4,
    batch_size=64,
    grid={
        "preprocess": ["raw", "unit", "symmetric", "standardize"],
        "learning_rate": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1],
    },
    baseline="preprocess=raw,learning_rate=0.0001",
    seeds=8,
    metrics=("test_acc", "val_acc", "train_loss"),
)

if __name__ == "__main__":
    import numpy as np

    from jtricks.data import float32_absorbs

    for small, big in ((1e-10, 1e10), (100.0, 1e10), (1000.0, 1e10), (1e-10, 1.0), (1e-6, 1.0)):
        print(
            f"float32: {small:g} + {big:g} == {big:g}? {float32_absorbs(small, big)}   "
            f"(float64: {float32_absorbs(small, big, np.float64)})"
        )
