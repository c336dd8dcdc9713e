"""The interface every placement policy implements. A new policy is one new file.

The engine (`schedulers.engine.schedule`) owns the mechanics (capacity, gangs, quotas,
preemption, backfill, reasons). A policy only says three things: in which order jobs are
considered, in which order admitted jobs pick devices, and which of the feasible pools a job
takes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from schedulers.types import JobRequest


@dataclass(frozen=True)
class RoundContext:
    """What a policy may know about the round: the time, devices each tenant holds now, and
    `fastest_run_s(job)`: the job's predicted remaining run time on the fastest device it can
    use in this cluster (its remaining work over its best throughput)."""

    now: float
    tenant_usage: Mapping[str, float]
    ageing_interval_s: float
    fastest_run_s: Callable[[JobRequest], float]


@dataclass(frozen=True)
class PoolOptions:
    """The pools a job could be placed in right now, as parallel arrays (one entry per pool).

    `completion_s` = `transfer_s` + `compute_s`; `free_after` is the pool's free devices left if
    the job goes there; `edge_at_data_site` marks edge pools at the job's data site;
    `relative_speed` is each pool's rate for this job divided by the best rate among all its
    candidate pools (1.0 = the fastest device kind/model it could use).
    """

    pools: np.ndarray
    transfer_s: np.ndarray
    compute_s: np.ndarray
    free_after: np.ndarray
    edge_at_data_site: np.ndarray
    relative_speed: np.ndarray

    @property
    def completion_s(self) -> np.ndarray:
        return self.transfer_s + self.compute_s


def effective_priority(job: JobRequest, ctx: RoundContext) -> float:
    """The job's priority plus one for every `ageing_interval_s` it has waited, so nothing starves."""
    waited = max(0.0, ctx.now - job.submitted_at)
    return job.priority + (waited // ctx.ageing_interval_s if ctx.ageing_interval_s > 0 else 0)


class Policy(ABC):
    """A placement policy. `time_shares` policies are given running preemptible jobs each round
    and may preempt them (checkpointed jobs resume later); `node_strategy` is how nodes are
    picked inside a pool: "best_fit" or "random"."""

    name: str = "base"
    time_shares: bool = False
    node_strategy: str = "best_fit"

    @abstractmethod
    def order(self, jobs: Sequence[JobRequest], ctx: RoundContext) -> list[JobRequest]:
        """The order in which jobs are admitted this round (first = most deserving)."""

    def assignment_order(self, jobs: Sequence[JobRequest], ctx: RoundContext) -> list[JobRequest]:
        """The order in which admitted jobs pick their devices (default: admission order)."""
        return list(jobs)

    @abstractmethod
    def choose(self, job: JobRequest, options: PoolOptions) -> int:
        """Index into `options` of the pool the job takes (options are never empty)."""

    def rng(self):
        """A seeded random generator for policies that choose at random (None otherwise)."""
        return None
