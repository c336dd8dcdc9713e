"""Each kernel against the tools users would pick instead, in one run: sliding-window features over
a million events against Polars (`rolling_*_by` per card), DuckDB (window functions over RANGE
frames) and pandas (rolling group-by), and over ten million events against Polars, each timed at
1 and 2 threads in its own process with its peak memory (tracemalloc's peak of Python and NumPy
allocations, and the process's resident high-water mark above its size before the call), the sort
included (events arrive in time order; every tool groups them by card itself); and the fused MLP
forward against plain eager torch (one thread). Ratios and agreement.

    python benchmarks/kernels.py --json

CPU only: the CUDA paths are measured by `python -m kernels.gpucheck --json` on a GPU node.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._common import emit  # noqa: E402
from benchmarks._reference import pandas_sliding_window  # noqa: E402
from kernels.features import sliding_window_features  # noqa: E402
from kernels.gpucheck import best_seconds  # noqa: E402
from kernels.mlp import FraudMLP, fused_forward  # noqa: E402


def make_events(events: int):
    """The benchmark's events: 30 days of card transactions in time order, 1 card per 20 events."""
    rng = np.random.default_rng(0)
    ts = np.sort(rng.uniform(0, 30 * 86400, events)).round(3)
    cards = rng.integers(0, events // 20, events)
    amounts = rng.lognormal(3, 1, events).round(2)
    return ts, cards, amounts


WINDOWS = (60.0, 3600.0, 86400.0)
TOOLS = ("ours", "polars", "duckdb", "pandas")


def run_tool(tool: str, events: int, threads: int):
    """One timed call of `tool` on the benchmark's events (the sort included: inputs come in time
    order, every tool groups them by card itself)."""
    from benchmarks import _reference

    ts, cards, amounts = make_events(events)
    if tool == "ours":
        return lambda: sliding_window_features(ts, cards, amounts, WINDOWS, threads=threads)
    if tool == "polars":
        return lambda: _reference.polars_sliding_window(ts, cards, amounts, WINDOWS)
    if tool == "duckdb":
        return lambda: _reference.duckdb_sliding_window(ts, cards, amounts, WINDOWS, threads)
    return lambda: {w: pandas_sliding_window(ts, cards, amounts, w) for w in WINDOWS}


def status_mib(field: str) -> float:
    """A memory field of /proc/self/status ("VmRSS", "VmHWM": resident now, resident high-water), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}: peak memory needs Linux")


def time_one(tool: str, events: int, threads: int, repeats: int) -> dict:
    """In this (child) process: best-of-`repeats` seconds of `tool`, after an untimed call on 1,000
    events (numba compiles on first use), then the peak memory of one more call, traced apart from
    the timed ones (tracing allocations slows the calls it watches)."""
    import tracemalloc

    run_tool(tool, 1000, threads)()
    call = run_tool(tool, events, threads)
    seconds = best_seconds(call, repeats)
    before = status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    tracemalloc.start()
    call()
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    high_water = status_mib("VmHWM")
    return {"seconds": seconds, "tracemalloc_peak_mib": round(traced_peak, 1), "rss_before_mib": round(before, 1),
            "rss_high_water_above_start_mib": round(high_water - before, 1)}


def time_in_subprocess(tool: str, events: int, threads: int, repeats: int) -> dict:
    """`time_one` in a fresh process limited to `threads` threads (Polars reads its pool size at
    import)."""
    env = {**os.environ, "POLARS_MAX_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, __file__, "--time-one", tool, "--threads", str(threads), "--events",
                          str(events), "--repeats", str(repeats)], capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{tool} at {threads} thread(s) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def agreement(events: int, peers) -> dict:
    """Ours against each peer on the same events: counts and maxima identical, sums relative error."""
    from benchmarks import _reference

    ts, cards, amounts = make_events(events)
    ours = sliding_window_features(ts, cards, amounts, WINDOWS)
    refs = {}
    if "polars" in peers:
        refs["polars"] = _reference.polars_sliding_window(ts, cards, amounts, WINDOWS)
    if "duckdb" in peers:
        refs["duckdb"] = _reference.duckdb_sliding_window(ts, cards, amounts, WINDOWS)
    if "pandas" in peers:
        pandas = {w: pandas_sliding_window(ts, cards, amounts, w) for w in WINDOWS}
        refs["pandas"] = {f"{stat}_{w:g}s": frame[stat].to_numpy() for w, frame in pandas.items()
                          for stat in ("count", "sum", "mean", "max")}
    out = {}
    for tool, ref in refs.items():
        exact, worst = True, 0.0
        for w in WINDOWS:
            label = f"{w:g}s"
            exact &= bool(np.array_equal(ours[f"count_{label}"], ref[f"count_{label}"]))
            exact &= bool(np.array_equal(ours[f"max_{label}"], ref[f"max_{label}"]))
            rel = np.abs(ours[f"sum_{label}"] - ref[f"sum_{label}"]) / np.maximum(1e-12, np.abs(ref[f"sum_{label}"]))
            worst = max(worst, float(rel.max()))
        out[tool] = {"counts_and_max_identical": exact, "max_relative_sum_error": worst}
    return out


def sliding_window(events: int, repeats: int, tools=TOOLS, check: bool = True) -> dict:
    seconds, memory = {}, {}
    for threads in (1, 2):
        for tool in tools:
            if tool == "pandas" and threads == 2:
                continue  # pandas' rolling group-by is single-threaded
            timing = time_in_subprocess(tool, events, threads, 1 if tool == "pandas" else repeats)
            seconds[f"{tool}_{threads}t"] = round(timing.pop("seconds"), 3)
            memory[f"{tool}_{threads}t"] = timing
            print(f"[kernels] {events:,} events, {tool} at {threads} thread(s): {seconds[f'{tool}_{threads}t']} s, "
                  f"{timing}", file=sys.stderr, flush=True)
    out = {"events": events, "windows_s": list(WINDOWS), "seconds": seconds, "peak_memory": memory,
           "speedup_vs_polars": {f"{t}t": round(seconds[f"polars_{t}t"] / seconds[f"ours_{t}t"], 2) for t in (1, 2)},
           "ours_2t_over_1t": round(seconds["ours_1t"] / seconds["ours_2t"], 2)}
    if "duckdb" in tools:
        out["speedup_vs_duckdb"] = {f"{t}t": round(seconds[f"duckdb_{t}t"] / seconds[f"ours_{t}t"], 2) for t in (1, 2)}
    if "pandas" in tools:
        out["speedup_vs_pandas_1t"] = round(seconds["pandas_1t"] / seconds["ours_1t"], 2)
    if check:
        out["agreement"] = agreement(events, tools)
    return out


def mlp_forward(batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = FraudMLP(30).eval()
    fused = fused_forward(model)
    x = torch.randn(batch, 30)
    calls = max(20, 20000 // batch)

    def eager():
        with torch.inference_mode():
            for _ in range(calls):
                model(x)

    def ours():
        for _ in range(calls):
            fused(x)

    eager_s = best_seconds(eager, repeats)
    ours_s = best_seconds(ours, repeats)
    with torch.inference_mode():
        diff = float((fused(x) - model(x)).abs().max())
    return {"batch": batch, "eager_rows_per_s": round(batch * calls / eager_s), "fused_rows_per_s": round(batch * calls / ours_s),
            "speedup": round(eager_s / ours_s, 2), "max_abs_difference": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--large-events", type=int, default=10_000_000, help="the second size: ours against Polars")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--peers", default="polars,duckdb,pandas",
                        help="comma-separated peers at the first size (a loaded machine may drop the slow ones)")
    parser.add_argument("--time-one", choices=TOOLS, help=argparse.SUPPRESS)  # a child process's timing
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_one:
        print(json.dumps(time_one(args.time_one, args.events, args.threads, args.repeats)))
        return
    torch.set_num_threads(1)
    load_at_start = os.getloadavg()
    peers = tuple(p for p in args.peers.split(",") if p)
    if "polars" not in peers or set(peers) - set(TOOLS[1:]):
        parser.error(f"--peers: a comma-separated subset of {', '.join(TOOLS[1:])} that includes polars")
    window = sliding_window(args.events, args.repeats, tools=("ours", *peers))
    large = sliding_window(args.large_events, 1, tools=("ours", "polars"), check=False)
    mlp = {b: mlp_forward(b, args.repeats) for b in (1, 256, 4096)}
    result = {
        "run": {"events": args.events, "large_events": args.large_events, "repeats": args.repeats, "peers": list(peers),
                "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()},
        "sliding_window": window,
        "sliding_window_large": large,
        "sliding_window_speedup_vs_polars": window["speedup_vs_polars"],
        "sliding_window_large_speedup_vs_polars": large["speedup_vs_polars"],
        "sliding_window_speedup_vs_pandas": window.get("speedup_vs_pandas_1t"),
        "mlp_forward": mlp,
        "mlp_forward_speedup_vs_eager": mlp[1]["speedup"],
        "mlp_forward_speedup_vs_eager_batch256": mlp[256]["speedup"],
        "devices_run": ["cpu"],
        "cuda_paths": "not measured here: `python -m kernels.gpucheck --json` measures them on a GPU node",
    }
    sw, lw = window["seconds"], large["seconds"]
    markdown = (f"| kernels | sliding window {args.events:,} events x 3 windows x 4 stats: ours {sw['ours_1t']} s / "
                f"{sw['ours_2t']} s at 1 / 2 threads vs Polars {sw['polars_1t']} / {sw['polars_2t']} s "
                f"({window['speedup_vs_polars']['1t']}x / {window['speedup_vs_polars']['2t']}x)"
                + (f", DuckDB {sw['duckdb_1t']} / {sw['duckdb_2t']} s" if "duckdb_1t" in sw else "")
                + (f", pandas {sw['pandas_1t']} s ({window['speedup_vs_pandas_1t']}x)" if "pandas_1t" in sw else "")
                + "; counts and maxima identical to Polars: "
                f"{window['agreement']['polars']['counts_and_max_identical']}; {args.large_events:,} events: ours "
                f"{lw['ours_1t']} / {lw['ours_2t']} s vs Polars {lw['polars_1t']} / {lw['polars_2t']} s "
                f"({large['speedup_vs_polars']['1t']}x / {large['speedup_vs_polars']['2t']}x), peak memory ours "
                f"{large['peak_memory']['ours_1t']['rss_high_water_above_start_mib']:,.0f} MiB RSS above start vs Polars "
                f"{large['peak_memory']['polars_1t']['rss_high_water_above_start_mib']:,.0f} MiB | MLP forward: "
                f"{mlp[1]['speedup']:.2f}x eager at batch 1, {mlp[256]['speedup']:.2f}x at 256 (1 thread, CPU) |")
    emit("kernels", result, markdown, args.json)


if __name__ == "__main__":
    main()
