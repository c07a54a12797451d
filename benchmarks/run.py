"""Run every benchmark, print one table, write ``benchmarks/results/<date>-<host>[-quick].{json,md}``.

    python -m benchmarks.run --quick     # about 3 minutes on a 2-core CPU
    python -m benchmarks.run             # full: more blocks, S = 16 CNN populations, XLA-flag variants, profiles
    python -m benchmarks.run --only step,peak

Benchmarks (one module each): ``peak`` and ``step`` (:mod:`benchmarks.step`), ``population``
(:mod:`benchmarks.population`), ``compile`` (:mod:`benchmarks.compile`), ``memory``
(:mod:`benchmarks.memory`), ``profile`` (full mode: per-operation breakdowns, :mod:`benchmarks.profile`).
Timings are medians over interleaved timed blocks after warm-up, with the min–max spread; every ratio
is between numbers measured in the same run. The load average before and after is recorded: other
processes on the machine make every absolute number lower (ratios less so).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common

ALL = ("peak", "step", "population", "compile", "memory", "profile")


# --------------------------------------------------------------------------------------- profiles
def run_profiles(verbose: bool = True) -> dict[str, Any]:
    """Per-operation time (µs per step / member-step, by category) of the MLP step and the MLP population."""
    from benchmarks import models_ref as ref
    from benchmarks import population as bp
    from benchmarks import profile as prof
    from benchmarks import step as bstep

    out: dict[str, Any] = {}
    x, y = ref.synthetic_data("mlp", 16)
    for name, run in (
        ("mlp step jtricks", bstep.jtricks_runner("mlp", x, y)),
        ("mlp step jax+optax", ref.jax_runner("mlp", x, y)),
    ):
        p = prof.op_profile(run, 30)
        out[name] = {
            "unit": "us per step",
            "total": round(sum(p.values()), 1),
            "categories": prof.categorize(p),
            "top": prof.summarize(p, 10),
        }
    xm, ym, _ = bp.mnist1d_arrays()
    S, K = 16, bp.STEPS_PER_EPOCH
    for name, run in (
        (f"mnist1d population S={S} jtricks", bp.jtricks_mlp_population(S, xm, ym)),
        (f"mnist1d population S={S} jax", bp.jax_mlp_population(S, xm, ym)),
    ):
        p = {k: v / (K * S) for k, v in prof.op_profile(run, 5).items()}
        out[name] = {
            "unit": "us per member-step",
            "total": round(sum(p.values()), 2),
            "categories": {k: round(v, 2) for k, v in prof.categorize(p).items()},
            "top": [(k, round(v, 2)) for k, v in prof.summarize(p, 10)],
        }
    if verbose:
        for k, v in out.items():
            print(f"[profile] {k}: total {v['total']} {v['unit']}: {v['categories']}", flush=True)
    return out


# ------------------------------------------------------------------------------------------ tables
def tables(res: dict[str, Any]) -> str:
    """The results as Markdown tables (what ``run`` prints and writes to the .md file)."""
    md: list[str] = []
    m = res["machine"]
    md.append(
        f"Machine: {m['cpu']}, {m['cores']} cores, backend {m['backend']} ({m['device']}); "
        f"load average {res['load_before']} before, {res['load_after']} after; mode {res['mode']}; "
        f"{res['seconds']} s ({', '.join(f'{k} {v}' for k, v in res.get('section_seconds', {}).items())})."
    )
    md.append("Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()))
    peak = res.get("peak")
    if peak:
        md.append(f"\n**peak**: float32 {peak['n']}² matmul in jax: {common.fmt_rate(peak['gflops'], 1)} GFLOP/s")
    step = res.get("step")
    if step:
        rows = []
        for case, c in step["cases"].items():
            for fw, e in c["frameworks"].items():
                rows.append(
                    [
                        case,
                        fw,
                        common.fmt_rate(e["steps_per_s"]),
                        f"{e['samples_per_s']:,.0f}",
                        f"{e['ratio_to_jtricks']:.2f}",
                        e["gflops"],
                        e.get("fraction_of_peak", ""),
                    ]
                )
        md.append("\n**step** (steps/s: median [min–max]; ratio = framework / jtricks)\n")
        md.append(
            common.markdown_table(["case", "framework", "steps/s", "samples/s", "ratio", "GFLOP/s", "of peak"], rows)
        )
        if step.get("note"):
            md.append("\n" + step["note"])
    pop = res.get("population")
    if pop and "mlp" in pop:
        p = pop["mlp"]
        rows = [[k, common.fmt_rate(v)] for k, v in p["sequential"].items()]
        md.append(f"\n**population / MNIST-1D MLP** ({p['model']}; data: {p['data']}), member-steps/s\n")
        md.append(common.markdown_table(["sequential runs", "member-steps/s"], rows))
        rows = [
            [
                S,
                common.fmt_rate(v["member_steps_per_s"]),
                common.fmt_rate(v["handwritten_jax_member_steps_per_s"]),
                v["ratio_to_handwritten_jax"],
                v["speedup_vs_jtricks_sequential"],
                v["speedup_vs_jtricks_host_loop"],
                v["speedup_vs_torch_sequential"],
            ]
            for S, v in p["population"].items()
        ]
        md.append("")
        md.append(
            common.markdown_table(
                [
                    "S",
                    "jtricks population",
                    "hand-written jax population",
                    "jtricks / jax",
                    "× jtricks sequential",
                    "× jtricks host loop",
                    "× torch sequential",
                ],
                rows,
            )
        )
    if pop and "cnn" in pop:
        md.append("\n**population / notebook CNN** (batch 64), ms per member-step (cost vs standalone host loop)\n")
        rows = []
        for fname, f in pop["cnn"].items():
            for S, pt in f["points"].items():
                for v, e in pt["variants"].items():
                    rows.append(
                        [fname, S, v, e["ms_per_member_step"], e.get("cost_vs_standalone", ""), e["first_call_s"]]
                    )
        md.append(
            common.markdown_table(
                ["XLA flags", "S", "conv:strategy", "ms/member-step", "× standalone", "first call s"], rows
            )
        )
    comp = res.get("compile")
    if comp:
        rows = [[k, v["trace_lower_s"], v["compile_s"]] for k, v in comp["steps"].items()]
        rows += [[f"cnn population {k}", v["trace_lower_s"], v["compile_s"]] for k, v in comp["cnn_population"].items()]
        md.append("\n**compile** (seconds)\n")
        md.append(common.markdown_table(["program", "trace+lower s", "XLA compile s"], rows))
        rows = [
            [g["model"], g["grid"], g["members"], json.dumps(g["compiles"]), g["one_per_function"], g["wall_s_1_epoch"]]
            for g in comp["grids"]
        ]
        md.append("")
        md.append(
            common.markdown_table(
                ["grid", "factors", "members", "compilations", "1 per function", "wall s (1 epoch)"], rows
            )
        )
        if comp.get("halving"):
            rows = [
                [r["method"], json.dumps(r["members_per_epoch"]), json.dumps(r["epoch_traces"]), r["xla_programs"]]
                + [r["xla_compile_s"], r["wall_s"]]
                for r in comp["halving"]
            ]
            md.append("\n**successive halving vs the grid** (docs/search.md's random-search grid, 3 epochs)\n")
            md.append(
                common.markdown_table(
                    ["method", "members per epoch", "epoch traces", "XLA programs", "XLA compile s", "wall s"], rows
                )
            )
    mem = res.get("memory")
    if mem:
        rows = [
            [k, ", ".join(f"S={p['S']}: {p['peak_mib']:.0f}" for p in v["points"]), v["per_member_mib"]]
            for k, v in mem.items()
        ]
        md.append("\n**memory** (peak RSS MiB per population size; per member = largest slope)\n")
        md.append(common.markdown_table(["population", "peak RSS MiB", "MiB per member"], rows))
    prof = res.get("profile")
    if prof:
        md.append("\n**profile** (XLA CPU operation time, jax.profiler trace)\n")
        rows = [
            [k, v["unit"], v["total"], ", ".join(f"{c} {t}" for c, t in v["categories"].items())]
            for k, v in prof.items()
        ]
        md.append(common.markdown_table(["program", "unit", "total", "by category"], rows))
    return "\n".join(md) + "\n"


# --------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer blocks and sizes (about 3 minutes on 2 cores)")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--out", default=str(common.RESULTS_DIR), help="results folder")
    ap.add_argument(
        "--pop-sizes", help="MLP population sizes, e.g. 1,16,64,256,1024 (default: quick 16,64; full 1,4,16,64,256)"
    )
    ap.add_argument("--cnn-sizes", help="CNN population sizes (default: quick 4; full 1,4,16)")
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(ALL) - ({"profile"} if args.quick else set())
    unknown = only - set(ALL)
    if unknown:
        ap.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {ALL}")
    quick = args.quick
    t0 = time.perf_counter()
    res: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "date": common.now_stamp(),
        "machine": common.machine_info(),
        "versions": common.versions(),
        "load_before": [round(v, 2) for v in os.getloadavg()],
    }
    from benchmarks import compile as bcompile
    from benchmarks import memory as bmemory
    from benchmarks import population as bpop
    from benchmarks import step as bstep

    sections: dict[str, float] = {}
    res["section_seconds"] = sections
    tick = [time.perf_counter()]

    def done(name: str) -> None:
        now = time.perf_counter()
        sections[name] = round(now - tick[0], 1)
        tick[0] = now

    if "peak" in only or "step" in only:
        res["peak"] = bstep.matmul_peak(blocks=3 if quick else 7)
        print(f"[peak] {common.fmt_rate(res['peak']['gflops'], 1)} GFLOP/s", flush=True)
        done("peak")
    if "step" in only:
        res["step"] = bstep.run_step(quick=quick, peak=res["peak"])
        done("step")
    if "population" in only:
        pop_sizes = (
            tuple(int(v) for v in args.pop_sizes.split(","))
            if args.pop_sizes
            else ((16, 64) if quick else (1, 4, 16, 64, 256))
        )
        cnn_sizes = (
            tuple(int(v) for v in args.cnn_sizes.split(",")) if args.cnn_sizes else ((4,) if quick else (1, 4, 16))
        )
        res["population"] = {"mlp": bpop.run_mlp(quick=quick, sizes=pop_sizes)}
        if quick:
            res["population"]["cnn"] = bpop.run_cnn(quick=True, sizes=cnn_sizes)
        else:
            variants = [
                "jtricks:standalone",
                "jtricks:vmap",
                "jtricks:unroll",
                "jtricks:unroll_serial",
                "patches:vmap",
                "patches:unroll",
                "nchw:vmap",
            ]
            res["population"]["cnn"] = bpop.run_cnn(quick=False, sizes=cnn_sizes, variants=variants)
            flags = {
                "concurrency_optimized_scheduler=false": "--xla_cpu_enable_concurrency_optimized_scheduler=false",
                "use_onednn": "--xla_cpu_use_onednn=true",
                "no_ynn_fusion": "--xla_cpu_experimental_ynn_fusion_type=",
            }
            res["population"]["cnn_flags"] = bpop.run_cnn(
                quick=False,
                sizes=(4,),
                variants=["jtricks:standalone", "jtricks:unroll", "jtricks:unroll_serial", "jtricks:vmap"],
                flags=flags,
            )
            res["population"]["cnn"].update(res["population"].pop("cnn_flags"))
        done("population")
    if "compile" in only:
        res["compile"] = bcompile.run_compile(quick=quick)
        done("compile")
    if "memory" in only:
        res["memory"] = bmemory.run_memory(quick=quick)
        done("memory")
    if "profile" in only:
        res["profile"] = run_profiles()
        done("profile")
    res["load_after"] = [round(v, 2) for v in os.getloadavg()]
    res["seconds"] = round(time.perf_counter() - t0, 1)
    text = tables(res)
    print("\n" + text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{res['date']}-{res['machine']['host']}" + ("-quick" if quick else "")
    (out / f"{stem}.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    (out / f"{stem}.md").write_text(text)
    print(f"wrote {out / (stem + '.json')} and .md", file=sys.stderr)
    return res


if __name__ == "__main__":
    main()
