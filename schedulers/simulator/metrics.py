"""Summaries of a simulation: job completion times, makespan, queueing, utilisation, fairness."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class JobOutcome:
    """What happened to one simulated job (seconds on the simulation clock)."""

    id: str
    tenant: str
    arrival_s: float
    first_start_s: float
    finish_s: float
    ideal_s: float  # run time alone on its fastest accelerator
    preemptions: int

    @property
    def jct_s(self) -> float:
        return self.finish_s - self.arrival_s


def jain_index(values: Sequence[float]) -> float:
    """Jain's fairness index of `values`: 1.0 when all equal, 1/n when one gets everything."""
    x = np.asarray(values, dtype=float)
    if x.size == 0 or not np.any(x):
        return 1.0
    return float(x.sum() ** 2 / (x.size * (x**2).sum()))


def summarise(outcomes: Sequence[JobOutcome], busy_device_s: Mapping[str, float], devices: Mapping[str, int]) -> dict:
    """The published metrics: average, p50 and p99 JCT, makespan, average queueing delay,
    utilisation per accelerator (busy device-seconds over devices x makespan), and fairness
    (Jain's index of per-tenant mean slowdown, slowdown = JCT / ideal run time)."""
    if not outcomes:
        raise ValueError("outcomes: no job finished; nothing to summarise")
    jct = np.array([o.jct_s for o in outcomes])
    start = min(o.arrival_s for o in outcomes)
    makespan = max(o.finish_s for o in outcomes) - start
    per_tenant: dict[str, list[float]] = {}
    for o in outcomes:
        per_tenant.setdefault(o.tenant, []).append(o.jct_s / max(o.ideal_s, 1e-9))
    return {
        "jobs": len(outcomes),
        "avg_jct_s": float(jct.mean()),
        "p50_jct_s": float(np.percentile(jct, 50)),
        "p99_jct_s": float(np.percentile(jct, 99)),
        "makespan_s": float(makespan),
        "avg_queueing_delay_s": float(np.mean([o.first_start_s - o.arrival_s for o in outcomes])),
        "avg_slowdown": float(np.mean([v for vs in per_tenant.values() for v in vs])),
        "utilisation": {
            name: round(busy_device_s.get(name, 0.0) / (count * makespan), 4) if makespan > 0 else 0.0
            for name, count in devices.items()
        },
        "fairness_jain_tenant_slowdown": jain_index([float(np.mean(v)) for v in per_tenant.values()]),
        "preemptions": int(sum(o.preemptions for o in outcomes)),
    }
