"""`python -m kernels.gpucheck --json`: a GPU node operator's first check, and the project's
record of what each device really does.

Runs every CUDA path of the project when CUDA is present: NVML discovery, matmul and memory
bandwidth grown until the rate stops rising (`kernels.sizing`), pinned host-to-device copies, the
feature kernel at 1M and 10M events end to end (host arrays in, host arrays out, and kept on the
device) against the CPU engine's result, the fused MLP at batch 1, 256 and 65,536 with and
without CUDA graphs against the eager model, an Adam training step at a GPU-sized batch, and a
memory scrub. The CPU parts always run. Prints one JSON report: each figure with its size, its %
of the device's published peak where one is known, and the CPU result it was checked against.
Without CUDA the report says so and holds no GPU figure.

Needs torch, numpy and numba (and nvidia-ml-py for discovery); never Ray, FastAPI or pydantic.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cluster.devices import discover_local
from kernels import microbench, sizing, workloads
from kernels.features import sliding_window_features
from kernels.mlp import FraudMLP, fused_forward
from kernels.scrub import scrub_device, zero_tensors

MLP_BATCHES = (1, 256, 65_536)
WINDOWS = (60.0, 3600.0, 86400.0)


def figure(name: str, device: str, value: float, unit: str, size: str, model: str | None = None,
           checked_against: dict | None = None, ok: bool | None = None, **extra) -> dict:
    """One report line: `value` `unit` at `size`, its % of `model`'s published peak where known."""
    peak = microbench.peak_for(model, name) if model else None
    return {"name": name, "device": device, "value": value, "unit": unit, "size": size, "peak": peak,
            "percent_of_peak": round(100 * value / peak, 1) if peak else None, "checked_against": checked_against,
            "ok": ok, **extra}


def events(count: int, seed: int = 0):
    """Synthetic card transactions in time order: 30 days, one card per 20 events."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.uniform(0, 30 * 86400, count)).round(3)
    return ts, rng.integers(0, max(1, count // 20), count), rng.lognormal(3, 1, count).round(2)


def agreement(ours: dict, reference: dict) -> dict:
    """Counts and maxima identical, and the largest relative difference of sums and means."""
    identical = all(np.array_equal(ours[k], reference[k]) for k in reference if k.startswith(("count", "max")))
    worst = 0.0
    for k in reference:
        if k.startswith(("sum", "mean")):
            scale = np.maximum(np.abs(reference[k]), 1e-300)
            worst = max(worst, float((np.abs(np.asarray(ours[k]) - reference[k]) / scale).max()))
    return {"counts_and_maxima_identical": identical, "max_relative_sum_difference": worst}


def best_seconds(fn, repeats: int = 3) -> float:
    """The fastest of `repeats` calls of `fn`, in seconds (the benchmarks' one timer)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def transfer_seconds(data, columns: int, cuda: torch.device) -> dict:
    """Where an end-to-end feature call's time can go besides computing: the three inputs up
    through pinned buffers, and `columns` float64 outputs down into pinned memory (best of 3)."""
    from kernels.features import _to_device

    inputs = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64 if a.dtype.kind in "iu" else np.float64))
              for a in data]
    up = best_seconds(lambda: ([_to_device(t, cuda) for t in inputs], torch.cuda.synchronize(cuda)))
    result = torch.empty((columns, inputs[0].numel()), dtype=torch.float64, device=cuda)
    host = torch.empty(result.shape, dtype=result.dtype, pin_memory=True)
    down = best_seconds(lambda: (host.copy_(result, non_blocking=True), torch.cuda.synchronize(cuda)))
    return {"seconds_inputs_up": up, "seconds_outputs_down": down, "bytes_down": result.numel() * 8}


def device_profile(call, top: int = 12) -> list[dict] | str:
    """The `top` operations of one `call` by their own device time (torch.profiler), or why the
    profiler could not run."""
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            call()
            torch.cuda.synchronize()
        events = list(prof.key_averages())
    except Exception as exc:  # noqa: BLE001 - a profiler missing on a node is reported, the check goes on
        return f"profiler unavailable: {type(exc).__name__}: {exc}"[:300]

    def device_us(event) -> float:
        return float(getattr(event, "self_device_time_total", getattr(event, "self_cuda_time_total", 0.0)))

    return [{"op": e.key[:80], "calls": e.count, "device_ms": round(device_us(e) / 1000, 3),
             "cpu_ms": round(e.self_cpu_time_total / 1000, 3)} for e in sorted(events, key=device_us, reverse=True)[:top]]


def feature_checks(sizes: tuple[int, ...], cuda: torch.device | None, model: str | None) -> list[dict]:
    """The feature kernel at each size on the CPU, and on CUDA against the CPU's result."""
    out = []
    sliding_window_features(*events(1000), WINDOWS)  # compile the CPU engine once, untimed
    for count in sizes:
        data = events(count)
        cpu_result: dict = {}

        def on_cpu(data=data, cpu_result=cpu_result):
            cpu_result.update(sliding_window_features(*data, WINDOWS))

        cpu_s = best_seconds(on_cpu, 2)
        torch_engine = sliding_window_features(*data, WINDOWS, engine="torch") if cuda is None and count <= 1_000_000 \
            else None
        out.append(figure("feature_kernel", "cpu", count / cpu_s, "events/s", f"{count:,} events x 3 windows",
                          seconds=cpu_s, threads=torch.get_num_threads(),
                          checked_against=None if torch_engine is None else
                          {"against": "the torch (CUDA) engine run on CPU tensors", **agreement(torch_engine, cpu_result)},
                          ok=None if torch_engine is None else agreement(torch_engine, cpu_result)[
                              "counts_and_maxima_identical"]))
        if cuda is None:
            continue
        sliding_window_features(*events(1000), WINDOWS, device=cuda)
        gpu_result: dict = {}
        end_to_end = best_seconds(lambda data=data, r=gpu_result: r.update(
            sliding_window_features(*data, WINDOWS, device=cuda)))
        resident = best_seconds(lambda data=data: (sliding_window_features(*data, WINDOWS, device=cuda, output="torch"),
                                                   torch.cuda.synchronize(cuda)))
        check = {"against": f"the CPU engine on {torch.get_num_threads()} threads, {cpu_s:.3f} s", **agreement(
            gpu_result, cpu_result)}
        stages = transfer_seconds(data, len(cpu_result), cuda)
        stages["top_device_ops"] = device_profile(lambda data=data: sliding_window_features(*data, WINDOWS, device=cuda))
        out.append(figure("feature_kernel", str(cuda), count / end_to_end, "events/s",
                          f"{count:,} events x 3 windows, host arrays in and out", model, check,
                          check["counts_and_maxima_identical"] and check["max_relative_sum_difference"] <= 1e-12,
                          seconds=end_to_end, seconds_output_kept_on_device=resident,
                          speedup_vs_cpu=round(cpu_s / end_to_end, 2), stages=stages))
    return out


def mlp_checks(dev: torch.device, model_name: str | None) -> list[dict]:
    """Fused MLP forward per batch: graphs (CUDA) or the plain chain, against the eager model."""
    torch.manual_seed(0)
    model = FraudMLP(30).eval()
    out = []
    variants = [("plain chain", fused_forward(model, dev, graphs=False))]
    if dev.type == "cuda":
        variants.append(("CUDA graphs", fused_forward(model, dev)))
    for batch in MLP_BATCHES:
        x = torch.randn(batch, 30)
        with torch.inference_mode():
            expected = model(x)
        x_dev = x.to(dev)
        for label, forward in variants:
            difference = float((forward(x_dev).cpu() - expected).abs().max())
            repeats = max(5, 2000 // batch)
            device_s = microbench.seconds_per_call(lambda f=forward, x=x_dev: f(x), dev, repeats)
            with_copy = best_seconds(lambda f=forward, x=x_dev: f(x).cpu(), 3) if dev.type == "cuda" else device_s
            out.append(figure("inference_mlp", str(dev), batch / device_s, "rows/s", f"batch {batch}", model_name,
                              {"against": "eager FraudMLP on the CPU", "max_abs_difference": difference},
                              difference <= 1e-4, variant=label, microseconds_per_call=device_s * 1e6,
                              microseconds_with_copy_back=with_copy * 1e6))
    return out


def microbench_checks(dev: torch.device, kind: str, model: str | None, memory_bytes: int, quick: bool) -> list[dict]:
    """Matmul and copy bandwidth, each grown until its rate stops rising."""
    out = []
    dtypes = [torch.float32] + microbench.supported_half_dtypes(dev)
    for dtype in dtypes:
        sizes = sizing.matmul_sizes(kind, memory_bytes, torch.finfo(dtype).bits // 8)[: 2 if quick else None]
        sweep = sizing.grow_until_plateau(lambda n, dtype=dtype: microbench.matmul(dev, dtype, n).value, sizes)
        out.append(figure(microbench.MATMUL_NAMES[dtype], str(dev), sweep.best_rate, "GFLOP/s", f"{sweep.best_size}x{sweep.best_size}", model,
                          sweep=sweep.to_dict()))
    sizes = sizing.bandwidth_megabytes(kind, memory_bytes)[: 2 if quick else None]
    sweep = sizing.grow_until_plateau(lambda mb: microbench.memory_bandwidth(dev, mb).value, sizes)
    out.append(figure("memory_bandwidth", str(dev), sweep.best_rate, "GB/s", f"{sweep.best_size} MiB", model,
                      sweep=sweep.to_dict()))
    if dev.type == "cuda":
        h2d = microbench.host_to_device(dev, 64 if quick else 1024)
        out.append(figure("host_to_device", str(dev), h2d.value, "GB/s", h2d.detail, model))
    return out


def training_checks(dev: torch.device, kind: str, model: str | None, quick: bool) -> list[dict]:
    """Adam steps of the fraud MLP at the batch where the rate stops rising."""
    sizes = sizing.batch_sizes(kind)[: 2 if quick else None]
    sweep = sizing.grow_until_plateau(lambda b: workloads.train_step(dev, batch=b, steps=3 if quick else 10).value,
                                      sizes)
    return [figure("train_step_mlp", str(dev), sweep.best_rate, "samples/s", f"batch {sweep.best_size}", model,
                   sweep=sweep.to_dict())]


def scrub_checks(dev: torch.device, quick: bool) -> list[dict]:
    """Zeroing: free device memory on CUDA (1 GiB, or 64 MiB quick); tensors on the CPU."""
    if dev.type == "cuda":
        report = scrub_device(dev, max_bytes=(64 if quick else 1024) * 2**20, chunk_bytes=64 * 2**20)
        what = "free device memory"
    else:
        report = zero_tensors([torch.ones(2**20)])
        what = "a tensor in place"
    return [figure("scrub", str(dev), report.bytes_zeroed, "bytes", what, ok=report.verified)]


def guarded(section: str, device: str, checks, *args) -> list[dict]:
    """`checks(*args)`, timed and announced on stderr; an exception becomes one failed check naming
    the section and the error, so one broken path never hides the others' figures."""
    print(f"[gpucheck] {section} on {device} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        out = checks(*args)
    except Exception as exc:  # noqa: BLE001 - reported as a failed check; the other sections still run
        out = [figure(section, device, None, None, None, ok=False, error=f"{type(exc).__name__}: {exc}"[:500])]
    print(f"[gpucheck] {section} on {device}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return out


def run(quick: bool = False, save=None) -> dict:
    """The whole check as a JSON-ready dict (see the module docstring). `save(report)`, when given,
    is called after each section with the report so far."""
    found = discover_local()
    cuda = torch.cuda.is_available()
    report = {
        "tool": "python -m kernels.gpucheck",
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "python": platform.python_version(), "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda, "quick": quick, "cpu_threads": torch.get_num_threads(),
        "discovery": [d.to_dict() for d in found],
        "cuda": {"available": cuda},
        "checks": [],
    }
    if not cuda:
        report["cuda"]["note"] = ("CUDA is absent on this machine (" + ("torch was built without CUDA" if
                                  torch.version.cuda is None else "no CUDA device visible") +
                                  "): only the CPU paths ran; this report holds no GPU figure.")
    cpu = torch.device("cpu")
    cpu_device = next(d for d in found if d.kind == "cpu")
    gpu = torch.device("cuda:0") if cuda else None
    gpu_model = next((d.model for d in found if d.kind == "gpu"), None)
    feature_sizes = (50_000, 200_000) if quick else (1_000_000, 10_000_000)
    sections = [("microbench", "cpu", microbench_checks, cpu, "cpu", None, cpu_device.memory_total_bytes, quick),
                ("feature_kernel", "cpu" if gpu is None else "cpu+cuda", feature_checks, feature_sizes, gpu, gpu_model),
                ("inference_mlp", "cpu", mlp_checks, cpu, None),
                ("train_step_mlp", "cpu", training_checks, cpu, "cpu", None, quick),
                ("scrub", "cpu", scrub_checks, cpu, quick)]
    if gpu is not None:
        memory = torch.cuda.get_device_properties(gpu).total_memory
        report["cuda"]["device"] = torch.cuda.get_device_name(gpu)
        sections += [("microbench", str(gpu), microbench_checks, gpu, "gpu", gpu_model, memory, quick),
                     ("inference_mlp", str(gpu), mlp_checks, gpu, gpu_model),
                     ("train_step_mlp", str(gpu), training_checks, gpu, "gpu", gpu_model, quick),
                     ("scrub", str(gpu), scrub_checks, gpu, quick)]
    for section, device, checks, *args in sections:
        report["checks"] += guarded(section, device, checks, *args)
        report["all_checks_passed"] = all(c["ok"] is not False for c in report["checks"])
        if save is not None:
            save(report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels.gpucheck", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON (the default is a summary)")
    parser.add_argument("--quick", action="store_true", help="small sizes: seconds, for tests")
    parser.add_argument("--out", type=Path, help="also write the report to this file after every section "
                        "(a run cut short by a time limit keeps what it measured)")
    args = parser.parse_args(argv)

    def save(report: dict) -> None:
        partial = args.out.with_name(args.out.name + ".partial")
        partial.write_text(json.dumps(report, indent=2))
        partial.replace(args.out)

    report = run(args.quick, save if args.out else None)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        if not report["cuda"]["available"]:
            print(report["cuda"]["note"])
        for c in report["checks"]:
            if c["value"] is None:
                print(f"{c['name']:<18} {c['device']:<7} FAILED: {c['error']}")
                continue
            peak = f" ({c['percent_of_peak']}% of peak)" if c["percent_of_peak"] is not None else ""
            print(f"{c['name']:<18} {c['device']:<7} {c['value']:>14,.1f} {c['unit']:<10} at {c['size']}{peak}"
                  + ("" if c["ok"] is None else f"  {'ok' if c['ok'] else 'FAILED'}"))
    return 0 if report["all_checks_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
