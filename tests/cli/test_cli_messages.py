"""What the command line says: ``--version``, "did you mean" for experiment names, ``--set`` keys, choice values
and model arguments, ``report`` on a folder that is no run, ``--quiet``, and a resumed run's one line (without
orbax's log noise). In-process calls of :func:`jtricks.cli.main`, their output read with ``capsys``."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from jtricks import cli, experiment
from jtricks.engine import checkpoint as jckpt

pytestmark = pytest.mark.slow  # compiles populations / runs whole experiments: left out of `-m "not slow"`

TINY = (
    "from jtricks.experiment import Experiment\n"
    "EXPERIMENT = Experiment(name='tiny', dataset='digits', preprocess='unit', n_val=100, n_train=256,\n"
    "    model='mlp', model_kwargs={'widths': (8,)}, hparams={'learning_rate': 3e-3}, epochs=1,\n"
    "    batch_size=64, eval_batch_size=256, seeds=1)\n"
)
BANNER = " arms x "


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    return f


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """The one line ``jtricks run`` prints for a user error (exit 2)."""
    assert cli.main(argv) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and BANNER not in ln]
    assert len(lines) == 1, lines
    return lines[0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert re.fullmatch(r"jtricks \d+\.\d+\.\d+\S* \(jax \S+, jaxlib \S+\)\n", capsys.readouterr().out)


def test_unknown_experiment_name_offers_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    line = _error_line(capsys, ["run", "dropout_mnistld"])
    assert line == (
        "jtricks run: unknown experiment 'dropout_mnistld'; did you mean 'dropout_mnist1d' or 'dropout_rates'? "
        "(`jtricks list` shows them all, or give a path to a .py file)"
    )


def test_unknown_set_key_offers_the_closest_keys_only(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _error_line(capsys, ["run", str(tiny), "--set", "dropout_rat=0.1"])
    assert line == "jtricks run: unknown setting 'dropout_rat'; did you mean 'dropout_rate' or 'model.dropout_rate'?"
    assert _error_line(capsys, ["run", str(tiny), "--set", "widths=[64]"]).endswith("did you mean 'model.widths'?")
    # nothing close: every setting once, never a field that only describes the run
    line = _error_line(capsys, ["run", str(tiny), "--set", "descriptio=x"])
    assert "description" not in line and "did you mean" not in line
    fields = re.search(r"a field \(([^)]*)\)", line).group(1).split(", ")  # type: ignore[union-attr]
    numeric = re.search(r"a numeric hyperparameter \(([^;]*);", line).group(1).split(", ")  # type: ignore[union-attr]
    keys = fields + numeric
    assert len(keys) == len(set(keys)) and {"l2", "learning_rate", "optimizer"} <= set(keys)


def test_a_wrong_choice_names_the_setting_and_the_closest_value(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _error_line(capsys, ["run", str(tiny), "--set", "optimizer=adamm"])
    assert line.startswith("jtricks run: 'optimizer' must be one of ['sgd', ")
    assert line.endswith("got 'adamm'; did you mean 'adam' or 'adamw'?") and "arm" not in line
    line = _error_line(capsys, ["run", str(tiny), "--set", "optimizer=['sgd','adamm']"])  # one arm is wrong
    assert line.endswith("got 'adamm' (arm 'optimizer=adamm'); did you mean 'adam' or 'adamw'?")


def test_an_unknown_model_argument_lists_the_models_arguments(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _error_line(capsys, ["run", str(tiny), "--set", "model.widht=[64]"])
    assert line == (
        "jtricks run: 'model.widht' is not an argument of the model 'mlp'; did you mean 'model.widths'? "
        "(its arguments: model.widths, model.num_classes, model.init, model.activation, model.norm, "
        "model.dropout_rate, model.norm_position)"
    )
    with pytest.raises(ValueError, match=r"^'model.widht' is not an argument of the model 'mlp'; did you mean"):
        experiment.validate(experiment.Experiment(name="x", model_kwargs={"widht": (64,)}))


def test_quiet_leaves_out_the_banner_and_resume_says_where_it_starts(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    """A run stopped after the checkpoint of epoch 2, whose last step lost orbax's optional metadata file (as a kill
    can leave it): ``--resume`` says ``resumed from epoch 2`` in one line, and orbax's absl warnings stay quiet."""
    tiny.write_text(TINY.replace("epochs=1", "epochs=3"))
    out = tmp_path / "out"
    save = jckpt.save

    def save_until_2(folder, epoch, *args, **kwargs):
        if epoch == 3:
            raise ValueError("stopped after epoch 2")
        return save(folder, epoch, *args, **kwargs)

    monkeypatch.setattr(jckpt, "save", save_until_2)
    assert cli.main(["run", str(tiny), "--out", str(out), "--quiet", "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert BANNER not in err and err.strip() == "jtricks run: stopped after epoch 2"
    monkeypatch.setattr(jckpt, "save", save)
    (out / "checkpoints" / "group0_chunk0" / "2" / "_CHECKPOINT_METADATA").unlink()
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.NOTSET)  # as in a fresh process
    try:
        with caplog.at_level(logging.WARNING):
            assert cli.main(["run", str(tiny), "--out", str(out), "--quiet", "--no-plot", "--resume"]) == 0
    finally:
        absl.setLevel(level)
    assert capsys.readouterr().err == "jtricks: resumed from epoch 2\n"
    assert not [r for r in caplog.records if r.name == "absl"], [r.getMessage() for r in caplog.records]


def test_set_reaches_the_experiments_own_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--set`` keys of the experiment's own (a loss's ``loss.<name>``, ``custom_hparams``) are parsed against
    that experiment, not a default one."""
    f = tmp_path / "own.py"
    f.write_text(
        TINY.replace("from jtricks.experiment import Experiment\n", "from jtricks import losses\n")
        .replace("EXPERIMENT = Experiment(", "from jtricks.experiment import Experiment\nEXPERIMENT = Experiment(")
        .replace(
            "seeds=1)",
            "seeds=1, loss=losses.loss(lambda o, y, hp: hp['scale'] * hp['aux'] * losses.cross_entropy(o, y),\n"
            "    targets='class', hparams={'scale': 1.0}), custom_hparams={'aux': 1.0})",
        )
    )
    argv = ["run", str(f), "--out", str(tmp_path / "o"), "--quiet", "--no-plot", "--no-checkpoint", "--no-save-models"]
    assert cli.main([*argv, "--set", "loss.scale=[1.0,2.0]", "--set", "aux=0.5"]) == 0
    out = capsys.readouterr().out
    assert "loss.scale=1 " in out and "loss.scale=2 " in out
