"""ResNet-20 on CIFAR-10 with the standard augmentation (random crops, padding 4, and horizontal flips) vs none.

He et al. (2016)'s CIFAR recipe: ResNet-20 (3 stages x 3 basic blocks, 16/32/64 channels, batch norm, projection
shortcuts; 272,474 parameters on 32x32x3), SGD with momentum 0.9 at learning rate 0.1, weight decay 5e-4 (the L2
penalty on the kernels: the gradient gains 5e-4 W, as in the usual SGD with weight decay), cosine decay to 0,
batch 128, 160 epochs (about the recipe's 64k updates), 8 seeds, pixels standardized with training statistics,
5,000 training images held out for validation. Two arms: ``crop+flip`` (``augment=("crop", "flip")``,
``crop_padding=4``, ``flip_rate`` 0.5; applied in the compiled step from each seed's own key stream) and
``none``, each its own compiled program: 16 members.

Needs the CIFAR-10 files: download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and unpack it into
``$JTRICKS_DATA`` (``$JTRICKS_DATA/cifar-10-batches-py/``), or point at the folder with
``--set 'dataset_kwargs={"path": "DIR"}'``. Needs a GPU for a reasonable time (16 members x 160 epochs x 45,000
images of ResNet-20); its accuracy and time are not measured yet.
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="cifar_resnet",
    description=(
        "ResNet-20 on CIFAR-10: crop (padding 4) + flip vs no augmentation, SGD momentum 0.9, weight decay 5e-4, "
        "cosine, batch 128, 160 epochs, 8 seeds"
    ),
    dataset="cifar10",
    preprocess="standardize",
    n_val=5000,
    model="resnet",
    optimizer="momentum",
    schedule="cosine",
    l2=True,
    hparams={"learning_rate": 0.1, "gamma": 0.9, "l2": 5e-4, "alpha": 0.0},
    augment=("crop", "flip"),
    crop_padding=4,
    epochs=160,
    batch_size=128,
    arms=[{"name": "crop+flip", "augment": ("crop", "flip")}, {"name": "none", "augment": ()}],
    baseline="none",
    seeds=8,
    metrics=("test_acc", "val_acc", "train_loss", "val_loss"),
)
