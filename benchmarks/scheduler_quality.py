"""Placement quality on Gavel's published traces: average JCT and makespan of `hetero` (and `las`)
against the heterogeneity-agnostic `fifo` and `packing`, on a 36:36:36 K80/P100/V100 cluster,
across loads, for the traces of seeds 0, 1 and 2.

    python benchmarks/scheduler_quality.py --json

Jobs whose (job_type, scale_factor) the matrix lacks are clamped to the largest scale factor it has
for their type (as Gavel's own simulator must be to run these traces); restart cost 30 s per
preemption; 360 s rounds. Writes results/scheduler_quality.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import RESULTS, SHARED_DATA, emit  # noqa: E402
from schedulers.policies import make_policy  # noqa: E402
from schedulers.simulator.events import SimConfig, parse_cluster_spec, simulate  # noqa: E402
from schedulers.simulator.traces import check_throughputs, parse_gavel_trace, parse_throughputs  # noqa: E402

GAVEL = SHARED_DATA / "traces" / "gavel"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", default="103959.trace", help="virtual-cluster trace file in msr/seed=N/")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--time-scales", default="2,4,8,12")
    parser.add_argument("--policies", default="hetero,las,fifo,packing")
    parser.add_argument("--cluster", default="k80:36,p100:36,v100:36")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not GAVEL.exists():
        sys.exit(f"needs {GAVEL} (the shared data folder beside the repository)")
    matrix = parse_throughputs(json.loads((GAVEL / "simulation_throughputs.json").read_text()))
    cluster = parse_cluster_spec(args.cluster, sorted(matrix))
    policies = args.policies.split(",")
    scales = [float(s) for s in args.time_scales.split(",")]
    runs = []
    for seed in args.seeds.split(","):
        path = GAVEL / "traces" / "msr" / f"seed={seed}" / args.trace
        jobs, clamped = check_throughputs(parse_gavel_trace(path.read_text(), str(path), tenant=f"seed{seed}"),
                                          matrix, list(cluster), clamp=True)
        for scale in scales:
            row = {"seed": int(seed), "time_scale": scale, "jobs": len(jobs), "clamped": len(clamped)}
            for name in policies:
                start = time.perf_counter()
                result = simulate(jobs, matrix, cluster, make_policy(name), SimConfig(time_scale=scale))
                row[name] = {k: result[k] for k in ("avg_jct_s", "p99_jct_s", "makespan_s", "utilisation", "preemptions")}
                row[name]["sim_seconds"] = round(time.perf_counter() - start, 1)
            for base in ("fifo", "packing"):
                if base in row and "hetero" in row:
                    row[f"avg_jct_{base}_over_hetero"] = round(row[base]["avg_jct_s"] / row["hetero"]["avg_jct_s"], 2)
                    row[f"makespan_{base}_over_hetero"] = round(row[base]["makespan_s"] / row["hetero"]["makespan_s"], 2)
            runs.append(row)
            print(f"seed {seed} time-scale {scale:g}: " + ", ".join(
                f"{n} {row[n]['avg_jct_s'] / 3600:.1f} h" for n in policies), file=sys.stderr)
    plot(runs, policies, scales)
    ratios = [r["avg_jct_fifo_over_hetero"] for r in runs if "avg_jct_fifo_over_hetero" in r]
    result = {"trace": args.trace, "cluster": cluster, "runs": runs,
              "avg_jct_fifo_over_hetero_max": max(ratios), "avg_jct_fifo_over_hetero_min": min(ratios)}
    markdown = (f"| scheduler quality | Gavel msr/{args.trace}, seeds {args.seeds}, {args.cluster} | avg JCT fifo/hetero "
                f"{min(ratios):.2f}x to {max(ratios):.2f}x across time-scales {args.time_scales} | see scheduler_quality.png |")
    emit("scheduler_quality", result, markdown, args.json)


def plot(runs, policies, scales) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in policies:
        means = [sum(r[name]["avg_jct_s"] for r in runs if r["time_scale"] == s) / 3600 /
                 len([r for r in runs if r["time_scale"] == s]) for s in scales]
        ax.plot(scales, means, marker="o", label=name)
    ax.set_xlabel("load: time-scale (arrival times divided by)")
    ax.set_ylabel("average JCT, mean over seeds (hours)")
    ax.set_title("Gavel MSR traces on 36 K80 + 36 P100 + 36 V100")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "scheduler_quality.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
