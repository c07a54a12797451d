"""Mutation testing of the trick modules and the training step with cosmic-ray.

Usage (from the repository root; needs the ``mutation`` extra: ``pip install -e .[mutation]``)::

    nice -n 15 python tools/mutation.py                       # every target, the current working tree
    nice -n 15 python tools/mutation.py --targets optim norm  # some targets
    python tools/mutation.py --ref 248129f --out mutation-results/before   # the tree of a commit
    python tools/mutation.py --survivors-of mutation-results/before --out mutation-results/after

For each target the script copies the tree (the tracked files of the working tree, or ``git archive`` of
``--ref``) into a temporary folder, so the checkout is never touched, and there

1. writes a cosmic-ray configuration whose test command is the target's fast test subset
   (``pytest -x`` over a few files, see :data:`TARGETS`),
2. ``cosmic-ray init`` enumerates the mutants, ``cr-filter-operators`` drops the operator variants that
   only multiply the count (see :data:`EXCLUDED_OPERATORS`), and mutants outside the target's functions
   are marked skipped with cosmic-ray's own work database API (the same call its filters make),
3. ``cosmic-ray exec`` runs the tests once per mutant (sequentially: a mutant is applied on disk),
4. the results are written to ``OUT/<target>.json`` (every mutant: operator, line, outcome, diff) and a
   summary table to ``OUT/summary.md``.

The score is ``killed / (killed + survived)``; a mutant that makes the tests time out or crash counts
as killed (cosmic-ray's rule). CI does not run this; ``docs/testing.md`` records the last results.
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: target -> (module, fast test files, functions whose bodies are mutated; ``None``: the whole module).
TARGETS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...] | None]] = {
    "optim_transforms": (
        "jtricks/optim/_transforms.py",
        ("tests/optim/test_optim.py", "tests/reference/test_optim_reference.py"),
        ("scale_by_adam", "trace_nesterov", "adamw", "scale_by_inverse_global_norm", "clip_by_global_norm"),
    ),
    "optim_schedules": (
        "jtricks/optim/_schedules.py",
        ("tests/optim/test_optim.py", "tests/reference/test_optim_reference.py"),
        ("exponential_decay", "per_epoch_decay", "step_decay", "cosine_decay", "warmup_cosine"),
    ),
    "optim_build": (
        "jtricks/optim/_build.py",
        ("tests/optim/test_optim.py", "tests/optim/test_optim_factories.py", "tests/reference/test_optim_reference.py"),
        ("hparam_names", "default_hparams", "_schedule_from", "build_schedule", "_make_factory", "build"),
    ),
    "norm": (
        "jtricks/norm.py",
        ("tests/tricks/test_norm_edges.py", "tests/tricks/test_norm.py", "tests/tricks/test_gradients.py"),
        (
            "batch_norm_init",
            "batch_norm",
            "layer_norm_init",
            "layer_norm",
            "rms_norm_init",
            "rms_norm",
            "group_norm",
            "_sum_sq_but_last",
            "weight_norm_init",
            "weight_norm",
        ),
    ),
    "dropout": (
        "jtricks/dropout.py",
        ("tests/tricks/test_dropout.py", "tests/tricks/test_properties.py"),
        ("uniform_bits16", "_dropout", "dropout", "spatial_dropout"),
    ),
    "init": ("jtricks/init.py", ("tests/tricks/test_init.py",), None),
    "train_step": (
        "jtricks/engine/train.py",
        ("tests/engine/test_train_step.py", "tests/reference/test_reference_engine.py"),
        (
            "loss_fn",
            "make_train_step",
            "guard_epoch",
            "chunk_totals",
            "finalize_evaluation",
            "make_evaluate",
            "early_stop",
            "average",
            "finish_epoch",
            "run_epoch",
        ),
    ),
}

#: Operator variants left out: one replacement per binary / comparison operator is kept (the rest test the
#: same site again), bitwise operators do not occur in numeric code, and exception / variable replacers
#: mostly give mutants that cannot be told apart from the original by any test.
EXCLUDED_OPERATORS: tuple[str, ...] = (
    r"core/ReplaceBinaryOperator_.*_(Mod|Pow|RShift|LShift|BitOr|BitAnd|BitXor|FloorDiv)$",
    r"core/ReplaceBinaryOperator_(Add_Mul|Add_Div|Sub_Mul|Sub_Div|Mul_Sub|Mul_Add|Div_Add|Div_Sub|Mod_.*|Pow_.*|RShift_.*|LShift_.*|Bit.*)$",
    r"core/ReplaceComparisonOperator_(Eq_(Lt|LtE|Gt|GtE|Is|IsNot)|NotEq_(Lt|LtE|Gt|GtE|Is|IsNot))$",
    r"core/ReplaceComparisonOperator_(Lt_(Eq|NotEq|Gt|GtE|Is|IsNot)|LtE_(Eq|NotEq|GtE|Gt|Is|IsNot))$",
    r"core/ReplaceComparisonOperator_(Gt_(Eq|NotEq|Lt|LtE|Is|IsNot)|GtE_(Eq|NotEq|LtE|Lt|Is|IsNot))$",
    r"core/ReplaceComparisonOperator_(Is_(Eq|NotEq|Lt|LtE|Gt|GtE)|IsNot_(Eq|NotEq|Lt|LtE|Gt|GtE))$",
    r"core/ReplaceUnaryOperator_.*(Invert|Not).*$",
    r"core/ReplaceUnaryOperator_UAdd_.*$",
    r"core/(ExceptionReplacer|VariableReplacer|VariableInserter|ReplaceBreakWithContinue|ReplaceContinueWithBreak)$",
)


def _copy_tree(dest: Path, ref: str | None) -> None:
    """The tracked files of the working tree (``ref=None``) or of commit ``ref`` into ``dest``."""
    if ref:
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    for f in files:
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def _function_lines(module: Path, names: tuple[str, ...]) -> set[int]:
    """Line numbers inside the (top-level or nested) functions called ``names`` of ``module``."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def _config(work: Path, module: str, tests: tuple[str, ...], timeout: float) -> Path:
    present = [t for t in tests if (work / t).exists()]
    cmd = f"{sys.executable} -m pytest -x -q -p no:cacheprovider -p no:randomly {' '.join(present)}"
    excluded = ", ".join(json.dumps(e) for e in EXCLUDED_OPERATORS)
    text = (
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(module)}\n"
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(cmd)}\n\n"
        '[cosmic-ray.distributor]\nname = "local"\n\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = [{excluded}]\n"
    )
    path = work / "cosmic-ray.toml"
    path.write_text(text)
    return path


def _skip_outside(session: Path, module: Path, functions: tuple[str, ...] | None) -> None:
    """Mark the mutants outside ``functions`` skipped (cosmic-ray's WorkDB API, as its filters do)."""
    if functions is None:
        return
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    keep = _function_lines(module, functions)
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            if not any(m.start_pos[0] in keep for m in item.mutations):
                db.set_result(
                    item.job_id, WorkResult(output="outside the target functions", worker_outcome=WorkerOutcome.SKIPPED)
                )


def _skip_all_but(session: Path, survivors: set[tuple[str, int]]) -> None:
    """Keep only the mutants listed as ``(operator, occurrence)`` (the survivors of an earlier run)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            if not any((m.operator_name, m.occurrence) in survivors for m in item.mutations):
                db.set_result(
                    item.job_id, WorkResult(output="killed in the earlier run", worker_outcome=WorkerOutcome.SKIPPED)
                )


def _results(session: Path) -> list[dict]:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome

    rows = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            m = item.mutations[0]
            rows.append(
                {
                    "job": item.job_id,
                    "operator": m.operator_name,
                    "occurrence": m.occurrence,
                    "line": m.start_pos[0],
                    "worker": getattr(result.worker_outcome, "value", result.worker_outcome),
                    "outcome": getattr(result.test_outcome, "value", result.test_outcome),
                    "diff": result.diff or "",
                }
            )
    return rows


def run_target(name: str, ref: str | None, out: Path, timeout: float, earlier: Path | None = None) -> dict:
    """Mutate target ``name``; with ``earlier`` (a results folder of the same target and module source),
    run only the mutants that survived there and count the others as killed (more tests only kill more)."""
    module, tests, functions = TARGETS[name]
    before: list[dict] = []
    if earlier is not None:
        before = json.loads((earlier / f"{name}.json").read_text())["mutants"]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"jtricks_mutation_{name}_") as tmp:
        work = Path(tmp)
        _copy_tree(work, ref)
        cfg = _config(work, module, tests, timeout)
        session = work / "session.sqlite"
        bin_dir = Path(sys.executable).parent
        env_run = dict(
            cwd=work,
            check=True,
            env={
                "PYTHONPATH": str(work),
                "PATH": f"{bin_dir}:/usr/bin:/bin",
                "JAX_PLATFORMS": "cpu",
                "HOME": str(Path.home()),
                # one compilation cache for every mutant of the target: a
                # program the mutant does not change is compiled once
                "JAX_COMPILATION_CACHE_DIR": str(work / ".xla-cache"),
            },
        )
        subprocess.run([str(bin_dir / "cosmic-ray"), "init", str(cfg), str(session)], **env_run)
        subprocess.run([str(bin_dir / "cr-filter-operators"), str(session), str(cfg)], **env_run)
        _skip_outside(session, work / module, functions)
        if earlier is not None:
            _skip_all_but(session, {(r["operator"], r["occurrence"]) for r in before if r["outcome"] == "survived"})
        subprocess.run([str(bin_dir / "cosmic-ray"), "exec", str(cfg), str(session)], **env_run)
        rows = _results(session)
    if earlier is not None:
        rechecked = {(r["operator"], r["occurrence"]) for r in rows}
        rows += [dict(r, rechecked=False) for r in before if (r["operator"], r["occurrence"]) not in rechecked]
        if len(rows) != len(before):
            raise RuntimeError(f"{name}: {len(rows)} mutants now, {len(before)} in {earlier}: the module changed")
    killed = sum(r["outcome"] != "survived" for r in rows)
    survived = [r for r in rows if r["outcome"] == "survived"]
    summary = {
        "target": name,
        "module": module,
        "tests": [t for t in tests if (ROOT / t).exists()] if ref is None else list(tests),
        "ref": ref or "working tree",
        "mutants": len(rows),
        "killed": killed,
        "survived": len(survived),
        "score": round(killed / len(rows), 4) if rows else None,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    (out / f"{name}.json").write_text(json.dumps({"summary": summary, "mutants": rows}, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", nargs="+", choices=sorted(TARGETS), default=list(TARGETS))
    ap.add_argument("--ref", default=None, help="mutate the tree of this commit (default: the working tree)")
    ap.add_argument("--out", default="mutation-results/latest", help="folder for the JSON results and summary.md")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per mutant's test run")
    ap.add_argument("--survivors-of", default=None, help="re-test only the survivors recorded in this results folder")
    args = ap.parse_args(argv)
    earlier = Path(args.survivors_of) if args.survivors_of else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "| target | module | mutants | killed | survived | score | wall (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in args.targets:
        s = run_target(name, args.ref, out, args.timeout, earlier)
        lines.append(
            f"| {name} | {s['module']} | {s['mutants']} | {s['killed']} | {s['survived']} | {s['score']} | "
            f"{s['wall_s']} |"
        )
        (out / "summary.md").write_text("\n".join(lines) + "\n")
        print(lines[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
