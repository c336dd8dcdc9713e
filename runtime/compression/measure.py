"""Measuring an ONNX model the same way before and after compression: AUC on the test split,
single-row latency (p50, p99) and batch throughput, with one ONNX Runtime thread."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from runtime.artifacts.load import ort_session


def measure_onnx(path: str | Path, x_test: np.ndarray, y_test: np.ndarray, single_calls: int = 500,
                 batch: int = 256, batch_calls: int = 50, kind: str = "cpu") -> dict:
    """{auc, size_bytes, provider, batch1_p50_ms, batch1_p99_ms, batch1_rows_per_s,
    batch256_rows_per_s}, on the providers of device kind `kind`."""
    s = ort_session(path, kind, threads=1)
    scores = s.run(["probability"], {"features": x_test.astype(np.float32)})[0]
    rows = x_test.astype(np.float32)
    times = []
    for i in range(single_calls):
        row = rows[i % len(rows)][None, :]
        start = time.perf_counter()
        s.run(["probability"], {"features": row})
        times.append(time.perf_counter() - start)
    block = np.resize(rows, (batch, rows.shape[1])).astype(np.float32)
    start = time.perf_counter()
    for _ in range(batch_calls):
        s.run(["probability"], {"features": block})
    batch_s = (time.perf_counter() - start) / batch_calls
    latency = np.array(times)
    return {
        "auc": float(roc_auc_score(y_test, scores)),
        "size_bytes": Path(path).stat().st_size,
        "provider": s.get_providers()[0],
        "batch1_p50_ms": float(np.percentile(latency, 50) * 1e3),
        "batch1_p99_ms": float(np.percentile(latency, 99) * 1e3),
        "batch1_rows_per_s": float(1.0 / latency.mean()),
        f"batch{batch}_rows_per_s": float(batch / batch_s),
    }
