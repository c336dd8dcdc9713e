"""Workload benchmarks: what a device is worth for suanli's own jobs (a training step of the
fraud MLP and of logistic regression, XGBoost boosting rounds, an inference batch, the
sliding-window feature kernel)."""

from __future__ import annotations

import time

import numpy as np
import torch

from kernels.device import resolve_device, synchronize
from kernels.features import sliding_window_features
from kernels.microbench import Measurement, seconds_per_call
from kernels.mlp import FraudMLP, fused_forward


def _train_rate(model: torch.nn.Module, dev: torch.device, features: int, batch: int, steps: int) -> float:
    x = torch.randn(batch, features, device=dev)
    y = (torch.rand(batch, device=dev) < 0.1).float()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step():
        optimiser.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimiser.step()

    return batch / seconds_per_call(step, dev, steps)


def train_step(device="cpu", features: int = 30, batch: int = 4096, steps: int = 10) -> Measurement:
    """Samples/s of Adam training steps of the built-in fraud MLP (30 -> 256 -> 256 -> 128 -> 1)."""
    dev = resolve_device(device)
    rate = _train_rate(FraudMLP(features).to(dev), dev, features, batch, steps)
    return Measurement("train_step_mlp", str(dev), rate, "samples/s", f"batch {batch}, {features} features")


def train_step_linear(device="cpu", features: int = 30, batch: int = 4096, steps: int = 20) -> Measurement:
    """Samples/s of Adam training steps of logistic regression."""
    dev = resolve_device(device)
    model = torch.nn.Sequential(torch.nn.Linear(features, 1), torch.nn.Flatten(0)).to(dev)
    rate = _train_rate(model, dev, features, batch, steps)
    return Measurement("train_step_linear", str(dev), rate, "samples/s", f"batch {batch}")


def inference_batch(device="cpu", features: int = 30, batch: int = 4096, repeats: int = 10) -> Measurement:
    """Rows/s of the fused MLP forward on batches of `batch` rows."""
    dev = resolve_device(device)
    forward = fused_forward(FraudMLP(features).eval(), dev)
    x = torch.randn(batch, features, device=dev)
    return Measurement("inference_mlp", str(dev), batch / seconds_per_call(lambda: forward(x), dev, repeats), "rows/s",
                       f"batch {batch}")


def feature_kernel(device="cpu", events: int = 200_000, seed: int = 0) -> Measurement:
    """Events/s of sliding-window features (3 windows, 4 statistics) over synthetic transactions,
    host arrays in and out: the best of three calls at full size (a steady state, as `kernels.gpucheck`
    measures it; a process's first call also pays for compiling or pinning buffers)."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.uniform(0, 7 * 86400, events))
    keys = rng.integers(0, max(1, events // 20), events)
    amounts = rng.lognormal(3, 1, events)
    dev = resolve_device(device)
    best = float("inf")
    for _ in range(3):  # the first call at full size also compiles (CPU) or pins host buffers (CUDA)
        start = time.perf_counter()
        sliding_window_features(ts, keys, amounts, device=dev)
        synchronize(dev)
        best = min(best, time.perf_counter() - start)
    return Measurement("feature_kernel", str(dev), events / best, "events/s",
                       f"{events} events, 3 windows, best of 3")


def train_step_gbdt(device="cpu", rows: int = 100_000, features: int = 30, rounds: int = 10) -> Measurement:
    """Row-rounds/s of XGBoost's hist boosting (depth 3) on `rows` x `features` generated rows:
    `device="cuda"` on a GPU (XGBoost's own CUDA path), the CPU otherwise. One warm-up round first."""
    import xgboost

    target = str(device) if str(device).startswith("cuda") else "cpu"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, features), dtype=np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.standard_normal(rows) > 1.0).astype(np.float32)
    train = xgboost.QuantileDMatrix(x, label=y)
    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 3, "device": target, "verbosity": 0}
    xgboost.train(params, train, 1)
    start = time.perf_counter()
    xgboost.train(params, train, rounds)
    return Measurement("train_step_gbdt", target, rows * rounds / (time.perf_counter() - start), "row-rounds/s",
                       f"XGBoost hist, depth 3, {rows} rows x {features}")
