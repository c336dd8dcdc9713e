"""`suanli simulate`: replay a published trace on a described cluster under several policies."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from runtime.cli.common import console, fail, print_json
from schedulers.policies import make_policy
from schedulers.simulator.events import SimConfig, parse_cluster_spec, simulate
from schedulers.simulator.traces import (
    TraceError,
    TraceJob,
    check_throughputs,
    parse_gavel_trace,
    parse_sia_trace,
    parse_throughputs,
    parse_tiresias_trace,
)


def load_trace(path: Path, matrix) -> list[TraceJob]:
    """Read a Gavel (.trace), Tiresias or Sia (CSV, told apart by header) trace file."""
    if not path.exists():
        raise TraceError(f"--trace: {path} does not exist")
    text = path.read_text()
    if path.suffix == ".csv":
        header = text.split("\n", 1)[0]
        if "num_gpu" in header:
            return parse_tiresias_trace(text, matrix, str(path))
        if "application" in header:
            return parse_sia_trace(text, matrix, str(path))
        raise TraceError(f"{path}:1: not a Tiresias (num_gpu,...) or Sia (name,time,application,...) header")
    return parse_gavel_trace(text, str(path), tenant=path.stem)


def run_policies(jobs, matrix, cluster, policies, time_scales, base: SimConfig, progress: bool):
    """{time_scale: {policy: metrics}} for every combination, with a progress bar."""
    results: dict[float, dict[str, dict]] = {}
    with Progress(console=console, transient=True, disable=not progress) as bar:
        task = bar.add_task("simulating", total=len(policies) * len(time_scales))
        for scale in time_scales:
            config = SimConfig(round_s=base.round_s, restart_s=base.restart_s, gpus_per_node=base.gpus_per_node,
                               time_scale=scale)
            for name in policies:
                bar.update(task, description=f"{name} at time-scale {scale:g}")
                results.setdefault(scale, {})[name] = simulate(jobs, matrix, cluster, make_policy(name), config)
                bar.advance(task)
    return results


def plot_load(results: dict[float, dict[str, dict]], path: Path, title: str) -> None:
    """Average JCT against load (time-scale), one line per policy, like Gavel's figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = sorted(results)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name in next(iter(results.values())):
        ax.plot(scales, [results[s][name]["avg_jct_s"] / 3600 for s in scales], marker="o", label=name)
    ax.set_xlabel("load (time-scale: arrival times divided by)")
    ax.set_ylabel("average JCT (hours)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def simulate_command(
    trace: Path = typer.Option(..., "--trace", help="Gavel .trace, Tiresias CSV or Sia CSV file."),
    throughputs: Path = typer.Option(..., "--throughputs", help="Gavel throughput matrix (JSON)."),
    cluster: str = typer.Option("k80:36,p100:36,v100:36", "--cluster", help="ACCELERATOR:COUNT,..."),
    policy: str = typer.Option("hetero", "--policy"),
    compare: str = typer.Option("", "--compare", help="Other policies, comma separated (e.g. fifo,packing)."),
    time_scale: float = typer.Option(1.0, "--time-scale", help="Divide arrival times by X (X > 1: more load)."),
    on_missing_throughput: str = typer.Option("refuse", "--on-missing-throughput", help="refuse or clamp"),
    restart_s: float = typer.Option(30.0, "--restart-s", help="Seconds lost on each preemption or migration."),
    round_s: float = typer.Option(360.0, "--round-s", help="Time-sharing round length."),
    gpus_per_node: int = typer.Option(4, "--gpus-per-node"),
    json_out: bool = typer.Option(False, "--json"),
    plot: Path | None = typer.Option(None, "--plot", help="PNG of average JCT against load for the policies."),
    plot_time_scales: str = typer.Option("1,2,4,8,16", "--plot-time-scales"),
) -> None:
    """Replay a trace under a policy (and others to compare) and print JCT, makespan, utilisation."""
    if on_missing_throughput not in ("refuse", "clamp"):
        raise fail(f"--on-missing-throughput: {on_missing_throughput!r} is not one of refuse, clamp")
    if time_scale <= 0 or restart_s < 0 or round_s <= 0 or gpus_per_node < 1:
        raise fail("--time-scale and --round-s must be > 0, --restart-s >= 0, --gpus-per-node >= 1")
    policies = [policy] + [p.strip() for p in compare.split(",") if p.strip() and p.strip() != policy]
    try:
        for name in policies:
            make_policy(name)
        if not throughputs.exists():
            raise TraceError(f"--throughputs: {throughputs} does not exist")
        matrix = parse_throughputs(json.loads(throughputs.read_text()), str(throughputs))
        devices = parse_cluster_spec(cluster, sorted(matrix))
        jobs, clamped = check_throughputs(load_trace(trace, matrix), matrix, list(devices),
                                          clamp=on_missing_throughput == "clamp")
        scales = sorted({float(s) for s in plot_time_scales.split(",")} | {time_scale}) if plot else [time_scale]
    except (TraceError, ValueError) as exc:
        raise fail(str(exc)) from None
    base = SimConfig(round_s=round_s, restart_s=restart_s, gpus_per_node=gpus_per_node)
    results = run_policies(jobs, matrix, devices, policies, scales, base, progress=not json_out)
    if plot:
        plot_load(results, plot, f"{trace.name} on {cluster}")
    chosen = results[time_scale]
    if json_out:
        print_json({**chosen, "_meta": {"trace": str(trace), "jobs": len(jobs), "clamped": len(clamped),
                                        "cluster": devices, "time_scale": time_scale}})
        return
    if clamped:
        console.print(f"clamped {len(clamped)} job(s) to the largest scale factor the matrix has for their type")
    table = Table(title=f"{trace.name}: {len(jobs)} jobs on {cluster}, time-scale {time_scale:g}")
    for col in ("policy", "avg JCT h", "p50 JCT h", "p99 JCT h", "makespan h", "queueing h", "utilisation",
                "fairness", "preemptions"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, r in chosen.items():
        util = " ".join(f"{k}={v:.0%}" for k, v in r["utilisation"].items())
        table.add_row(name, f"{r['avg_jct_s'] / 3600:.2f}", f"{r['p50_jct_s'] / 3600:.2f}",
                      f"{r['p99_jct_s'] / 3600:.2f}", f"{r['makespan_s'] / 3600:.1f}",
                      f"{r['avg_queueing_delay_s'] / 3600:.2f}", util, f"{r['fairness_jain_tenant_slowdown']:.2f}",
                      str(r["preemptions"]))
    console.print(table)
    if plot:
        console.print(f"wrote {plot}")
