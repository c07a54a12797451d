"""Fighting overfitting: 1,000 Fashion-MNIST images and an over-sized MLP.

An MLP 784-256-256-10 (268,800 parameters for 1,000 training images), Adam (lr 1e-3), batch 32,
20 epochs, 8 seeds. Arms:

* ``none``: plain Adam;
* ``l2=1e-3`` / ``l2=1e-2``: the penalty lambda * 1/2 ||W||^2 on the kernels added to the loss;
* ``wd=0.1`` / ``wd=1``: decoupled weight decay (AdamW: u = -eta (adam_direction + wd * theta));
* ``dropout=0.5``: dropout after each hidden layer;
* ``early_stopping``: monitor the validation loss, patience 3 epochs, restore the best weights;
* ``ema``: evaluate an exponential moving average of the weights (decay 0.99 per step);
* ``swa``: evaluate the uniform average of the end-of-epoch weights from epoch 10.

L2 and weight decay are switched on for every arm with coefficient 0 by default (a zero
coefficient changes nothing, bit for bit), so that none, L2, weight decay and dropout share one
compiled program. The averaged weights of ``ema`` / ``swa`` are reported as ``avg_test_acc``.

The smallest test-accuracy difference of interest is 0.02 (the size of the gain averaging is expected to give):
``equivalence_margin`` makes a comparison the difference test leaves open "equivalent" (TOST within +-0.02) or
"not resolved".

``train_eval_acc`` is the accuracy on the 1,000 training images in eval mode (dropout off), the clean
side of a train/validation gap (``train_acc`` averages the steps of an epoch in train mode).
The ensemble of the 8 seeds of ``none`` (averaged softmax probabilities) needs the final weights, so
it is computed when this file is run as a script:

    python experiments/overfitting.py --out runs/overfitting

which runs the experiment, writes the usual results folder, and adds ``ensemble.md`` to it.
"""

from jtricks.experiment import Experiment

EXPERIMENT = Experiment(
    name="overfitting",
    description=(
        "none vs L2 vs weight decay vs dropout vs early stopping vs EMA/SWA, "
        "1,000 Fashion-MNIST images, MLP 256-256, 8 seeds"
    ),
    dataset="fashion_mnist",
    preprocess="unit",
    n_train=1000,
    n_val=1000,
    model="mlp",
    model_kwargs={"widths": (256, 256)},
    optimizer="adam",
    l2=True,
    weight_decay=True,
    hparams={"learning_rate": 1e-3, "l2": 0.0, "weight_decay": 0.0},
    epochs=20,
    batch_size=32,
    arms=[
        {"name": "none"},
        {"name": "l2=1e-3", "l2": 1e-3},
        {"name": "l2=1e-2", "l2": 1e-2},
        {"name": "wd=0.1", "weight_decay": 0.1},
        {"name": "wd=1", "weight_decay": 1.0},
        {"name": "dropout=0.5", "dropout_rate": 0.5},
        {"name": "early_stopping", "early_stopping": True, "patience": 3},
        {"name": "ema", "averaging": "ema", "ema_decay": 0.99},
        {"name": "swa", "averaging": "swa", "swa_start": 10},
    ],
    seeds=8,
    equivalence_margin={"test_acc": 0.02},
    train_eval=1000,
    metrics=(
        "test_acc",
        "avg_test_acc",
        "val_acc",
        "train_eval_acc",
        "train_acc",
        "val_loss",
        "test_loss",
        "train_loss",
    ),
)


def member_test_logits(result, arm_name: str):
    """``(logits, labels, seeds)`` of the test set for every seed of arm ``arm_name`` of ``result`` (a
    :class:`jtricks.runner.RunResult`; members are its ``final_states`` ``"arm/seed=N"``): logits of shape
    ``(members, n_test, classes)``, members in seed order."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jtricks import experiment as jexp
    from jtricks import prepare, regularize

    arm = {a.name: a for a in result.arms}[arm_name]
    data, num_classes, _ = prepare.prepare_data(arm.experiment)[:3]
    n = int(np.asarray(data.test_mask).sum())
    x, y = data.x_test[:n], data.y_test[:n]
    model = jexp.build_model(arm.experiment, num_classes)
    prefix = arm_name + "/seed="
    seeds = sorted(int(k[len(prefix) :]) for k in result.final_states if k.startswith(prefix))
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[result.final_states[f"{prefix}{s}"] for s in seeds])
    logits = regularize.ensemble_logits(lambda p, xb: model.apply(p, {}, xb, train=False)[0], stacked, x)
    return logits, y, seeds


def ensemble_report(result, exp: Experiment = EXPERIMENT, arms: tuple[str, ...] = ("none", "dropout=0.5")) -> str:
    """Test accuracy of the ensemble of each arm's seeds (mean of the members' softmax probabilities).

    ``result`` is the :class:`jtricks.runner.RunResult` of ``exp`` (:func:`member_test_logits`). Returns a Markdown
    table: arm, members, mean member accuracy, ensemble accuracy.
    """
    import jax.numpy as jnp
    import numpy as np

    from jtricks import regularize

    rows = ["| arm | members | mean member test acc | ensemble test acc |", "|---|---:|---:|---:|"]
    for arm_name in arms:
        logits, y, seeds = member_test_logits(result, arm_name)
        member_acc = np.asarray(jnp.mean((jnp.argmax(logits, -1) == y[None]).astype(jnp.float32), axis=1))
        ens = float(regularize.ensemble_accuracy(logits, y))
        rows.append(f"| {arm_name} | {len(seeds)} | {member_acc.mean():.4f} | {ens:.4f} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import argparse
    from pathlib import Path

    from jtricks import runner

    p = argparse.ArgumentParser(description="run the overfitting experiment and add the ensemble of the seeds")
    p.add_argument("--out", default="runs/overfitting")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    args = p.parse_args()
    import dataclasses

    exp = EXPERIMENT
    if args.seeds:
        exp = dataclasses.replace(exp, seeds=args.seeds)
    if args.epochs:
        exp = dataclasses.replace(exp, epochs=args.epochs)
    res = runner.run(exp, out_dir=args.out)
    table = ensemble_report(res, exp)
    text = (
        f"# overfitting: ensemble of the seeds\n\nThe {exp.seeds} members of an arm (different seeds: initial weights, "
        f"data order, dropout masks) averaged as an ensemble (mean softmax probabilities), test accuracy on the "
        f"10,000 test images.\n\n{table}"
    )
    Path(args.out, "ensemble.md").write_text(text)
    print(text)
