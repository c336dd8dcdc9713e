"""Each kernel against a straightforward reference, in one run: sliding-window features over a
million events against pandas' rolling group-by, and the fused MLP forward against plain eager
torch (one thread each). Ratios and agreement.

    python benchmarks/kernels.py --json

Runs on the CPU here; with a CUDA GPU present it also times the kernels there (not yet run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._common import emit  # noqa: E402
from benchmarks._reference import pandas_sliding_window  # noqa: E402
from kernels.features import sliding_window_features  # noqa: E402
from kernels.mlp import FraudMLP, fused_forward  # noqa: E402


def time_best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def sliding_window(events: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    ts = np.sort(rng.uniform(0, 30 * 86400, events)).round(3)
    cards = rng.integers(0, events // 20, events)
    amounts = rng.lognormal(3, 1, events).round(2)
    windows = (60.0, 3600.0, 86400.0)
    ours = sliding_window_features(ts, cards, amounts, windows)
    ours_s = time_best(lambda: sliding_window_features(ts, cards, amounts, windows), repeats)
    start = time.perf_counter()
    reference = {w: pandas_sliding_window(ts, cards, amounts, w) for w in windows}
    pandas_s = time.perf_counter() - start
    worst = 0.0
    exact = True
    for w, ref in reference.items():
        label = f"{w:g}s"
        exact &= bool(np.array_equal(ours[f"count_{label}"], ref["count"].to_numpy()))
        exact &= bool(np.array_equal(ours[f"max_{label}"], ref["max"].to_numpy()))
        rel = np.abs(ours[f"sum_{label}"] - ref["sum"].to_numpy()) / np.maximum(1e-12, np.abs(ref["sum"].to_numpy()))
        worst = max(worst, float(rel.max()))
    return {"events": events, "windows_s": list(windows), "ours_s": round(ours_s, 3), "pandas_s": round(pandas_s, 3),
            "speedup": round(pandas_s / ours_s, 2), "counts_and_max_equal": exact, "max_relative_sum_error": worst}


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

    eager_s = time_best(eager, repeats)
    ours_s = time_best(ours, repeats)
    with torch.inference_mode():
        diff = float((fused(x) - model(x)).abs().max())
    return {"batch": batch, "eager_rows_per_s": round(batch * calls / eager_s), "fused_rows_per_s": round(batch * calls / ours_s),
            "speedup": round(eager_s / ours_s, 2), "max_abs_difference": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    window = sliding_window(args.events, args.repeats)
    mlp = {b: mlp_forward(b, args.repeats) for b in (1, 256, 4096)}
    result = {
        "sliding_window": window,
        "sliding_window_speedup_vs_pandas": window["speedup"],
        "mlp_forward": mlp,
        "mlp_forward_speedup_vs_eager": mlp[1]["speedup"],
        "mlp_forward_speedup_vs_eager_batch256": mlp[256]["speedup"],
        "devices_run": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []),
        "cuda_paths": "not run: no GPU on this machine" if not torch.cuda.is_available() else "see devices_run",
        "threads": 1,
    }
    markdown = (f"| kernels | sliding window {args.events:,} events: {window['speedup']:.1f}x pandas (exact counts/max: "
                f"{window['counts_and_max_equal']}) | MLP forward: {mlp[1]['speedup']:.2f}x eager at batch 1, "
                f"{mlp[256]['speedup']:.2f}x at 256 (1 thread, CPU) |")
    emit("kernels", result, markdown, args.json)


if __name__ == "__main__":
    main()
