"""How fast an algorithm class runs on each device kind and model.

Work is counted in work units (for the built-in tabular models: training samples, i.e. rows x
epochs). A rate is work units per second on ONE device (for the CPU: one core). Rates come from
measured profiles (`suanli bench --save-profile`) where they exist, else from the documented
defaults below, which are deliberately coarse orders of magnitude:

- `CPU_CORE_RATE`: units/s on one CPU core per algorithm class;
- `REFERENCE_ACCELERATOR_SPEEDUP`: one A100-class GPU against one core, per algorithm class;
- `MODEL_FACTOR`: each accelerator model against an A100 (from public training benchmarks: an H100
  is about 2x, a V100 about 0.5x, a K80 under 0.1x); unknown models count as 0.5.

Several devices scale sub-linearly: n devices give n * SCALING_EFFICIENCY ** log2(n) times one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from schedulers.types import ALGORITHM_CLASSES, DEVICE_KINDS, check_choice

CPU_CORE_RATE = {
    "linear": 400_000.0, "gbdt": 100_000.0, "mlp": 50_000.0, "cnn": 200.0, "rnn": 500.0, "transformer": 100.0,
    "graph": 5_000.0, "recommendation": 20_000.0, "rl": 100.0, "generic": 10_000.0,
    "features": 20_000_000.0,  # sliding-window features: events x windows per second (kernels/window_sweep.py)
}
REFERENCE_ACCELERATOR_SPEEDUP = {
    "linear": 10.0, "gbdt": 20.0, "mlp": 60.0, "cnn": 200.0, "rnn": 80.0, "transformer": 250.0, "graph": 40.0,
    "recommendation": 100.0, "rl": 20.0, "generic": 30.0, "features": 4.0,
}
MODEL_FACTOR = {
    "H200": 2.2, "GH200": 2.2, "H100": 2.0, "H800": 1.9, "A100": 1.0, "A800": 1.0, "L40S": 0.9, "L40": 0.8,
    "A30": 0.6, "A10": 0.35, "A10G": 0.35, "L4": 0.3, "V100": 0.5, "T4": 0.15, "P100": 0.25, "K80": 0.07,
    "Ascend910B": 0.9, "Ascend910B3": 0.9, "Ascend910": 0.6, "Ascend310P": 0.15,
}
UNKNOWN_MODEL_FACTOR = 0.5
SCALING_EFFICIENCY = 0.9


@lru_cache(maxsize=1024)  # called for every job of a round with a handful of distinct sizes
def parallel_factor(devices: float) -> float:
    """How many single devices' worth of speed `devices` devices give together."""
    if devices <= 1:
        return max(devices, 0.0)
    return devices * SCALING_EFFICIENCY ** math.log2(devices)


def parallel_factors(devices: np.ndarray) -> np.ndarray:
    """`parallel_factor` of each entry (the very same numbers: computed once per distinct size)."""
    sizes, which = np.unique(devices, return_inverse=True)
    return np.array([parallel_factor(size) for size in sizes.tolist()], dtype=float)[which]


@dataclass(frozen=True)
class ThroughputModel:
    """Rates per (algorithm, kind, model), measured where `measured` has them, else defaults."""

    measured: Mapping[tuple[str, str, str], float] = field(default_factory=dict)

    def rate(self, algorithm: str, kind: str, model: str) -> float:
        """Work units per second on one device of `kind`/`model` for `algorithm`."""
        key = (algorithm, kind, model)
        if key in self.measured:
            return self.measured[key]
        base = CPU_CORE_RATE.get(algorithm, CPU_CORE_RATE["generic"])
        if kind == "cpu":
            return base
        speedup = REFERENCE_ACCELERATOR_SPEEDUP.get(algorithm, REFERENCE_ACCELERATOR_SPEEDUP["generic"])
        return base * speedup * MODEL_FACTOR.get(model, UNKNOWN_MODEL_FACTOR)

    def compute_s(self, algorithm: str, work: float, kind: str, model: str, devices: float) -> float:
        """Seconds to do `work` units of `algorithm` on `devices` devices of `kind`/`model`."""
        speed = self.rate(algorithm, kind, model) * parallel_factor(devices)
        return math.inf if speed <= 0 else work / speed

    def with_profile(self, profile: Mapping) -> ThroughputModel:
        """A new model with the measured rates of `profile` (the dict `suanli bench
        --save-profile` writes) layered over this one's. Raises ValueError naming the entry."""
        entries = profile.get("throughputs") if isinstance(profile, Mapping) else None
        if not isinstance(entries, list):
            raise ValueError("profile.throughputs: must be a list of {algorithm, kind, model, units_per_s}")
        measured = dict(self.measured)
        for i, entry in enumerate(entries):
            where = f"profile.throughputs[{i}]"
            try:
                algorithm, kind, model = entry["algorithm"], entry["kind"], entry["model"]
                rate = float(entry["units_per_s"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{where}: needs algorithm, kind, model and numeric units_per_s ({exc})") from None
            check_choice(f"{where}.algorithm", algorithm, ALGORITHM_CLASSES)
            check_choice(f"{where}.kind", kind, DEVICE_KINDS)
            if not rate > 0:
                raise ValueError(f"{where}.units_per_s: must be > 0, got {rate}")
            measured[(algorithm, kind, str(model))] = rate
        return ThroughputModel(measured=measured)
