"""`suanli bench`: what each device kind here is worth, measured, for operators and the scheduler.

Runs the micro-benchmarks (matmul, memory bandwidth, host-to-device copy) and workload
benchmarks (a training step, an inference batch, the feature kernel) on every device kind present:
the CPU always, CUDA GPUs when torch sees them. NPUs need `torch_npu`, which suanli does not yet
drive: they are reported as not benchmarked. Prints a table with speed-up against the CPU and %
of the device's published peak, and can write JSON, an HTML page with charts, and a throughput
profile that the scheduler's ThroughputModel loads.
"""

from __future__ import annotations

import html as html_lib
import io
import json
from pathlib import Path

import torch
import typer
from rich.progress import Progress
from rich.table import Table

from cluster.devices.cpu import cpu_model_name
from cluster.devices.npu import AscendNpuDiscovery
from cluster.devices.nvidia_gpu import short_gpu_model
from kernels import microbench, workloads
from runtime.cli.common import console, print_json

# which measured benchmark tells the scheduler each algorithm class's speed
PROFILE_SOURCES = {"mlp": "train_step_mlp", "linear": "train_step_linear", "features": "feature_kernel",
                   "gbdt": "train_step_gbdt"}
# Work units of the scheduler per measured unit: the feature kernel is measured in events/s over 3
# windows; GBDT in row-rounds/s, and a GBDT job's unit of work is rows x epochs, an epoch being a
# block of 100 rounds by default (500 trees in 5 blocks).
UNITS_PER_MEASURED = {"features": 3.0, "gbdt": 1 / 100}


def devices_present() -> list[dict]:
    """[{kind, model, torch_device}] for the CPU and each CUDA GPU torch can use."""
    out = [{"kind": "cpu", "model": cpu_model_name(), "torch_device": "cpu"}]
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        out.append({"kind": "gpu", "model": short_gpu_model(torch.cuda.get_device_name(i)), "torch_device": f"cuda:{i}"})
    return out


def plan(device: dict, quick: bool) -> list[tuple[str, object]]:
    """(label, zero-argument callable) for every benchmark to run on `device`."""
    d = device["torch_device"]
    size = 512 if quick else 2048
    mb = 32 if quick else 256
    events = 50_000 if quick else 1_000_000
    steps = 3 if quick else 20
    jobs = [("matmul fp32", lambda: microbench.matmul(d, torch.float32, size))]
    for dtype in microbench.supported_half_dtypes(d):
        jobs.append((f"matmul {dtype}", lambda dtype=dtype: microbench.matmul(d, dtype, size if d != "cpu" else size // 2)))
    jobs.append(("memory bandwidth", lambda: microbench.memory_bandwidth(d, mb)))
    if device["kind"] != "cpu":
        jobs.append(("host to device", lambda: microbench.host_to_device(d, mb)))
    jobs += [
        ("train step (MLP)", lambda: workloads.train_step(d, steps=steps)),
        ("train step (linear)", lambda: workloads.train_step_linear(d, steps=steps)),
        ("train step (GBDT)", lambda: workloads.train_step_gbdt(d, rows=20_000 if quick else 200_000,
                                                                 rounds=3 if quick else 10)),
        ("inference batch", lambda: workloads.inference_batch(d, repeats=steps)),
        ("feature kernel", lambda: workloads.feature_kernel(d, events=events)),
    ]
    return jobs


def run_all(quick: bool) -> dict:
    """Every benchmark on every device present, with a progress bar; the report dict."""
    devices = devices_present()
    plans = [(device, label, fn) for device in devices for label, fn in plan(device, quick)]
    rows = []
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("benchmarking", total=len(plans))
        for device, label, fn in plans:
            bar.update(task, description=f"{label} on {device['torch_device']}")
            m = fn()
            rows.append({**m.to_dict(), "kind": device["kind"], "model": device["model"],
                         "peak": microbench.peak_for(device["model"], m.name)})
            bar.advance(task)
    cpu = {r["name"]: r["value"] for r in rows if r["kind"] == "cpu"}
    for r in rows:
        r["speedup_vs_cpu"] = r["value"] / cpu[r["name"]] if r["name"] in cpu and cpu[r["name"]] else None
        r["percent_of_peak"] = 100 * r["value"] / r["peak"] if r["peak"] else None
    npus = AscendNpuDiscovery().discover()
    notes = []
    if len(devices) == 1:
        notes.append("No CUDA GPU on this machine: only the CPU was benchmarked. The CUDA paths of these kernels "
                     "run unchanged on a GPU node (`suanli bench` there).")
    if npus:
        notes.append(f"{len(npus)} Ascend NPU(s) found but not benchmarked: suanli does not yet drive torch_npu.")
    return {"devices": devices, "results": rows, "notes": notes, "cpu_threads": torch.get_num_threads()}


def profile_from(report: dict) -> dict:
    """The scheduler profile: work units/s per (algorithm class, kind, model) on ONE device (one
    core for the CPU, as the ThroughputModel counts CPU rates)."""
    entries = []
    for algorithm, source in PROFILE_SOURCES.items():
        for r in report["results"]:
            if r["name"] != source:
                continue
            value = r["value"] * UNITS_PER_MEASURED.get(algorithm, 1.0)
            per_device = value / report["cpu_threads"] if r["kind"] == "cpu" else value
            entries.append({"algorithm": algorithm, "kind": r["kind"], "model": r["model"], "units_per_s": per_device,
                            "source": f"suanli bench: {source}"})
    return {"version": 1, "throughputs": entries}


def bench_table(report: dict) -> Table:
    """The report as a rich table."""
    table = Table(title="suanli bench")
    for col in ("benchmark", "device", "model", "throughput", "vs CPU", "% of peak"):
        table.add_column(col, justify="right" if col in ("throughput", "vs CPU", "% of peak") else "left")
    for r in report["results"]:
        table.add_row(r["name"], r["device"], r["model"], f"{r['value']:,.1f} {r['unit']}",
                      "-" if r["speedup_vs_cpu"] is None else f"{r['speedup_vs_cpu']:.1f}x",
                      "-" if r["percent_of_peak"] is None else f"{r['percent_of_peak']:.0f}%")
    return table


def bench_html(report: dict) -> str:
    """A page with one bar chart per benchmark (devices side by side) and the notes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["name"] for r in report["results"]))
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 3.4))
    for ax, name in zip(axes if len(names) > 1 else [axes], names, strict=True):
        rows = [r for r in report["results"] if r["name"] == name]
        ax.bar([f"{r['kind']}\n{r['model']}" for r in rows], [r["value"] for r in rows], color="#2e86c1")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel(rows[0]["unit"], fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    notes = "".join(f"<p>{html_lib.escape(n)}</p>" for n in report["notes"])
    return f"<!doctype html><html><head><meta charset='utf-8'><title>suanli bench</title></head><body>" \
           f"<h1>suanli bench</h1>{notes}{svg[svg.index('<svg'):]}</body></html>"


def bench(
    json_out: bool = typer.Option(False, "--json", help="Print the full report as JSON on standard output."),
    out: Path | None = typer.Option(None, "--out", help="Write the full report as JSON to this file."),
    html: Path | None = typer.Option(None, "--html", help="Write an HTML page with charts to this file."),
    save_profile: Path | None = typer.Option(None, "--save-profile", help="Write a throughput profile for the scheduler."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes (seconds, not minutes)."),
) -> None:
    """Benchmark every device kind present and compare it with the CPU."""
    report = run_all(quick)
    if out:
        out.write_text(json.dumps(report, indent=2))
    if html:
        html.write_text(bench_html(report))
    if save_profile:
        profile = profile_from(report)
        save_profile.write_text(json.dumps(profile, indent=2))
    if json_out:  # standard output holds the JSON alone
        print_json(report)
        return
    for note in report["notes"]:
        console.print(note)
    console.print(bench_table(report))
    for path in (out, html, save_profile):
        if path:
            console.print(f"wrote {path}")
