"""Making room by preempting running jobs (they resume from their checkpoint later).

Two forms: in an ordered round, a blocked job may preempt preemptible running jobs of lower
priority, or borrowed ones when its tenant is within quota (`preempt_for`); in a time-sharing
round, running preemptible jobs compete with waiting ones for the devices and those that lose
their place are preempted (`TimeSharing`).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

import numpy as np

from schedulers.capacity_index import CapacityIndex
from schedulers.engine import compiled
from schedulers.engine.config import RunningJob, SchedulerConfig
from schedulers.engine.placement import JobTable, Placer
from schedulers.engine.profiles import Profiles
from schedulers.engine.quota import Ledger
from schedulers.policies.base import Policy, RoundContext
from schedulers.types import JobRequest, Placement


def preempt_for(job: JobRequest, running: Sequence[RunningJob], preempted: list[str], index: CapacityIndex,
                ledger: Ledger, placer: Placer, config: SchedulerConfig, now: float) -> Placement | None:
    """Preempt lower-priority (or borrowed, when `job` is within quota) running jobs, cheapest
    first, until `job` fits, appending their ids to `preempted`; undo and return None if even all
    of them would not make room."""
    cand = set(index.candidates(job).tolist())
    victims = []
    for r in running:
        if r.request.id in preempted or not r.request.preemptible:
            continue
        if now - r.started_at < config.min_run_before_preempt_s:
            continue
        pool = index.locate(r.placement.assignments[0].node_id, r.placement.kind, r.placement.model)
        if pool is None or pool[0] not in cand:
            continue
        lower = r.request.priority < job.priority
        reclaim = (r.placement.borrowed and r.request.tenant != job.tenant
                   and ledger.quota_state(job, r.placement.kind) == "within")
        if lower or reclaim:
            victims.append(r)
    victims.sort(key=lambda r: (r.request.priority, not r.placement.borrowed, -r.started_at))
    released = []
    for victim in victims:
        index.release(victim.placement)
        released.append(victim)
        placed, _ = placer.place(job)
        if placed is not None:
            for v in released:
                preempted.append(v.request.id)
                ledger.count(v.request, v.placement.kind, -1)
            return placed
    for victim in released:
        index.retake(victim.placement)
    return None


class TimeSharing:
    """A time-sharing round's re-admission: every preemptible running job that has run long
    enough gives its devices back, then waiting and running jobs are admitted together in the
    policy's order until the devices run out; running jobs not admitted are preempted."""

    def __init__(self, index: CapacityIndex, profiles: Profiles, ledger: Ledger, policy: Policy, ctx: RoundContext,
                 config: SchedulerConfig, now: float):
        self.index = index
        self.profiles = profiles
        self.ledger = ledger
        self.policy = policy
        self.ctx = ctx
        self.config = config
        self.now = now

    def readmit(self, jobs: list[JobRequest], running: Sequence[RunningJob], preempted: list[str],
                compiled: bool = False) -> tuple[list[JobRequest], JobTable | None]:
        """Release the running jobs that compete, admit in the policy's order, take back the devices
        of the running jobs admitted and preempt the others (their ids appended to `preempted`).
        Returns the waiting jobs admitted, in the order they should pick devices, and with
        `compiled` (admission decided in compiled code) their `JobTable`, laid out once for both."""
        releasable = {
            r.request.id: r for r in running
            if r.request.preemptible and self.now - r.started_at >= self.config.min_run_before_preempt_s
        }
        for r in releasable.values():
            self.index.release(r.placement)
        ordered = self.policy.order(jobs + [r.request for r in releasable.values()], self.ctx)
        table = None
        if self.index.pool_free.sum() < 1:
            admitted = []  # nothing free even with the running jobs' devices back: nobody is admitted
        elif compiled:
            admitted, rows, table = self._admit_compiled(ordered, releasable)
        else:
            admitted = self._admit(ordered, releasable)
        kept = [j for j in admitted if j.id in releasable]
        for job in kept:
            self.index.retake(releasable[job.id].placement)
        kept_ids = {j.id for j in kept}
        for job_id, r in releasable.items():
            if job_id not in kept_ids:
                preempted.append(job_id)
                self.ledger.count(r.request, r.placement.kind, -1)
        new = self.policy.assignment_order([j for j in admitted if j.id not in releasable], self.ctx)
        if table is None:
            return new, None
        row_of = {id(job): row for job, row in zip(admitted, rows, strict=True)}
        return new, table.subset([row_of[id(job)] for job in new])

    def _admit_compiled(self, ordered: list[JobRequest],
                        releasable: Mapping[str, RunningJob]) -> tuple[list[JobRequest], list[int], JobTable]:
        """`_admit`'s decisions made by `compiled.admit_run`: the jobs admitted, their rows in the
        table of `ordered`, and that table."""
        table = JobTable.lay_out(self.profiles, ordered)
        n = len(ordered)
        running = np.zeros(n, dtype=np.bool_)
        per_job = np.zeros(n, dtype=np.int64)  # (pool, devices) pairs each running job holds
        pairs: list[tuple[int, int]] = []
        for i, job in enumerate(ordered if releasable else ()):
            r = releasable.get(job.id)
            if r is not None:
                running[i] = True
                held = self._held(r.placement)
                per_job[i] = len(held)
                pairs += held
        r_off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(per_job, out=r_off[1:])
        rows = np.zeros(n, dtype=np.int64)
        count = compiled.admit_run(
            self.index.pool_free.copy(), float(self.index.pool_free.sum()), table.prof_off, table.c_pool,
            table.j_prof, table.j_need, running, r_off, np.array([p for p, _ in pairs], dtype=np.int64),
            np.array([a for _, a in pairs], dtype=float), rows)
        admitted_rows = rows[:count].tolist()
        return [ordered[i] for i in admitted_rows], admitted_rows, table

    def _held(self, placement: Placement) -> list[tuple[int, int]]:
        """(pool, devices) for each node of a running job's placement."""
        return [(self.index.locate(a.node_id, a.kind, a.model)[0], a.workers * a.devices_per_worker)
                for a in placement.assignments]

    def _admit(self, ordered: list[JobRequest], releasable: Mapping[str, RunningJob]) -> list[JobRequest]:
        """The jobs (waiting or running) admitted, in the policy's order: each takes room in its
        emptiest candidate pool (the first on ties), a running one the devices it holds, until the
        devices run out. Each candidate set keeps its pools in a heap by free devices, brought up
        to date lazily: free devices only shrink here, so an entry that is out of date overstates
        its pool and is refreshed when it reaches the top."""
        available = self.index.pool_free.tolist()
        left = float(self.index.pool_free.sum())
        admitted: list[JobRequest] = []
        heaps: dict[int, list[tuple[float, int, int]]] = {}  # id of a candidate array -> (-free, position, pool)
        limits = self.config.limits
        for job, prof in zip(ordered, self.profiles.of_many(ordered), strict=True):
            if left < 1:
                break  # full: every job after this one waits (or, if running, is preempted)
            if releasable and job.id in releasable:
                held = self._held(releasable[job.id].placement)
                if all(available[p] >= n for p, n in held):
                    for p, n in held:
                        available[p] -= n
                    left -= sum(n for _, n in held)
                    admitted.append(job)
                continue
            need = job.devices_needed
            if limits:
                fits = [p for p in prof.cand_list if available[p] >= need]
                fits = [p for p in fits if self.ledger.over_limit(job, self.profiles.pool_kind[p], need) is None]
                if not fits:
                    continue
                best = max(fits, key=available.__getitem__)
            else:
                heap = heaps.get(id(prof.cand))
                if heap is None:
                    if not prof.cand_list:
                        continue
                    heap = heaps[id(prof.cand)] = [(-available[p], at, p) for at, p in enumerate(prof.cand_list)]
                    heapq.heapify(heap)
                while True:
                    stale, at, best = heap[0]
                    if -stale == available[best]:
                        break
                    heapq.heapreplace(heap, (-available[best], at, best))
                if available[best] < need:
                    continue
            available[best] -= need
            left -= need
            admitted.append(job)
        return admitted
