"""Placement quality on Gavel's published traces: every policy in the one simulator, against
`gavel-las` (Gavel's heterogeneity-aware LAS, max-min fairness over effective throughput solved as
an LP per round) measured in the same run, on a 36:36:36 K80/P100/V100 cluster, across loads, for
the traces of seeds 0, 1 and 2.

    python benchmarks/scheduler_quality.py --json

Jobs whose (job_type, scale_factor) the matrix lacks are clamped to the largest scale factor it has
for their type (as Gavel's own simulator must be to run these traces); restart cost 30 s per
preemption; 360 s rounds. Simulations run in a pool of `--workers` processes (at most 2 on the
shared machine). Writes results/scheduler_quality.{json,md,png}; the committed
results/scheduler_quality_runs.jsonl holds every simulation of the last full run (`--cache` it to
report again without simulating, or to rerun only what changed after deleting its lines).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import RESULTS, SHARED_DATA, emit  # noqa: E402
from schedulers.policies import POLICIES, make_policy  # noqa: E402
from schedulers.simulator.events import SimConfig, parse_cluster_spec, simulate  # noqa: E402
from schedulers.simulator.traces import check_throughputs, parse_gavel_trace, parse_throughputs  # noqa: E402

GAVEL = SHARED_DATA / "traces" / "gavel"
PEER = "gavel-las"
KEPT = ("avg_jct_s", "p99_jct_s", "makespan_s", "utilisation", "preemptions")


def load(seed: str, trace: str, cluster_spec: str):
    matrix = parse_throughputs(json.loads((GAVEL / "simulation_throughputs.json").read_text()))
    cluster = parse_cluster_spec(cluster_spec, sorted(matrix))
    path = GAVEL / "traces" / "msr" / f"seed={seed}" / trace
    jobs, clamped = check_throughputs(parse_gavel_trace(path.read_text(), str(path), tenant=f"seed{seed}"),
                                      matrix, list(cluster), clamp=True)
    return jobs, clamped, matrix, cluster


def lower_bound_avg_jct_s(seed: str, trace: str, cluster_spec: str) -> float:
    """The average JCT if every job ran alone on its fastest accelerator from the moment it
    arrives (no queueing, no slower device): no policy can do better, at any load."""
    jobs, _, matrix, cluster = load(seed, trace, cluster_spec)
    best = [max(matrix[a].get((j.job_type, j.scale_factor), 0.0) for a in cluster) for j in jobs]
    return sum(j.total_steps / rate for j, rate in zip(jobs, best, strict=True)) / len(jobs)


def run_one(task: tuple[str, str, str, float, str]) -> tuple[tuple[str, float, str], dict]:
    """One simulation: (seed, time-scale, policy) -> the kept metrics and its CPU seconds."""
    seed, trace, cluster_spec, scale, policy = task
    jobs, clamped, matrix, cluster = load(seed, trace, cluster_spec)
    start = time.process_time()
    result = simulate(jobs, matrix, cluster, make_policy(policy), SimConfig(time_scale=scale))
    kept = {k: result[k] for k in KEPT}
    kept.update(sim_cpu_s=round(time.process_time() - start, 1), jobs=len(jobs), clamped=len(clamped))
    return (seed, scale, policy), kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", default="103959.trace", help="virtual-cluster trace file in msr/seed=N/")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--time-scales", default="1,2,4,8,12")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--cluster", default="k80:36,p100:36,v100:36")
    parser.add_argument("--workers", type=int, default=2, help="simulations run at once (at most 2 here)")
    parser.add_argument("--cache", type=Path, help="JSON lines of finished simulations: read to skip them, appended "
                        "as each finishes (a long run can stop and resume)")
    parser.add_argument("--only-cached", action="store_true",
                        help="run nothing: report the time-scales whose every simulation is in --cache, and name the rest")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not GAVEL.exists():
        sys.exit(f"needs {GAVEL} (the shared data folder beside the repository)")
    policies = args.policies.split(",")
    for name in policies:
        make_policy(name)
    if PEER not in policies:
        sys.exit(f"--policies: must include {PEER!r}, the peer every ratio is against")
    seeds = args.seeds.split(",")
    scales = [float(s) for s in args.time_scales.split(",")]
    tasks = [(seed, args.trace, args.cluster, scale, p) for seed in seeds for scale in scales for p in policies]
    tasks.sort(key=lambda t: t[4] != PEER)  # the slowest (the LP each round) first, so the pool ends together
    done: dict[tuple[str, float, str], dict] = {}
    if args.cache and args.cache.exists():
        for line in args.cache.read_text().splitlines():
            entry = json.loads(line)
            if entry["trace"] == args.trace and entry["cluster"] == args.cluster:
                done[(entry["seed"], float(entry["time_scale"]), entry["policy"])] = entry["result"]
    tasks = [t for t in tasks if (t[0], t[3], t[4]) not in done]
    missing = sorted(f"seed {t[0]} time-scale {t[3]:g} {t[4]}" for t in tasks)
    if args.only_cached:
        tasks = []
        scales = [s for s in scales if all((seed, s, p) in done for seed in seeds for p in policies)]
        if not scales:
            sys.exit("--only-cached: no time-scale has every simulation in the cache yet")
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, min(args.workers, 2))) as pool:
        for i, future in enumerate(as_completed([pool.submit(run_one, t) for t in tasks]), 1):
            key, kept = future.result()
            done[key] = kept
            if args.cache:
                with args.cache.open("a") as cache:
                    cache.write(json.dumps({"trace": args.trace, "cluster": args.cluster, "seed": key[0],
                                            "time_scale": key[1], "policy": key[2], "result": kept}) + "\n")
            print(f"[{i}/{len(tasks)} {time.perf_counter() - started:.0f} s] seed {key[0]} time-scale {key[1]:g} "
                  f"{key[2]}: avg JCT {kept['avg_jct_s'] / 3600:.2f} h, makespan {kept['makespan_s'] / 3600:.1f} h",
                  file=sys.stderr)
    runs = []
    for seed in seeds:
        bound = lower_bound_avg_jct_s(seed, args.trace, args.cluster)
        for scale in scales:
            row = {"seed": int(seed), "time_scale": scale, "lower_bound_avg_jct_s": bound}
            for p in policies:
                row[p] = done[(seed, scale, p)]
                row["jobs"], row["clamped"] = row[p].pop("jobs"), row[p].pop("clamped")
            for p in policies:
                row[p]["avg_jct_over_gavel_las"] = round(row[p]["avg_jct_s"] / row[PEER]["avg_jct_s"], 3)
                row[p]["makespan_over_gavel_las"] = round(row[p]["makespan_s"] / row[PEER]["makespan_s"], 3)
            runs.append(row)
    table = summary(runs, policies, scales)
    plot(table, policies, scales)
    hetero = {s: table[s].get("hetero") for s in table}
    goal = {
        "hetero_avg_jct_over_gavel_las_max": max(v["avg_jct_over_gavel_las"] for v in hetero.values() if v),
        "hetero_makespan_over_gavel_las_max": max(v["makespan_over_gavel_las"] for v in hetero.values() if v),
        "goal": "hetero avg JCT <= 0.9x gavel-las and makespan <= 1.1x at every time-scale",
        "goal_met_at": [s for s, v in hetero.items() if v and v["avg_jct_over_gavel_las"] <= 0.9
                        and v["makespan_over_gavel_las"] <= 1.1],
        "goal_below_lower_bound_at": [s for s in table if table[s]["lower_bound_over_gavel_las"] > 0.9],
    } if "hetero" in policies else {}
    result = {"trace": args.trace, "cluster": args.cluster, "seeds": seeds, "time_scales": scales,
              "policies": policies, "per_time_scale": table, **goal, "runs": runs,
              "not_run": missing if args.only_cached else []}
    markdown = "| scheduler quality | Gavel msr/{}, seeds {}, {} | {} | see scheduler_quality.png |".format(
        args.trace, args.seeds, args.cluster,
        "; ".join(f"ts {s:g}: hetero/gavel-las avg JCT {table[str(s)]['hetero']['avg_jct_over_gavel_las']:.2f}x "
                  f"(lower bound {table[str(s)]['lower_bound_over_gavel_las']:.2f}x), "
                  f"makespan {table[str(s)]['hetero']['makespan_over_gavel_las']:.2f}x" for s in scales)
        if "hetero" in policies else "")
    emit("scheduler_quality", result, markdown, args.json)


def summary(runs: list[dict], policies: list[str], scales: list[float]) -> dict:
    """Per time-scale and policy: mean over seeds of avg JCT and makespan (hours), and the ratios
    of those means to gavel-las's."""
    table: dict[str, dict] = {}
    for s in scales:
        rows = [r for r in runs if r["time_scale"] == s]
        per = {}
        for p in policies:
            jct = sum(r[p]["avg_jct_s"] for r in rows) / len(rows)
            span = sum(r[p]["makespan_s"] for r in rows) / len(rows)
            per[p] = {"avg_jct_h": round(jct / 3600, 3), "makespan_h": round(span / 3600, 2),
                      "preemptions": round(sum(r[p]["preemptions"] for r in rows) / len(rows))}
        for p in policies:
            per[p]["avg_jct_over_gavel_las"] = round(per[p]["avg_jct_h"] / per[PEER]["avg_jct_h"], 3)
            per[p]["makespan_over_gavel_las"] = round(per[p]["makespan_h"] / per[PEER]["makespan_h"], 3)
        bound = sum(r["lower_bound_avg_jct_s"] for r in rows) / len(rows) / 3600
        table[str(s)] = {**per, "lower_bound_avg_jct_h": round(bound, 3),
                         "lower_bound_over_gavel_las": round(bound / per[PEER]["avg_jct_h"], 3)}
        print(f"time-scale {s:g}: lower bound {bound:.2f} h; " + ", ".join(
            f"{p} {v['avg_jct_h']:.2f} h ({v['avg_jct_over_gavel_las']:.2f}x)" for p, v in per.items()), file=sys.stderr)
    return table


def plot(table: dict, policies: list[str], scales: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in policies:
        axes[0].plot(scales, [table[str(s)][name]["avg_jct_h"] for s in scales], marker="o", label=name)
        axes[1].plot(scales, [table[str(s)][name]["avg_jct_over_gavel_las"] for s in scales], marker="o", label=name)
    axes[0].plot(scales, [table[str(s)]["lower_bound_avg_jct_h"] for s in scales], color="black", linestyle=":",
                 label="lower bound (alone on its fastest GPU)")
    axes[1].plot(scales, [table[str(s)]["lower_bound_over_gavel_las"] for s in scales], color="black", linestyle=":",
                 label="lower bound")
    axes[0].set_ylabel("average JCT, mean over seeds (hours)")
    axes[1].set_ylabel("average JCT / gavel-las's")
    axes[1].axhline(0.9, color="grey", linestyle="--", linewidth=0.8)
    for ax in axes:
        ax.set_xlabel("load: time-scale (arrival times divided by)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Gavel MSR traces on 36 K80 + 36 P100 + 36 V100, one simulator")
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "scheduler_quality.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
