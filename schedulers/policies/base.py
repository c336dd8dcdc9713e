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
from enum import IntEnum

import numpy as np

from schedulers.types import JobRequest


@dataclass(frozen=True)
class RoundContext:
    """What a policy may know about the round: the time, devices each tenant holds now, and
    `fastest_run_s(job)`: the job's predicted remaining run time on the fastest device it can
    use in this cluster (its remaining work over its best throughput); `model_rates(job)`: the
    job's work units/s as a whole on each device model it can use (models it cannot use are
    absent); `free_by_model()`: devices free now per device model, once the round has released
    the running jobs it reconsiders (what a time-sharing policy may share out); `running_model(job)`:
    the device model a running job holds now (None for a waiting job)."""

    now: float
    tenant_usage: Mapping[str, float]
    ageing_interval_s: float
    fastest_run_s: Callable[[JobRequest], float]
    model_rates: Callable[[JobRequest], Mapping[str, float]] = lambda job: {}
    free_by_model: Callable[[], Mapping[str, float]] = dict
    running_model: Callable[[JobRequest], str | None] = lambda job: None
    fastest_runs_s: Callable[[Sequence[JobRequest]], np.ndarray] | None = None  # `fastest_run_s` of many, as one array

    def fastest_runs(self, jobs: Sequence[JobRequest]) -> np.ndarray:
        """`fastest_run_s` of each of `jobs`, as one array."""
        if self.fastest_runs_s is not None:
            return self.fastest_runs_s(jobs)
        return np.fromiter((self.fastest_run_s(j) for j in jobs), dtype=float, count=len(jobs))


class PoolOptions:
    """The pools a job could be placed in right now (one entry per pool, in parallel arrays).

    `completion_s` = `transfer_s` + `compute_s`; `free_after` is the pool's free devices left if
    the job goes there; `edge_at_data_site` marks edge pools at the job's data site;
    `relative_speed` is each pool's rate for this job divided by the best rate among all its
    candidate pools (1.0 = the fastest device kind/model it could use); `models` names each
    pool's device model. Fields are sliced from the engine's arrays only when a policy reads
    them: placement is on the hot path.
    """

    __slots__ = ("_keep", "_pools", "_transfer", "_compute", "_free_after", "_edge", "_speed", "_models")

    def __init__(self, keep, pools, transfer_s, compute_s, free_after, edge_at_data_site, relative_speed,
                 models=None):
        self._keep = keep
        self._pools, self._transfer, self._compute = pools, transfer_s, compute_s
        self._free_after, self._edge, self._speed = free_after, edge_at_data_site, relative_speed
        self._models = models

    def __len__(self) -> int:
        return len(self._keep)

    @property
    def pools(self) -> np.ndarray:
        return self._pools[self._keep]

    @property
    def transfer_s(self) -> np.ndarray:
        return self._transfer[self._keep]

    @property
    def compute_s(self) -> np.ndarray:
        return self._compute[self._keep]

    @property
    def completion_s(self) -> np.ndarray:
        return self._transfer[self._keep] + self._compute[self._keep]

    @property
    def free_after(self) -> np.ndarray:
        return self._free_after[self._keep]

    @property
    def edge_at_data_site(self) -> np.ndarray:
        return self._edge[self._keep]

    @property
    def relative_speed(self) -> np.ndarray:
        return self._speed[self._keep]

    @property
    def models(self) -> list[str]:
        return [self._models[i] for i in self._keep]


def effective_priority(job: JobRequest, ctx: RoundContext) -> float:
    """The job's priority plus one for every `ageing_interval_s` it has waited, so nothing starves."""
    waited = max(0.0, ctx.now - job.submitted_at)
    return job.priority + (waited // ctx.ageing_interval_s if ctx.ageing_interval_s > 0 else 0)


def by_priority(jobs: Sequence[JobRequest], ctx: RoundContext, *then: np.ndarray) -> list[JobRequest]:
    """`jobs` by effective priority (highest first), then by each array of `then` (one value per
    job, lowest first), then by arrival and id: the order of `sorted` with the key
    `(-effective_priority(j, ctx), *then, j.submitted_at, j.id)`, computed as one numpy lexsort."""
    n = len(jobs)
    ids = [j.id for j in jobs]
    if any(i.endswith("\0") for i in ids):  # numpy strings drop trailing NULs: compare such ids in Python
        keys = [(-effective_priority(j, ctx), *(a[i] for a in then), j.submitted_at, j.id) for i, j in enumerate(jobs)]
        return [jobs[i] for i in sorted(range(n), key=keys.__getitem__)]
    submitted = np.fromiter((j.submitted_at for j in jobs), dtype=float, count=n)
    priority = np.fromiter((j.priority for j in jobs), dtype=float, count=n)
    if ctx.ageing_interval_s > 0:
        priority += np.fmax(0.0, ctx.now - submitted) // ctx.ageing_interval_s  # fmax: max(0.0, nan) is 0.0
    order = np.lexsort((np.array(ids, dtype=str), submitted, *reversed(then), -priority))
    return [jobs[i] for i in order.tolist()]


class Choice(IntEnum):
    """Rules a policy's `choose` may follow, which the engine then applies in compiled code
    (`schedulers.engine.compiled`) instead of asking `choose` job by job. Ties go to the first
    option in all of them."""

    SOONEST = 1  # the least completion_s
    EDGE_FIRST = 2  # the least completion_s among edge pools at the data site, else among all
    NEAREST_SPEED = 3  # the relative speed nearest a target (to 1e-9), then the least completion_s
    RANDOM = 4  # uniformly at random (from the policy's seeded generator)
    TIGHTEST = 5  # the least free_after


def speed_distance(relative_speed: np.ndarray, target: float) -> np.ndarray:
    """How far each relative speed is from `target`, in units of 1e-9 (whole numbers, so that speeds
    computed two ways that differ only in their last bits are equally near)."""
    return np.rint(np.abs(relative_speed - target) * 1e9)


class Policy(ABC):
    """A placement policy. `time_shares` policies are given running preemptible jobs each round
    and may preempt them (checkpointed jobs resume later); `node_strategy` is how nodes are
    picked inside a pool: "best_fit" or "random". A policy whose `choose` follows one of the
    `Choice` rules says so in `compiled_choice`, and the engine applies the rule itself."""

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

    def compiled_choice(self, jobs: Sequence[JobRequest]) -> tuple[np.ndarray, np.ndarray] | None:
        """Per job, the `Choice` rule that `choose` follows for it (an int array) and the target
        relative speed of `Choice.NEAREST_SPEED` (a float array, NaN where there is none); None
        (the default) when `choose` follows no such rule and must be asked job by job. Called
        after `order` in the round. `Choice.RANDOM` promises the same distribution, not the same
        draws."""
        return None

    def rng(self):
        """A seeded random generator for policies that choose at random (None otherwise)."""
        return None
