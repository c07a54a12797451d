"""Command line: ``python -m jtricks`` / ``jtricks``.

    jtricks run EXPERIMENT [--seeds N] [--epochs E] [--out DIR] [--set key=value ...]
                           [--max-members M] [--compile-workers N] [--resume] [--quiet]
                           [--no-plot] [--no-checkpoint]
    jtricks list
    jtricks report DIR

``EXPERIMENT`` is a name from ``jtricks list`` or a path to an experiment file. Invalid settings are
reported (exit code 2) before any data is loaded or anything compiles.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jtricks", description="Seed-replicated ablations of classic deep-learning tricks.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run an experiment (all arms x seeds) and write its results folder")
    r.add_argument("experiment", help="experiment name (see `jtricks list`) or path to an experiment .py file")
    r.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the experiment's)")
    r.add_argument("--epochs", type=int, default=None, help="number of epochs (default: the experiment's)")
    r.add_argument("--out", default=None, help="results folder (default: runs/<experiment>)")
    r.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting: a field (optimizer=sgd), a model argument (model.norm=batch), "
                        "a hyperparameter (learning_rate=0.01) or a grid factor's values (dropout_rate=[0,0.5])")
    r.add_argument("--max-members", type=int, default=None, help="largest population compiled at once (chunks)")
    r.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoints")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--no-plot", action="store_true", help="do not write curves.png")
    r.add_argument("--compile-workers", type=int, default=None, metavar="N",
                   help="compile the static groups' programs ahead of time, N at once (default: min(groups, cores/2); 1: on first use)")
    r.add_argument("--no-checkpoint", action="store_true", help="no per-epoch checkpoints (no --resume possible)")
    sub.add_parser("list", help="list the experiments")
    rep = sub.add_parser("report", help="re-render summary.md/csv and curves.png of a results folder")
    rep.add_argument("dir")
    return p


def _cmd_list() -> int:
    from jtricks import experiment as jexp

    found = jexp.find_experiments()
    if not found:
        print("no experiments found (looked in: " + ", ".join(str(d) for d in jexp.experiments_dirs()) + ")")
        return 1
    width = max(len(n) for n in found)
    for name, path in found.items():
        try:
            desc = jexp.load_experiment(str(path)).description
        except Exception as e:  # a broken file is listed, not fatal
            desc = f"(cannot load: {e})"
        print(f"{name:<{width}}  {desc}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from jtricks import experiment as jexp

    try:
        exp = jexp.load_experiment(args.experiment)
        settings = jexp.parse_set(args.settings)
        if args.seeds is not None:
            settings["seeds"] = args.seeds
        if args.epochs is not None:
            settings["epochs"] = args.epochs
        exp = jexp.with_settings(exp, settings)
        if args.max_members is not None and args.max_members <= 0:
            raise ValueError(f"--max-members must be a positive int, got {args.max_members}")
        if args.compile_workers is not None and args.compile_workers <= 0:
            raise ValueError(f"--compile-workers must be a positive int, got {args.compile_workers}")
        arms = jexp.validate(exp)
    except (ValueError, TypeError) as e:
        print(f"jtricks run: invalid configuration: {e}", file=sys.stderr)
        return 2

    from jtricks import report as jreport
    from jtricks import runner

    out = Path(args.out) if args.out else Path("runs") / exp.name
    print(f"{exp.name}: {len(arms)} arms x {exp.seeds} seeds, {exp.epochs} epochs -> {out}", file=sys.stderr)
    try:
        res = runner.run(
            exp,
            out_dir=out,
            resume=args.resume,
            max_members=args.max_members,
            progress=not args.quiet,
            plot=not args.no_plot,
            checkpoint=not args.no_checkpoint,
            compile_workers=args.compile_workers,
            # testing hook: SIGKILL the process right after epoch N is checkpointed (tests --resume)
            _kill_after_epoch=int(os.environ["JTRICKS_KILL_AFTER_EPOCH"]) if os.environ.get("JTRICKS_KILL_AFTER_EPOCH") else None,
        )
    except FileNotFoundError as e:
        print(f"jtricks run: {e}", file=sys.stderr)
        return 3
    metric = res.metrics[0]
    print(jreport.format_summary_table(res.summary, metric))
    best = _best_arm(res.summary, metric)
    n_div = sum(1 for m in res.member_rows if m["diverged_epoch"] >= 0)
    print(
        f"done in {res.wall_time_s:.1f}s: {len(arms)} arms x {exp.seeds} seeds, "
        f"{sum(res.compiles.values())} compilations; best {metric}: {best}; diverged members: {n_div}; results in {out}"
    )
    return 0


def _best_arm(summary: Sequence[dict], metric: str) -> str:
    from jtricks.report import metric_direction

    rows = [r for r in summary if r.get("metric") == metric and r.get("mean") == r.get("mean")]
    if not rows:
        return "n/a"
    sign = metric_direction(metric)
    best = max(rows, key=lambda r: sign * r["mean"])
    return f"{best['arm']} ({best['mean']:.4f})"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _cmd_list()
    if args.command == "report":
        from jtricks import report as jreport

        d = Path(args.dir)
        if not (d / "metrics.csv").is_file():
            print(f"jtricks report: {d} has no metrics.csv (not a results folder)", file=sys.stderr)
            return 2
        rows = jreport.render(d)
        metrics = sorted({r["metric"] for r in rows})
        for m in metrics[:1]:
            print(jreport.format_summary_table(rows, m))
        print(f"re-rendered {d / 'summary.md'} and {d / 'curves.png'}")
        return 0
    return _cmd_run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
