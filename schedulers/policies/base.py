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


class Policy(ABC):
    """A placement policy. `time_shares` policies are given running preemptible jobs each round
    and may preempt them (checkpointed jobs resume later); `node_strategy` is how nodes are
    picked inside a pool: "best_fit" or "random"; `chooses_in_batches` policies implement
    `choose_batch`; `takes_tightest_pool` promises that `choose` takes the option with the least
    `free_after` (the first on ties), which the engine then finds in a sorted index instead of
    asking `choose` job by job."""

    name: str = "base"
    time_shares: bool = False
    node_strategy: str = "best_fit"
    chooses_in_batches: bool = False
    takes_tightest_pool: bool = False

    @abstractmethod
    def order(self, jobs: Sequence[JobRequest], ctx: RoundContext) -> list[JobRequest]:
        """The order in which jobs are admitted this round (first = most deserving)."""

    def assignment_order(self, jobs: Sequence[JobRequest], ctx: RoundContext) -> list[JobRequest]:
        """The order in which admitted jobs pick their devices (default: admission order)."""
        return list(jobs)

    @abstractmethod
    def choose(self, job: JobRequest, options: PoolOptions) -> int:
        """Index into `options` of the pool the job takes (options are never empty)."""

    def choose_batch(self, jobs: Sequence[JobRequest], completion_s: np.ndarray, usable: np.ndarray,
                     edge_at_data_site: np.ndarray, relative_speed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`choose` for k jobs of one profile, size and latency class at once, over the same P pools.

        `completion_s` and `usable` are k x P (usable: the pool has room for the job now);
        `edge_at_data_site` and `relative_speed` are per pool, as in `PoolOptions`. Returns per job
        (pick, guard): the pool `choose` would take (-1 when none is usable) and a second pool
        (-1: none) such that the pick stays `choose`'s answer for as long as both pick and guard
        can still hold the job, whichever other pools fill up. Called only when
        `chooses_in_batches`; a policy whose choice depends on more than which pools have room
        (how full they are, say) leaves that False and the engine calls `choose` job by job.
        A subclass that overrides `choose` must override this too, or set the flag False.
        """
        raise NotImplementedError(f"policy {self.name!r} chooses one job at a time")

    def rng(self):
        """A seeded random generator for policies that choose at random (None otherwise)."""
        return None


def first_true(mask: np.ndarray) -> np.ndarray:
    """Per row of a k x P boolean matrix, the index of its first True, or -1 when it has none."""
    return np.where(mask.any(axis=1), mask.argmax(axis=1), -1)


def argmin_where(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per row, the index of the smallest value where `mask` holds (first on ties), or -1 when none does."""
    return np.where(mask.any(axis=1), np.where(mask, values, np.inf).argmin(axis=1), -1)
