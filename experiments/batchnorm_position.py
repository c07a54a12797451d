"""Batch norm before or after the activation?

The guide places batch norm between the dense layer and its activation (Ioffe & Szegedy, 2015); it is often put
after the activation instead. The `batchnorm` MLP (MNIST-1D, 40-128-128-128-10, ReLU, He init), SGD + momentum 0.9
at learning rates {0.03, 0.1, 0.3} (vmapped), batch 100, 20 epochs, 8 seeds; arms: no normalization (the
baseline), batch norm before the activation (`act(BN(h W))`), and after it (`BN(act(h W + b))`,
`model.norm_position="after"`): 3 compiled programs.
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="batchnorm_position",
    description="no norm vs batch norm before vs after the activation x lr {0.03, 0.1, 0.3}, MNIST-1D MLP 128x3",
    dataset="mnist1d",
    preprocess="standardize",
    model="mlp",
    model_kwargs={"widths": (128, 128, 128)},
    optimizer="momentum",
    hparams={"gamma": 0.9},
    epochs=20,
    batch_size=100,
    arms=[
        {"name": "none"},
        {"name": "bn_before", "model.norm": "batch"},
        {"name": "bn_after", "model.norm": "batch", "model.norm_position": "after"},
    ],
    grid={"learning_rate": [0.03, 0.1, 0.3]},
    seeds=8,
    metrics=("test_acc", "val_acc", "train_loss"),
)
