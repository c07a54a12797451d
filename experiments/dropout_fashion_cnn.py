"""The guide's dropout notebook, seed-replicated: the notebook CNN on Fashion-MNIST.

Conv32 3x3 -> MaxPool 2 -> Conv64 3x3 -> MaxPool 2 -> Flatten -> Dropout(d) -> Dense 10 (34,826
parameters; `jtricks.models.cnn()`), Adam (lr 1e-3), batch 64, 5 epochs, dropout rate in
{0, 0.2, 0.5, 0.8}, 8 seeds: 32 members in one compiled program. Pixels scaled to [0, 1]; 5,000
training images held out for validation (the notebook reports validation accuracy).

The notebook (Keras, MNIST, one seed) reported validation accuracy 0.9894 / 0.9885 / 0.9899 / 0.9878
after 5 epochs; here the question is which of such differences 8 seeds can resolve.
Heavy on a CPU (about 50k images x 5 epochs x 32 members): run it on a GPU (experiments/gpu_runs.sh).
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="dropout_fashion_cnn",
    description=(
        "the dropout notebook: CNN on Fashion-MNIST, dropout {0, 0.2, 0.5, 0.8}, Adam, batch 64, 5 epochs, 8 seeds"
    ),
    dataset="fashion_mnist",
    preprocess="unit",
    n_val=5000,
    model="cnn",
    optimizer="adam",
    hparams={"learning_rate": 1e-3},
    epochs=5,
    batch_size=64,
    grid={"dropout_rate": [0.0, 0.2, 0.5, 0.8]},
    seeds=8,
    metrics=("test_acc", "val_acc", "train_loss", "val_loss"),
    target=0.9,
)
