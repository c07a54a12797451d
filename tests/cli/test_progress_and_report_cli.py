"""The progress bar and ``jtricks report DIR``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from jtricks import cli, report
from jtricks.runner import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_lines_on_a_pipe() -> None:
    out = io.StringIO()
    bar = Progress(4, stream=out)
    bar.update("group 1/1 epoch 1/4", 0.5, 0, seconds=3.0, measured=False)
    bar.update("group 1/1 epoch 2/4", 0.625, 2, seconds=1.0)
    lines = out.getvalue().split("\n")
    assert lines[-1] == "" and len(lines) == 3  # one line per epoch, no carriage returns
    assert "\r" not in out.getvalue()
    assert lines[0].startswith("[######------------------] 1/4 group 1/1 epoch 1/4 val_acc 0.5000 |")
    assert lines[1].startswith("[############------------] 2/4 group 1/1 epoch 2/4 val_acc 0.6250 diverged 2 |")
    assert "ETA" not in lines[0] and "diverged" not in lines[0]  # the first epoch is not measured
    assert lines[1].endswith("ETA   2.0s")


def test_progress_redraws_one_line_on_a_terminal_and_ends_it() -> None:
    out = _Tty()
    bar = Progress(2, stream=out)
    bar.update("a", 0.1, 0)
    assert out.getvalue().startswith("\r\033[K[") and not out.getvalue().endswith("\n")
    bar.update("b", 0.2, 0)
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1
    assert "[########################] 2/2 b" in out.getvalue()


def test_progress_disabled_writes_nothing_but_counts() -> None:
    out = io.StringIO()
    bar = Progress(3, enabled=False, stream=out)
    bar.update("a", 0.1, 0)
    assert out.getvalue() == "" and bar.done == 1


def _results_folder(path: Path) -> None:
    rows = [
        {"arm": arm, "seed": seed, "epoch": epoch, "metric": "val_acc", "value": base + 0.01 * epoch + 0.001 * seed}
        for arm, base in (("baseline", 0.8), ("dropout", 0.85))
        for seed in range(3)
        for epoch in (1, 2)
    ]
    report.write_metrics_csv(path / "metrics.csv", rows)
    (path / "arms.json").write_text(
        json.dumps([{"arm": "baseline", "factors": {}}, {"arm": "dropout", "factors": {"dropout_rate": 0.5}}])
    )
    from jtricks import fingerprint, results_io

    manifest = {
        "config": {"name": "demo", "metrics": ["val_acc"], "epochs": 2},
        "seeds": [0, 1, 2],
        "arms": json.loads((path / "arms.json").read_text()),
    }
    results_io.write_manifest(path, manifest, fingerprint.run_fingerprint({"demo": 1}))


def test_report_cli_re_renders_a_results_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _results_folder(tmp_path)
    assert cli.main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "dropout" in out and f"re-rendered {tmp_path / 'summary.md'}" in out
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("# demo") and "dropout" in summary
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    first = (tmp_path / "summary.csv").read_bytes()
    assert cli.main(["report", str(tmp_path)]) == 0  # re-rendering is idempotent
    assert (tmp_path / "summary.csv").read_bytes() == first


def test_report_cli_tells_a_folder_that_is_no_run_from_an_unfinished_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a run")
    assert cli.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"jtricks report: {tmp_path} is not a jtricks results folder (no manifest.json, metrics.csv or checkpoints); "
        "give the folder a run wrote (`jtricks run ... --out DIR`)\n"
    )
    (tmp_path / "metrics.csv").write_text("arm,seed,epoch,metric,value\n")  # a run that stopped before its manifest
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "has no manifest.json: the run did not finish" in capsys.readouterr().err
