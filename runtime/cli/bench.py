"""`suanli bench`: what each device kind here is worth, measured, for operators and the scheduler.

Runs the micro-benchmarks (matmul, memory bandwidth, host-to-device copy) and workload
benchmarks (a training step, an inference batch, the feature kernel) on every device kind present:
the CPU always, CUDA GPUs when torch sees them. Sizes follow the device (`kernels.sizing`):
matmul, copies and batches grow until the rate stops rising, so a GPU is measured where it is not
launch-bound; the feature kernel runs 10M events on a GPU. Each figure is reported with the size
it was measured at, and each profile rate with the regime it holds for (rows per batch, events
per job), which `runtime.profiles` uses so a small-batch GPU rate is never applied to a large job.
NPUs need `torch_npu`, which suanli does not yet drive: they are reported as not benchmarked.
Prints a table with speed-up against the CPU and % of the device's published peak, and can write
JSON, an HTML page with charts, and the throughput profile the scheduler's ThroughputModel loads.
"""

from __future__ import annotations

import html as html_lib
import importlib.util
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
from kernels import microbench, sizing, workloads
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


def swept(measure, sizes: list[int], regime_unit: str | None = None) -> dict:
    """The best Measurement of `measure(size)` over `sizes` grown until the rate stops rising, with
    the sweep and, for a workload, the regime (`regime_unit`: the best size) its rate holds for."""
    measured: dict[int, microbench.Measurement] = {}

    def rate(size: int) -> float:
        measured[size] = measure(size)
        return measured[size].value

    sweep = sizing.grow_until_plateau(rate, sizes)
    return {"measurement": measured[sweep.best_size], "sweep": sweep.to_dict(),
            "regime": {regime_unit: sweep.best_size} if regime_unit else None}


def once(measurement: microbench.Measurement, regime: dict | None = None) -> dict:
    return {"measurement": measurement, "sweep": None, "regime": regime}


def plan(device: dict, quick: bool, memory_bytes: int) -> list[tuple[str, object]]:
    """(label, zero-argument callable returning {measurement, sweep, regime}) for every benchmark
    on `device`, sized to it (`quick`: the two smallest sizes of each sweep, small workloads)."""
    d, kind = device["torch_device"], device["kind"]
    cut = 2 if quick else None
    steps = 3 if quick else 10
    batches = sizing.batch_sizes(kind)[:cut]
    events = sizing.feature_events(kind, quick)
    gbdt_rows = 20_000 if quick else 200_000
    jobs = []
    for dtype in [torch.float32, *microbench.supported_half_dtypes(d)]:
        sizes = sizing.matmul_sizes(kind, memory_bytes, torch.finfo(dtype).bits // 8)[:cut]
        jobs.append((f"matmul {dtype}", lambda dtype=dtype, sizes=sizes: swept(
            lambda n: microbench.matmul(d, dtype, n), sizes)))
    jobs.append(("memory bandwidth", lambda: swept(lambda mb: microbench.memory_bandwidth(d, mb),
                                                   sizing.bandwidth_megabytes(kind, memory_bytes)[:cut])))
    if kind != "cpu":
        jobs.append(("host to device", lambda: once(microbench.host_to_device(d, 64 if quick else 1024))))
    jobs += [
        ("train step (MLP)", lambda: swept(lambda b: workloads.train_step(d, batch=b, steps=steps), batches,
                                           "rows_per_batch")),
        ("train step (linear)", lambda: swept(lambda b: workloads.train_step_linear(d, batch=b, steps=steps), batches,
                                              "rows_per_batch")),
    ]
    if xgboost_installed():
        jobs.append(("train step (GBDT)", lambda: once(workloads.train_step_gbdt(d, rows=gbdt_rows,
                                                                                 rounds=3 if quick else 10),
                                                       {"rows_per_job": gbdt_rows})))
    jobs += [
        ("inference batch", lambda: swept(lambda b: workloads.inference_batch(d, batch=b, repeats=steps), batches,
                                          "rows_per_batch")),
        ("feature kernel", lambda: once(workloads.feature_kernel(d, events=events), {"events_per_job": events})),
    ]
    return jobs


def xgboost_installed() -> bool:
    """Whether XGBoost can be imported here (a bare GPU node may not have it)."""
    return importlib.util.find_spec("xgboost") is not None


def device_memory(torch_device: str) -> int:
    """Total memory of a torch device: the GPU's own, or the machine's for the CPU."""
    if torch_device == "cpu":
        import psutil

        return int(psutil.virtual_memory().total)
    return int(torch.cuda.get_device_properties(torch_device).total_memory)


def run_all(quick: bool) -> dict:
    """Every benchmark on every device present, with a progress bar; the report dict."""
    devices = devices_present()
    plans = [(device, label, fn) for device in devices
             for label, fn in plan(device, quick, device_memory(device["torch_device"]))]
    rows = []
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("benchmarking", total=len(plans))
        for device, label, fn in plans:
            bar.update(task, description=f"{label} on {device['torch_device']}")
            done = fn()
            m = done["measurement"]
            rows.append({**m.to_dict(), "size": m.detail, "sweep": done["sweep"], "regime": done["regime"],
                         "kind": device["kind"], "model": device["model"],
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
    if not xgboost_installed():
        notes.append("XGBoost is not installed on this machine: GBDT was not benchmarked (pip install xgboost).")
    if npus:
        notes.append(f"{len(npus)} Ascend NPU(s) found but not benchmarked: suanli does not yet drive torch_npu.")
    return {"devices": devices, "results": rows, "notes": notes, "cpu_threads": torch.get_num_threads()}


def profile_from(report: dict) -> dict:
    """The scheduler profile: work units/s per (algorithm class, kind, model) on ONE device (one
    core for the CPU, as the ThroughputModel counts CPU rates), each with the regime it was
    measured in (rows per batch, rows or events per job)."""
    entries = []
    for algorithm, source in PROFILE_SOURCES.items():
        for r in report["results"]:
            if r["name"] != source:
                continue
            value = r["value"] * UNITS_PER_MEASURED.get(algorithm, 1.0)
            per_device = value / report["cpu_threads"] if r["kind"] == "cpu" else value
            entries.append({"algorithm": algorithm, "kind": r["kind"], "model": r["model"], "units_per_s": per_device,
                            "regime": r["regime"], "source": f"suanli bench: {source} at {r['size']}"})
    return {"version": 2, "throughputs": entries}


def bench_table(report: dict) -> Table:
    """The report as a rich table."""
    table = Table(title="suanli bench")
    for col in ("benchmark", "device", "model", "size", "throughput", "vs CPU", "% of peak"):
        table.add_column(col, justify="right" if col in ("throughput", "vs CPU", "% of peak") else "left")
    for r in report["results"]:
        table.add_row(r["name"], r["device"], r["model"], r["size"], f"{r['value']:,.1f} {r['unit']}",
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
