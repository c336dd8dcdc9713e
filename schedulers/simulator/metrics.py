"""Summaries of a simulation: job completion times, makespan, queueing, utilisation, fairness."""

from __future__ import annotations

from array import array
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


class OutcomeStats:
    """What `summarise` needs of finished jobs, kept as they finish in 24 bytes per job (JCT,
    queueing delay and slowdown as doubles) instead of the jobs themselves, so a long trace's
    finished jobs can be dropped."""

    def __init__(self) -> None:
        self.jct = array("d")
        self.queueing = array("d")
        self.slowdown_by_tenant: dict[str, array] = {}
        self.first_arrival = np.inf
        self.last_finish = -np.inf
        self.preemptions = 0

    def add(self, o: JobOutcome) -> None:
        """Count one finished job."""
        self.jct.append(o.jct_s)
        self.queueing.append(o.first_start_s - o.arrival_s)
        self.slowdown_by_tenant.setdefault(o.tenant, array("d")).append(o.jct_s / max(o.ideal_s, 1e-9))
        self.first_arrival = min(self.first_arrival, o.arrival_s)
        self.last_finish = max(self.last_finish, o.finish_s)
        self.preemptions += o.preemptions

    def __len__(self) -> int:
        return len(self.jct)

    def summary(self, busy_device_s: Mapping[str, float], devices: Mapping[str, int]) -> dict:
        """The metrics of `summarise` for the jobs counted so far."""
        if not self.jct:
            raise ValueError("outcomes: no job finished; nothing to summarise")
        jct = np.frombuffer(self.jct, dtype=float)
        makespan = self.last_finish - self.first_arrival
        slowdowns = [np.frombuffer(v, dtype=float) for v in self.slowdown_by_tenant.values()]
        return {
            "jobs": len(self.jct),
            "avg_jct_s": float(jct.mean()),
            "p50_jct_s": float(np.percentile(jct, 50)),
            "p99_jct_s": float(np.percentile(jct, 99)),
            "makespan_s": float(makespan),
            "avg_queueing_delay_s": float(np.frombuffer(self.queueing, dtype=float).mean()),
            "avg_slowdown": float(np.concatenate(slowdowns).mean()),
            "utilisation": {
                name: round(busy_device_s.get(name, 0.0) / (count * makespan), 4) if makespan > 0 else 0.0
                for name, count in devices.items()
            },
            "fairness_jain_tenant_slowdown": jain_index([float(v.mean()) for v in slowdowns]),
            "preemptions": int(self.preemptions),
        }


def summarise(outcomes: Sequence[JobOutcome], busy_device_s: Mapping[str, float], devices: Mapping[str, int]) -> dict:
    """The published metrics: average, p50 and p99 JCT, makespan, average queueing delay,
    utilisation per accelerator (busy device-seconds over devices x makespan), and fairness
    (Jain's index of per-tenant mean slowdown, slowdown = JCT / ideal run time)."""
    stats = OutcomeStats()
    for o in outcomes:
        stats.add(o)
    return stats.summary(busy_device_s, devices)
