"""Command line: ``python -m jtricks`` / ``jtricks``.

    jtricks run EXPERIMENT [--seeds N] [--epochs E] [--out DIR] [--set key=value ...] [--dry-run]
                           [--max-members M] [--compile-workers N] [--resume [auto]] [--quiet]
                           [--time-limit DURATION] [--checkpoint-every N] [--prefetch N]
                           [--no-plot] [--no-checkpoint] [--no-save-models] [--tensorboard [member|arm]]
                           [--compile-cache DIR | --no-compile-cache] [--cpu-devices N] [--data-parallel K]
                           [--until-resolved MAX [--spending RULE]] [--part I/N]
                           [--processes N|auto --coordinator HOST:PORT --process-id I] [--debug]
    jtricks list
    jtricks --version
    jtricks report DIR [--debug]
    jtricks plot RUN [--kind curves|lr-sensitivity|paired] [--out FILE] [--metric M] [--baseline B]
                     [--pair A B] [--debug]
    jtricks compare RUN_A RUN_B [--metric M] [--debug]
    jtricks merge OUT PART_DIR... [--no-plot] [--debug]
    jtricks publish RUN_DIR DEST [--debug]
    jtricks reproduce DIR [--members K] [--arms A,B] [--out DIR] [--tolerance ULP] [--quiet] [--debug]

``EXPERIMENT`` is a name from ``jtricks list`` or a path to an experiment file. ``jtricks list`` reads the files'
names and descriptions without running them; ``jtricks run`` imports the one it runs. Invalid settings are
reported (exit code 2) before any data is loaded or anything compiles; a misspelt experiment name, setting key,
choice or model argument is answered with the closest ones ("did you mean ...?").

Exit codes: 0 done (``reproduce``: the rerun is bit for bit, or within ``--tolerance``; 1 when it is not); 2 a user
error (bad settings, bad paths, an experiment file that fails to import,
broken data files, a checkpoint that does not match the command, a folder in use, a disk that is full):
one line on stderr, the traceback only with ``--debug``; 75 (``EX_TEMPFAIL``) ``run`` stopped by its
``--time-limit``; 128 + the signal number ``run`` stopped by a signal (130 Ctrl-C, 143 ``SIGTERM``, 129 ``SIGHUP``,
138 ``SIGUSR1``). A stopped run prints one line with the command that continues it (``--resume``).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "check_out_dir", "version_text", "USER_ERRORS"]


#: Errors that are the user's to fix (settings, paths, files, disks): one line and exit code 2.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError)


def version_text() -> str:
    """``jtricks X.Y.Z (jax A.B.C, jaxlib D.E.F)``: the versions a run's numbers depend on (read from the installed
    distributions, without starting JAX)."""
    from importlib import metadata

    from jtricks import __version__

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return f"jtricks {__version__} (jax {installed('jax')}, jaxlib {installed('jaxlib')})"


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    p = argparse.ArgumentParser(
        prog="jtricks", description="Seed-replicated ablations of classic deep-learning tricks."
    )
    p.add_argument("--version", action="version", version=version_text(), help="print the versions and exit")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "run", parents=[common], help="run an experiment (all arms x seeds) and write its results folder"
    )
    r.add_argument("experiment", help="experiment name (see `jtricks list`) or path to an experiment .py file")
    r.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the experiment's)")
    r.add_argument("--epochs", type=int, default=None, help="number of epochs (default: the experiment's)")
    r.add_argument("--out", default=None, help="results folder (default: runs/<experiment>)")
    r.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting: a field (optimizer=sgd), a model argument (model.norm=batch), "
        "a hyperparameter (learning_rate=0.01); a list sweeps the key as a grid factor "
        "(learning_rate=[0.001,0.01]). A key whose one value is a list (model.widths=[64,64]) "
        "is swept with a list of lists (model.widths=[[64],[64,64]])",
    )
    r.add_argument("--max-members", type=int, default=None, help="largest population compiled at once (chunks)")
    r.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from its checkpoints (exit 2 if they were made with other settings); "
        "`--resume auto`: continue them when there are any, else start from epoch 0 (for job scripts that are "
        "requeued)",
    )
    r.add_argument("--resume-auto", action="store_true", help=argparse.SUPPRESS)  # `--resume auto`, see _with_auto
    r.add_argument(
        "--time-limit",
        default=None,
        metavar="DURATION",
        help="stop cleanly, with a checkpoint, before an epoch that would not finish within DURATION of the "
        "start (seconds, or [[D-]HH:]MM:SS as SLURM's --time); exit 75, continue with --resume",
    )
    r.add_argument(
        "--checkpoint-every",
        type=int,
        default=1,
        metavar="N",
        help="checkpoint every N epochs (default 1), after each chunk's last epoch and when the run stops",
    )
    r.add_argument(
        "--prefetch",
        type=int,
        default=2,
        metavar="N",
        help="with data_placement=stream: training batches gathered and put on the device ahead (default 2; 0: none)",
    )
    r.add_argument("--quiet", action="store_true", help="no banner line and no progress bar")
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="print the settings, arms, members, chunks, the programs each static group would compile and an "
        "estimate of the device memory; load, compile and write nothing",
    )
    r.add_argument("--no-plot", action="store_true", help="do not write curves.png")
    r.add_argument(
        "--compile-workers",
        type=int,
        default=None,
        metavar="N",
        help=(
            "compile the static groups' programs ahead of time, N at once "
            "(default: min(groups, cores/2); 1: on first use)"
        ),
    )
    r.add_argument("--no-checkpoint", action="store_true", help="no per-epoch checkpoints (no --resume possible)")
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run that the results folder holds (without it such a folder is refused)",
    )
    r.add_argument(
        "--compile-cache",
        default=None,
        metavar="DIR",
        help="persistent compilation cache folder (default: $JTRICKS_COMPILE_CACHE, $JAX_COMPILATION_CACHE_DIR "
        "or ~/.cache/jtricks/xla)",
    )
    r.add_argument("--no-compile-cache", action="store_true", help="compile every program afresh (no persistent cache)")
    r.add_argument(
        "--numerics",
        choices=("portable", "native"),
        default="portable",
        help="portable (default): the same bits on every x86-64 CPU from AVX2 up; native: XLA's fastest "
        "kernels for this CPU, numbers exact on this machine only (docs/engine.md)",
    )
    r.add_argument(
        "--data-parallel",
        type=int,
        default=1,
        metavar="K",
        help="split each member's batch over K devices (devices = member shards x K; K must divide the device "
        "count): a members x data mesh, gradients of the whole batch (docs/distributed.md)",
    )
    r.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        metavar="N",
        help="XLA CPU devices the population is sharded over (default: one per core; 1: a single device)",
    )
    r.add_argument(
        "--until-resolved",
        type=int,
        default=None,
        metavar="MAX",
        help="add seeds in batches of --seeds until every comparison is resolved (adjusted, with alpha "
        "spent across the looks) or MAX seeds are reached (see jtricks.sequential)",
    )
    r.add_argument(
        "--spending",
        choices=("obf-exact", "pocock-exact", "obf", "bonferroni"),  # jtricks.sequential.RULES
        default="obf-exact",
        help="how --until-resolved spends alpha over its looks (default: exact O'Brien-Fleming-type boundaries; "
        "pocock-exact: Pocock-type; obf, bonferroni: conservative levels)",
    )
    r.add_argument(
        "--no-save-models", action="store_true", help="do not save the trained members' weights to DIR/models"
    )
    r.add_argument(
        "--tensorboard",
        nargs="?",
        const="member",
        default=None,
        choices=("member", "arm"),
        help="write TensorBoard event files to DIR/tensorboard: one run per member (default, live) or per "
        "arm (mean and confidence band, at the end); needs tensorboardX",
    )
    r.add_argument(
        "--part",
        default=None,
        metavar="I/N",
        help="run only part I of N of the members (by arm and seed) into its own folder "
        "(default runs/<experiment>-partIofN); combine the parts with `jtricks merge`",
    )
    r.add_argument(
        "--processes",
        default=None,
        metavar="N|auto",
        help="run over N processes with JAX's distributed runtime (env JAX_NUM_PROCESSES; `auto`: JAX "
        "detects SLURM, Open MPI, TPU pods; a multi-task srun step is detected without it); "
        "process 0 writes the results folder",
    )
    r.add_argument(
        "--coordinator", default=None, metavar="HOST:PORT", help="address of process 0 (env JAX_COORDINATOR_ADDRESS)"
    )
    r.add_argument("--process-id", default=None, metavar="I", help="this process's id, 0..N-1 (env JAX_PROCESS_ID)")
    sub.add_parser("list", parents=[common], help="list the experiments (read from the files without running them)")
    rep = sub.add_parser(
        "report", parents=[common], help="re-render summary.md/csv and curves.png of a finished results folder"
    )
    rep.add_argument("dir")
    pl = sub.add_parser(
        "plot",
        parents=[common],
        help="draw a finished results folder: learning curves, learning-rate sensitivity or paired differences",
    )
    pl.add_argument("dir", metavar="RUN", help="a finished or published results folder")
    pl.add_argument(
        "--kind",
        choices=PLOT_KINDS,
        default="curves",
        help="curves: mean curves per arm with bands (curves.png, as the run draws it); lr-sensitivity: final "
        "metric vs learning rate per arm group (arms named GROUP,learning_rate=LR), the markdown table on stdout; "
        "paired: the per-seed differences to the baseline with their intervals, every arm (or --pair)",
    )
    pl.add_argument("--out", default=None, metavar="FILE", help="the PNG written (default: RUN/<kind>.png)")
    pl.add_argument(
        "--metric",
        default=None,
        metavar="M",
        help="lr-sensitivity: the final metric (default test_acc); paired: the metric compared (default: the "
        "run's first summary metric)",
    )
    pl.add_argument(
        "--baseline", default=None, metavar="B", help="the arm (paired) or group (lr-sensitivity) compared with"
    )
    pl.add_argument("--pair", nargs=2, default=None, metavar=("A", "B"), help="paired: only A - B, each ARM:METRIC")
    cmp = sub.add_parser(
        "compare",
        parents=[common],
        help="compare two finished results folders arm by arm (B - A: paired by seed, or Welch; Holm-adjusted)",
    )
    cmp.add_argument("run_a", metavar="RUN_A", help="the reference results folder")
    cmp.add_argument("run_b", metavar="RUN_B", help="the results folder compared with it")
    cmp.add_argument(
        "--metric", default=None, metavar="M", help="the metric compared (default: RUN_A's first summary metric)"
    )
    mer = sub.add_parser(
        "merge",
        parents=[common],
        help="merge the part folders of one run (`jtricks run --part I/N`) into one results folder",
    )
    mer.add_argument("out", help="the merged results folder")
    mer.add_argument("parts", nargs="+", metavar="PART_DIR", help="the part folders, every part 1..N once")
    mer.add_argument("--no-plot", action="store_true", help="do not write curves.png")
    mer.add_argument("--overwrite", action="store_true", help="replace the run that the merged folder holds")
    rp = sub.add_parser(
        "reproduce",
        parents=[common],
        help="rerun a results folder from its manifest and compare member by member (exit 0: bit for bit, "
        "or within --tolerance)",
    )
    rp.add_argument("dir", help="a finished or published results folder")
    rp.add_argument(
        "--members",
        type=int,
        default=None,
        metavar="K",
        help="rerun only K members, seed by seed across the arms (each gives the rows it gives in the whole run)",
    )
    rp.add_argument("--arms", default=None, metavar="A,B", help="rerun only these arms (comma-separated names)")
    rp.add_argument("--out", default=None, help="keep the rerun's results folder here (with reproduce.json)")
    rp.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        metavar="ULP",
        help="largest difference in float32 units in the last place still counted as reproduced (default 0)",
    )
    rp.add_argument("--quiet", action="store_true", help="no progress bar")
    rp.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        metavar="N",
        help="XLA CPU devices (default: one per core; the numbers do not depend on it)",
    )
    pub = sub.add_parser(
        "publish",
        parents=[common],
        help="copy a finished run's results (not its models) to DEST, metrics.csv xz-compressed when large",
    )
    pub.add_argument("run_dir")
    pub.add_argument("dest")
    return p


def _cmd_list() -> int:
    from jtricks.engine import catalog as jcatalog

    found = jcatalog.find_experiments()
    if not found:
        print("no experiments found (looked in: " + ", ".join(str(d) for d in jcatalog.experiments_dirs()) + ")")
        return 1
    width = max(len(n) for n in found)
    for name, path in found.items():  # read statically: listing runs no experiment file
        declared, desc = jcatalog.describe_experiment(path)
        named = "" if declared == name else f" (name: {declared})"
        print(f"{name:<{width}}  {desc}{named}")
    return 0


def _load(name_or_path: str) -> Any:
    """The experiment; a file that fails to import (syntax error, missing module, ...) is a user error."""
    from jtricks.engine import catalog as jcatalog

    try:
        return jcatalog.load_experiment(name_or_path)
    except (ValueError, TypeError, OSError):
        raise
    except Exception as e:  # an experiment file is user code: any error in it is reported in one line
        raise ValueError(f"experiment {name_or_path!r} cannot be loaded: {type(e).__name__}: {e}") from e


def check_out_dir(out: Path) -> None:
    """Raise ``OSError`` (naming the path) unless ``out`` is, or can be created as, a writable folder."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"--out {out} is a file, not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"--out {out} cannot be created: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"--out {out} is not writable ({parent}: permission denied)")


def _has_checkpoints(out: Path) -> bool:
    """Whether ``out`` holds checkpoints of an unfinished run (a tuned experiment's tuning run's included)."""
    return any(d.is_dir() and any(d.iterdir()) for d in (out / "checkpoints", out / "tuning" / "checkpoints"))


def _resume_plan(out: Path, args: argparse.Namespace) -> str | None:
    """With ``--resume``: what happens to ``out``, said on stderr; ``"done"`` when there is nothing to do.

    ``--resume auto`` says which way it goes in one line: continuing the checkpoints (still refused, exit 2,
    when they were made with other settings) or starting from epoch 0."""
    if args.no_checkpoint:
        raise ValueError("--resume needs the checkpoints; it cannot be combined with --no-checkpoint")
    if _has_checkpoints(out):
        if args.resume == "auto":
            found = [*out.glob("checkpoints/*/*"), *out.glob("tuning/checkpoints/*/*")]
            steps = [int(p.name) for p in found if p.is_dir() and p.name.isdigit()]
            newest = f" (newest: epoch {max(steps)})" if steps else ""
            print(f"jtricks run: resuming from the checkpoints in {out}{newest}", file=sys.stderr)
        return None
    if (out / "manifest.json").is_file():
        print(
            f"jtricks run: {out} holds a finished run, nothing to resume; re-render it with `jtricks report {out}` "
            "or run without --resume to start over",
            file=sys.stderr,
        )
        return "done"
    print(f"jtricks run: no checkpoints in {out}; nothing to resume, starting from epoch 0", file=sys.stderr)
    return None


def _cmd_run(args: argparse.Namespace) -> int:
    """``jtricks run``: the stop-signal handlers first (:mod:`jtricks.engine.stopping`), before JAX is imported."""
    if args.dry_run:
        return _dry_run(args)
    from jtricks.engine import stopping as jstop

    limit = None if args.time_limit is None else jstop.parse_duration(args.time_limit, "--time-limit")
    if args.checkpoint_every <= 0:
        raise ValueError(f"--checkpoint-every must be a positive int, got {args.checkpoint_every}")
    stop = jstop.StopRequest(limit, started=args.started)
    with jstop.handle_signals(stop):
        return _run_with_runtime(args, stop)


def _run_with_runtime(args: argparse.Namespace, stop: Any) -> int:
    """``jtricks run`` under the runtime it asks for (devices, compile cache, numerics): :func:`_run_configured`."""
    from jtricks.engine import runtime as jruntime
    from jtricks.studies import distributed as jdistributed

    if args.no_compile_cache and args.compile_cache:
        raise ValueError("--compile-cache and --no-compile-cache contradict each other; give one")
    if args.cpu_devices is not None and args.cpu_devices <= 0:
        raise ValueError(f"--cpu-devices must be a positive int, got {args.cpu_devices}")
    if args.data_parallel <= 0:
        raise ValueError(f"--data-parallel must be a positive int, got {args.data_parallel}")
    cluster = jdistributed.resolve(args.processes, args.coordinator, args.process_id)
    # before the experiment file is imported: the device flag only counts before JAX's backends start; one CPU
    # device per process when several processes share the machine's cores (unless asked otherwise)
    cpu_devices = args.cpu_devices if args.cpu_devices is not None or cluster is None else 1
    with jruntime.configured(
        compile_cache=False if args.no_compile_cache else (args.compile_cache or True),
        cpu_devices=cpu_devices,
        numerics=args.numerics,
    ):
        return _run_configured(args, cluster, stop)


def _dry_run(args: argparse.Namespace) -> int:
    """``jtricks run --dry-run``: what the run would do (:mod:`jtricks.engine.dryrun`), on the devices it would
    use; nothing loaded, compiled or written (no compilation cache either)."""
    from jtricks.engine import dryrun as jdryrun
    from jtricks.engine import runtime as jruntime

    if args.cpu_devices is not None and args.cpu_devices <= 0:
        raise ValueError(f"--cpu-devices must be a positive int, got {args.cpu_devices}")
    with jruntime.configured(compile_cache=False, cpu_devices=args.cpu_devices, numerics=args.numerics):
        exp = _experiment(args)
        part = _part(args)
        default = exp.name if part is None else f"{exp.name}-part{part.index}of{part.count}"
        out = Path(args.out) if args.out else Path("runs") / default
        dr = jdryrun.dry_run(exp, max_members=args.max_members, part=part)
        print(jdryrun.describe(dr, str(out)))
    return 0


def _experiment(args: argparse.Namespace) -> Any:
    """The experiment ``jtricks run`` runs: loaded, with ``--set``, ``--seeds``, ``--epochs`` and checked
    ``--max-members`` / ``--compile-workers``."""
    from jtricks.engine import settings as jsettings

    exp = _load(args.experiment)
    settings = jsettings.parse_set(args.settings, exp)
    if args.seeds is not None:
        settings["seeds"] = args.seeds
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    exp = jsettings.with_settings(exp, settings)
    if args.max_members is not None and args.max_members <= 0:
        raise ValueError(f"--max-members must be a positive int, got {args.max_members}")
    if args.compile_workers is not None and args.compile_workers <= 0:
        raise ValueError(f"--compile-workers must be a positive int, got {args.compile_workers}")
    return exp


def _run_configured(args: argparse.Namespace, cluster: Any, stop: Any) -> int:
    """``jtricks run`` once the runtime is set (:func:`_cmd_run`): load, validate, run, print the summary."""
    from jtricks.engine import validation as jvalidation
    from jtricks.studies import distributed as jdistributed

    if cluster is not None:
        if args.part is not None:
            raise ValueError("--part cannot be combined with several processes (each process runs its own part)")
        jdistributed.initialize(cluster)  # before anything touches a JAX backend
    exp = _experiment(args)
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in the results folder, --overwrite replaces it; give one")
    part = _part(args)
    arms = jvalidation.validate(exp)
    default = exp.name if part is None else f"{exp.name}-part{part.index}of{part.count}"
    out = Path(args.out) if args.out else Path("runs") / default
    check_out_dir(out)
    if args.until_resolved is not None and (cluster is not None or part is not None):
        raise ValueError(
            "--until-resolved adds seeds to one whole run; it cannot be combined with --part or several processes"
        )
    if cluster is not None:
        return _run_processes(exp, len(arms), out, args, stop)
    resume = _resume_mode(out, args)
    if resume == "done":
        return 0

    from jtricks.results import rendering as jrendering
    from jtricks.studies import run as run_study

    callbacks = _callbacks(args, out, overwrite=not resume)
    if not args.quiet:
        print(f"{exp.name}: {len(arms)} arms x {exp.seeds} seeds, {exp.epochs} epochs -> {out}", file=sys.stderr)
    if args.until_resolved is not None:
        return _run_until_resolved(exp, out, args, stop)
    res = run_study(
        exp,
        out_dir=out,
        resume=resume,
        max_members=args.max_members,
        progress=not args.quiet,
        plot=not args.no_plot,
        checkpoint=not args.no_checkpoint,
        checkpoint_every=args.checkpoint_every,
        prefetch=args.prefetch,
        save_models=not args.no_save_models,
        callbacks=callbacks,
        compile_workers=args.compile_workers,
        part=part,
        numerics=args.numerics,
        data_parallel=args.data_parallel,
        overwrite=args.overwrite,
        stop=stop,
    )
    if part is not None:
        print(
            f"done in {res.wall_time_s:.1f}s: part {part} ({len(res.member_rows)} members); "
            f"results in {out}; merge the parts with `jtricks merge OUT PART_DIRS...`"
        )
        return 0
    metric = res.metrics[0]
    print(jrendering.format_console_table(res.summary, metric, res.directions))
    best = _best_arm(res.summary, metric, res.directions)
    n_div = sum(1 for m in res.member_rows if m["diverged_epoch"] >= 0)
    print(
        f"done in {res.wall_time_s:.1f}s: {len(arms)} arms x {exp.seeds} seeds, "
        f"{sum(res.compiles.values())} compilations; best {metric}: {best}; diverged members: {n_div}; results in {out}"
    )
    _warn_diverged_at_start(res.diverged_at_start())
    return 0


def _warn_diverged_at_start(members: Sequence[str], shown: int = 3) -> None:
    """One stderr line naming the members that diverged in epoch 1 from finite initial parameters (if any)."""
    if not members:
        return
    names = ", ".join(members[:shown]) + (f" and {len(members) - shown} more" if len(members) > shown else "")
    noun = "member" if len(members) == 1 else "members"
    print(
        f"jtricks: warning: {len(members)} {noun} diverged in epoch 1, from finite initial parameters (the epoch-1 "
        f"loss is already non-finite or exploded): {names}; the data or the loss may be the cause, or a learning "
        "rate far too large",
        file=sys.stderr,
    )


def _callbacks(args: argparse.Namespace, out: Path, *, overwrite: bool) -> list[Any]:
    """The run's callbacks: TensorBoard event files with ``--tensorboard``."""
    if not args.tensorboard:
        return []
    from jtricks.results.tensorboard import TensorBoard

    try:
        return [TensorBoard(out / "tensorboard", mode=args.tensorboard, overwrite=overwrite)]
    except ImportError as e:
        raise ValueError(f"--tensorboard: {e}") from None


def _resume_mode(out: Path, args: argparse.Namespace) -> bool | str:
    """Whether the run continues the checkpoints in ``out`` (``"done"``: a finished run, nothing to do)."""
    if not args.resume:
        return False
    plan = _resume_plan(out, args)
    if plan == "done":
        return "done"
    if args.resume == "auto" and not _has_checkpoints(out):
        return False  # a fresh run: said by _resume_plan
    return True


def _run_until_resolved(exp: Any, out: Path, args: argparse.Namespace, stop: Any) -> int:
    """``--until-resolved MAX``: the sequential run (:mod:`jtricks.sequential`) and what each look decided."""
    if args.resume:
        raise ValueError("--until-resolved runs its batches without checkpoints; it cannot be combined with --resume")
    from jtricks.results import rendering as jrendering
    from jtricks.studies import sequential as jsequential

    res, record = jsequential.run_until_resolved(
        exp,
        args.until_resolved,
        out_dir=out,
        rule=args.spending,
        progress=not args.quiet,
        plot=not args.no_plot,
        max_members=args.max_members,
        numerics=args.numerics,
        data_parallel=args.data_parallel,
        overwrite=args.overwrite,
        stop=stop,
    )
    print(jrendering.format_console_table(res.summary, record["metric"], res.directions))
    for look in record["looks"]:
        open_ = [
            a for a, c in look["comparisons"].items() if c["verdict"] not in ("better", "worse", "higher", "lower")
        ]
        print(
            f"look at {look['seeds']} seeds (alpha {look['alpha']:.3g}): "
            + ("all resolved" if not open_ else f"unresolved: {', '.join(open_)}")
        )
    need = ", ".join(f"{a}: {n if n is not None else 'not resolved'}" for a, n in record["first_resolved_at"].items())
    print(
        f"seeds at which each comparison was first resolved: {need}; stopped at {record['stopped_at']} seeds; "
        f"results in {out}"
    )
    return 0


def _run_processes(exp: Any, n_arms: int, out: Path, args: argparse.Namespace, stop: Any) -> int:
    """``jtricks run`` as one of several processes (:mod:`jtricks.distributed`); process 0 prints the summary."""
    import jax

    from jtricks.results import rendering as jrendering
    from jtricks.studies import distributed as jdistributed

    if args.resume and args.no_checkpoint:
        raise ValueError("--resume needs the checkpoints; it cannot be combined with --no-checkpoint")
    index, count = jax.process_index(), jax.process_count()
    if not args.quiet:
        print(
            f"{exp.name}: {n_arms} arms x {exp.seeds} seeds, {exp.epochs} epochs -> {out} (process {index} of {count})",
            file=sys.stderr,
        )
    res, merged = jdistributed.run(
        exp,
        out,
        plot=not args.no_plot,
        resume=bool(args.resume),
        max_members=args.max_members,
        progress=not args.quiet,
        checkpoint=not args.no_checkpoint,
        checkpoint_every=args.checkpoint_every,
        prefetch=args.prefetch,
        compile_workers=args.compile_workers,
        numerics=args.numerics,
        data_parallel=args.data_parallel,
        overwrite=args.overwrite,
        stop=stop,
    )
    if merged is None:
        print(
            f"process {index} of {count}: done in {res.wall_time_s:.1f}s ({len(res.member_rows)} members); "
            f"process 0 writes the results to {out}"
        )
        return 0
    man = merged.manifest
    print(jrendering.format_console_table(merged.summary, man["metrics"][0], man.get("directions")))
    print(
        f"done: {n_arms} arms x {exp.seeds} seeds over {count} processes on {len(man['machines'])} machine(s); "
        f"results in {out}"
    )
    return 0


def _part(args: argparse.Namespace) -> Any:
    """``--part I/N`` as a :class:`jtricks.parts.Part` (``None`` without it)."""
    if args.part is None:
        return None
    from jtricks.engine import parts as jparts

    return jparts.parse_part(args.part)


def _cmd_merge(args: argparse.Namespace) -> int:
    from jtricks.engine import parts as jparts
    from jtricks.results import rendering as jrendering

    out = Path(args.out)
    check_out_dir(out)
    merged = jparts.merge(out, [Path(d) for d in args.parts], plot=not args.no_plot, overwrite=args.overwrite)
    manifest = merged.manifest
    print(jrendering.format_console_table(merged.summary, manifest["metrics"][0], manifest.get("directions")))
    machines = ", ".join(sorted({str(m.get("host")) for m in manifest["machines"]}))
    print(
        f"merged {manifest['split']['count']} parts ({len(manifest['arms'])} arms x {len(manifest['seeds'])} seeds, "
        f"from {machines}) into {out}"
    )
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from jtricks.results import folders as jfolders
    from jtricks.results import rendering as jrendering

    d = Path(args.dir)
    manifest = jfolders.check_complete(d)
    if isinstance(manifest.get("part"), dict):
        p = manifest["part"]
        raise ValueError(
            f"{d} is part {p.get('index')}/{p.get('count')} of a run: merge the parts with "
            "`jtricks merge OUT PART_DIRS...`, then report OUT"
        )
    rows = jrendering.render(d)
    metrics = sorted({r["metric"] for r in rows})
    for m in metrics[:1]:
        print(jrendering.format_console_table(rows, m))
    print(f"re-rendered {d / 'summary.md'} and {d / 'curves.png'}")
    return 0


#: the kinds of ``jtricks plot`` and the file each writes into the run folder by default
PLOT_KINDS = ("curves", "lr-sensitivity", "paired")
_PLOT_FILES = {"curves": "curves.png", "lr-sensitivity": "lr_sensitivity.png", "paired": "paired.png"}


def _cmd_plot(args: argparse.Namespace) -> int:
    """``jtricks plot RUN --kind K``: one PNG of a finished results folder (checked before anything is drawn)."""
    d = Path(args.dir)
    if not d.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"RUN {d} is not a folder")
    if args.pair is not None and args.kind != "paired":
        raise ValueError(f"--pair goes with --kind paired, not --kind {args.kind}")
    if args.kind == "curves" and (args.metric or args.baseline):
        raise ValueError("--metric and --baseline go with --kind lr-sensitivity or paired; curves draws every metric")
    out = Path(args.out) if args.out else d / _PLOT_FILES[args.kind]
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, got {out}")
    if args.kind == "curves":
        from jtricks.results import rendering as jrendering

        jrendering.plot_folder(d, out)
    elif args.kind == "lr-sensitivity":
        from jtricks.results import lr_sensitivity

        print(lr_sensitivity.write(d, metric=args.metric or "test_acc", baseline=args.baseline, png=out))
    else:
        from jtricks.results import paired

        if args.pair is not None:
            comps = [paired.compare(d, *args.pair)]
            print(paired.line(comps[0]))
        else:
            comps = paired.comparisons(d, args.metric, args.baseline)
        paired.plot_paired(out, comps, heading=paired.title(comps, d.resolve().name))
    print(f"wrote {out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    """``jtricks compare RUN_A RUN_B``: the table of :func:`jtricks.results.comparison.comparison_report`."""
    from jtricks.results import comparison as jcomparison

    print(jcomparison.comparison_report(args.run_a, args.run_b, args.metric))
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    """``jtricks reproduce DIR``: the rerun in the record's numerics mode, then one line saying what holds."""
    import json

    from jtricks.engine import runtime as jruntime

    manifest = Path(args.dir) / "manifest.json"
    try:
        mode = (json.loads(manifest.read_text()).get("numerics") or {}).get("mode", "native")
    except (OSError, ValueError):
        mode = "portable"  # the folder's own checks (jtricks.reproduce) say what is wrong with it
    with jruntime.configured(compile_cache=True, cpu_devices=args.cpu_devices, numerics=mode):
        from jtricks.studies import reproduce as jreproduce

        arms = [a.strip() for a in args.arms.split(",") if a.strip()] if args.arms else None
        rep = jreproduce.reproduce(
            args.dir,
            members=args.members,
            arms=arms,
            out_dir=args.out,
            tolerance=args.tolerance,
            progress=not args.quiet,
        )
    print(rep.line)
    for what in rep.machines:
        print(f"  differs from the record: {what}")
    for what in rep.settings[:8]:
        print(f"  setting differs from the record: {what}")
    return 0 if rep.ok else 1


def _cmd_publish(args: argparse.Namespace) -> int:
    from jtricks.results import folders as jfolders

    written = jfolders.publish(Path(args.run_dir), Path(args.dest))
    size = sum(p.stat().st_size for p in written)
    print(f"published {len(written)} files ({size / 1024:.0f} KiB) from {args.run_dir} to {args.dest}")
    return 0


def _best_arm(summary: Sequence[dict], metric: str, directions: Mapping[str, bool] | None = None) -> str:
    from jtricks.results.summary import metric_direction

    rows = [r for r in summary if r.get("metric") == metric and r.get("mean") == r.get("mean")]
    if not rows:
        return "n/a"
    sign = metric_direction(metric, directions)
    best = max(rows, key=lambda r: sign * r["mean"])
    return f"{best['arm']} ({best['mean']:.4f})"


def _one_line(e: BaseException) -> str:
    """The error as one line; an ``OSError`` as ``[FILENAME: ]STRERROR`` (no ``[Errno n]`` prefix)."""
    if isinstance(e, OSError) and e.strerror:
        text = e.strerror
    else:
        text = str(e) or type(e).__name__
    if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
        text = f"{e.filename}: {text}"
    return " ".join(text.split())


#: Errors orbax / tensorstore leave behind on their helper threads after a failed checkpoint read, once their
#: event loop is shut down: noise after the one-line error (shown with ``--debug``).
_SHUTDOWN_NOISE = ("Event loop is closed", "cannot schedule new futures after shutdown")


def _is_shutdown_noise(exc: BaseException | None) -> bool:
    return isinstance(exc, RuntimeError) and str(exc) in _SHUTDOWN_NOISE


def _silence_shutdown_noise() -> None:
    """Drop :data:`_SHUTDOWN_NOISE` from ``sys.excepthook`` (where native callbacks print theirs),
    ``sys.unraisablehook`` and ``threading.excepthook`` (this process is the CLI; everything else still
    reaches the previous hooks)."""
    import threading

    excepthook, unraisable, thread_hook = sys.excepthook, sys.unraisablehook, threading.excepthook

    def on_except(kind: Any, value: BaseException, tb: Any) -> None:
        if not _is_shutdown_noise(value):
            excepthook(kind, value, tb)

    def on_unraisable(u: Any) -> None:
        if not _is_shutdown_noise(u.exc_value):
            unraisable(u)

    def on_thread(a: Any) -> None:
        if not _is_shutdown_noise(a.exc_value):
            thread_hook(a)

    sys.excepthook, sys.unraisablehook, threading.excepthook = on_except, on_unraisable, on_thread


def _with_auto(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--resume auto`` (or ``--resume=auto``) as the hidden ``--resume-auto``: a plain ``--resume``
    stays a flag, so ``jtricks run --resume EXPERIMENT`` still reads EXPERIMENT as the experiment."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--resume=auto" or (argv[i] == "--resume" and i + 1 < len(argv) and argv[i + 1] == "auto"):
            out.append("--resume-auto")
            i += 1 if argv[i] == "--resume=auto" else 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _command(argv: Sequence[str], *, resume: bool) -> str:
    """The command line of this run, as a shell would take it; with ``resume``, with ``--resume`` (kept as given,
    ``--resume auto`` included, else added)."""
    words = list(argv)
    if resume and not any(w in ("--resume", "--resume=auto") for w in words):
        words.append("--resume")
    return shlex.join(["jtricks", *words])


def _stopped_line(e: Any, args: argparse.Namespace) -> str:
    """The one line of a run stopped at an epoch boundary (:class:`jtricks.engine.stopping.RunStopped`)."""
    from jtricks.engine import stopping as jstop

    of = f" of {e.where}" if e.where else ""
    at = f"after epoch {e.epoch}/{e.epochs}{of}" if e.epoch else f"before its first epoch{of}"
    if e.reason == "signal":
        what = f"stopped by {jstop.signal_name(e.signum)} {at}"
    elif e.reason == "time-limit":
        about = f" (the next epoch would take about {e.next_epoch_s:.1f} s)" if e.next_epoch_s is not None else ""
        what = f"stopped {at} to stay within --time-limit {args.time_limit}{about}"
    else:
        what = f"this process finished its part, but {e.where}"
    if not e.resumable:
        why = e.not_resumable
        if args.no_checkpoint:
            why = "--no-checkpoint"
        elif args.until_resolved is not None:
            why = "--until-resolved keeps no checkpoints"
        return f"{what}; nothing can be resumed ({why}); run it again: {_command(args.argv, resume=False)}"
    saved = "its checkpoint is verified; " if e.epoch and e.reason != "peers" else ""
    return f"{what}; {saved}continue with: {_command(args.argv, resume=True)}"


def _interrupted(e: KeyboardInterrupt, args: argparse.Namespace) -> tuple[str, int]:
    """The one line and the exit code of a run stopped at once: a second stop signal
    (:class:`jtricks.engine.stopping.Interrupted`) or Ctrl-C where no handler was installed. The epoch loop attaches
    ``epoch`` (the newest checkpointed epoch of the running chunk; without checkpoints its last finished one)."""
    signum, epoch = getattr(e, "signum", None), getattr(e, "epoch", None)
    if signum is None:  # Python's own Ctrl-C (another command, or before the handlers were installed)
        at = f" at epoch {epoch}" if epoch is not None else ""
        hint = ""
        if args.command == "run":
            hint = (
                "; run it again (no checkpoints: --no-checkpoint)" if args.no_checkpoint else "; continue with --resume"
            )
        return f"interrupted{at}{hint}", 130
    from jtricks.engine import stopping as jstop

    what = f"stopped by {jstop.signal_name(signum)} at once (a second signal)"
    at = ""
    if epoch is not None and getattr(e, "epochs", None):  # raised in the epoch loop
        what += ", abandoning the epoch in flight"
        at = f"epoch {epoch}/{e.epochs}" + (f" of {e.where}" if getattr(e, "where", "") else "")
    if args.no_checkpoint:
        done = f" after {at}" if at else ""
        line = (
            f"{what}{done}; nothing can be resumed (--no-checkpoint); run it again: {_command(args.argv, resume=False)}"
        )
    else:
        frm = f" from the checkpoint of {at}" if at and epoch else ""
        line = f"{what}; continue{frm} with: {_command(args.argv, resume=True)}"
    return line, 128 + signum


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 done, 2 user error, 75 stopped by ``--time-limit``,
    128 + the signal number stopped by a signal: 130 Ctrl-C, 143 ``SIGTERM``)."""
    started = time.monotonic()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(_with_auto(argv))
    args.argv, args.started = argv, started
    if getattr(args, "resume_auto", False):
        args.resume = "auto"
    if not args.debug:
        _silence_shutdown_noise()
    commands = {
        "list": lambda: _cmd_list(),
        "report": lambda: _cmd_report(args),
        "plot": lambda: _cmd_plot(args),
        "compare": lambda: _cmd_compare(args),
        "run": lambda: _cmd_run(args),
        "merge": lambda: _cmd_merge(args),
        "publish": lambda: _cmd_publish(args),
        "reproduce": lambda: _cmd_reproduce(args),
    }
    from jtricks.engine.stopping import RunStopped

    try:
        return commands[args.command]()
    except RunStopped as e:
        if args.debug:
            raise
        newline = "\n" if sys.stderr.isatty() else ""  # after a progress line still open
        print(f"{newline}jtricks {args.command}: {_stopped_line(e, args)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        if args.debug:
            raise
        # a checkpoint writer's helper thread that the interrupt leaves behind logs its shutdown through absl
        logging.getLogger("absl").setLevel(logging.CRITICAL)
        line, code = _interrupted(e, args)
        print(("\n" if sys.stderr.isatty() else "") + f"jtricks {args.command}: {line}", file=sys.stderr)
        return code
    except USER_ERRORS as e:
        if args.debug:
            raise
        print(f"jtricks {args.command}: {_one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
