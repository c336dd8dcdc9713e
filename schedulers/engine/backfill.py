"""When devices free up, and the reservation that keeps backfill from starving the queue's head.

Running jobs (and jobs placed this round) free their devices at their expected end. The first
job that cannot start gets a reservation: the pool and the time at which enough devices will be
free for it. Later jobs may still use that pool if they finish before then, or if they leave
enough free for it (`extra`).
"""

from __future__ import annotations

from dataclasses import dataclass

from schedulers.capacity_index import CapacityIndex
from schedulers.types import JobRequest, Placement


@dataclass
class Reservation:
    """Pool `pool` is held for job `job_id` from `start`; `extra` of its devices may still be used past then."""

    job_id: str
    pool: int
    start: float
    extra: float


class Backfill:
    """Per pool, when devices are released (time, amount); and the round's reservation, if any."""

    def __init__(self, index: CapacityIndex, now: float):
        self.index = index
        self.now = now
        self.releases: list[list[tuple[float, float]]] = [[] for _ in index.pools]
        self.reservation: Reservation | None = None
        self._start_cache: dict[tuple, tuple[float, int] | None] = {}

    def add_running(self, placement: Placement, at: float) -> None:
        """A running job's devices come back at `at`."""
        for a in placement.assignments:
            found = self.index.locate(a.node_id, a.kind, a.model)
            if found is not None:
                self.releases[found[0]].append((at, a.workers * a.devices_per_worker))

    def placed(self, pool: int, at: float, need: float) -> None:
        """A job placed this round in `pool` frees `need` devices at `at`; if it runs past the
        reservation in that pool, the devices it holds are no longer spare then."""
        self.releases[pool].append((at, need))
        res = self.reservation
        if res is not None and pool == res.pool and at > res.start:
            res.extra -= need

    def narrows(self, job: JobRequest, need: float, cand_set: frozenset[int]) -> bool:
        """Whether the reservation (of another job) may keep `job` out of one of its pools."""
        res = self.reservation
        return res is not None and res.job_id != job.id and need > res.extra and res.pool in cand_set

    def earliest_start(self, job: JobRequest) -> tuple[float, int] | None:
        """(estimated start time, pool) when running jobs' ends free enough devices for `job`."""
        key = (job.allowed_kinds, job.device_model, job.clusters, job.sites, job.devices_needed)
        if key in self._start_cache:
            return self._start_cache[key]
        best = None
        need = job.devices_needed
        for pool in self.index.candidates(job):
            if self.index.pool_total[pool] < need:
                continue
            free = self.index.pool_free[pool]
            if free >= need:
                start = self.now
            else:
                start = None
                for at, amount in sorted(self.releases[pool]):
                    free += amount
                    if free >= need:
                        start = max(at, self.now)
                        break
            if start is not None and (best is None or start < best[0]):
                best = (start, int(pool))
        self._start_cache[key] = best
        return best

    def reserve(self, job: JobRequest) -> None:
        """Reserve for `job` the pool where it can start earliest (nothing when it never can)."""
        found = self.earliest_start(job)
        if found is None:
            return
        start, pool = found
        free_then = self.index.pool_free[pool] + sum(a for at, a in self.releases[pool] if at <= start)
        self.reservation = Reservation(job.id, pool, start, max(0.0, free_then - job.devices_needed))
