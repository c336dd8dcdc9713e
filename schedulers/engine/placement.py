"""Where a job goes: which pool (the flavour: cluster, device kind and model, tier, site) and
which nodes in it, and the record of that decision.

Three ways to the same choice, cheapest first:

- planned: for policies that `choose_in_batches`, jobs that share a profile, size and latency
  class get their pools chosen together (`choose_batch` over a jobs x pools matrix); placing one
  then only checks that its choice still holds;
- tightest: for policies that take the pool they fill most tightly (`takes_tightest_pool`), that
  pool is found in a sorted index (`TightestPools`) instead of scored;
- full: every usable pool scored and `Policy.choose` asked; the only way under quotas or caps,
  when a reservation narrows the job's pools, or when the cheaper ways find nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from schedulers.capacity_index import CapacityIndex, TightestPools
from schedulers.engine.backfill import Backfill
from schedulers.engine.config import SchedulerConfig
from schedulers.engine.profiles import Profile, Profiles
from schedulers.engine.quota import Ledger
from schedulers.policies.base import Policy, PoolOptions
from schedulers.reasons import describe_demand, format_start
from schedulers.throughput import parallel_factor
from schedulers.types import JobRequest, Placement, WorkerAssignment


@dataclass
class Group:
    """Jobs that share a profile, size and latency class, in placement order, with their
    compute and transfer seconds per candidate pool (rows) and the policy's planned choice per
    job: position `pick` in the profile's candidates (-1: none), which stays the policy's choice
    while `pick` and `guard` (-1: none) can still hold the job, since placements only ever
    shrink the set of pools that can."""

    prof: Profile
    need: int
    members: list[JobRequest]
    compute_s: np.ndarray
    transfer_s: np.ndarray
    pick: list[int] = field(default_factory=list)
    guard: list[int] = field(default_factory=list)
    planned_from: int = 0  # rows before this were planned against an older state
    planned_version: int = -1  # the index's `version` when the rows from `planned_from` were planned


class Placer:
    """Places jobs one at a time against the round's capacity, recording each placement."""

    def __init__(self, index: CapacityIndex, profiles: Profiles, ledger: Ledger, backfill: Backfill, policy: Policy,
                 config: SchedulerConfig, now: float):
        self.index = index
        self.profiles = profiles
        self.ledger = ledger
        self.backfill = backfill
        self.policy = policy
        self.config = config
        self.now = now
        self.rng = policy.rng()
        self.node_strategy = policy.node_strategy
        self.placements: list[Placement] = []
        self._planned: dict[str, tuple[Group, int]] = {}
        self._planned_at = -1  # the index's `grown` when the plan was made; a release voids it
        self._tightest = (TightestPools(index) if policy.takes_tightest_pool and not config.quotas
                          and not config.limits else None)

    # ---- planning ------------------------------------------------------------------------
    def plan(self, jobs: Sequence[JobRequest]) -> None:
        """Group jobs that share a profile, size and latency class, and compute each group's pool
        choices at once (the policy's `choose_batch` over a jobs x pools matrix), so that placing
        mostly checks that a choice still holds. Skipped under quotas or caps (their state
        changes the choice job by job) and for policies that choose one at a time."""
        self._planned = {}
        if not jobs or self.config.quotas or self.config.limits or not self.policy.chooses_in_batches:
            return
        self._planned_at = self.index.grown
        members_of: dict[tuple, list[JobRequest]] = {}
        profile = self.profiles.of
        for job in jobs:
            members_of.setdefault((id(profile(job)), job.devices_needed, job.latency), []).append(job)
        for (_, need, _), members in members_of.items():
            prof = profile(members[0])
            if not prof.cand.size:
                continue
            work = np.fromiter((j.work for j in members), dtype=float, count=len(members))
            data = np.fromiter((j.data_bytes for j in members), dtype=float, count=len(members))
            group = Group(prof, need, members,
                          np.outer(work / parallel_factor(need) if prof.per_device else work, prof.inv_rate),
                          np.outer(data, prof.inv_bandwidth))
            self._replan(group, 0)
            for row, job in enumerate(members):
                self._planned[job.id] = (group, row)

    def _replan(self, group: Group, row: int) -> None:
        """Plan the choices of `group`'s jobs from `row` on against the capacity now."""
        compute_s, transfer_s = group.compute_s[row:], group.transfer_s[row:]
        usable = np.broadcast_to(self.index.pool_free[group.prof.cand] >= group.need, compute_s.shape)
        planned = self.policy.choose_batch(group.members[row:], transfer_s + compute_s, usable,
                                           group.prof.edge_at_site, group.prof.relative_speed)
        group.pick[row:] = planned[0].tolist()
        group.guard[row:] = planned[1].tolist()
        group.planned_from = row
        group.planned_version = self.index.version

    # ---- placing -------------------------------------------------------------------------
    def place(self, job: JobRequest) -> tuple[Placement | None, str | None]:
        """Place `job` now if any pool can take it; else None and, when known, why not."""
        placed = self._place_planned(job) if self._planned else self._place_tightest(job)
        if placed is not None:
            return placed, None
        return self._place_scored(job)

    def _place_planned(self, job: JobRequest) -> Placement | None:
        """Place `job` at its planned choice if that choice still holds (planning its group's
        remaining jobs again once when it does not); None to decide afresh."""
        found = self._planned.get(job.id)
        if found is None or self.index.grown != self._planned_at:
            return None
        group, row = found
        need = group.need
        if self.backfill.narrows(job, need, group.prof.cand_set):
            return None  # the reservation narrows this job's pools: the full path applies it
        free, cand = self.index.free_list, group.prof.cand_list
        for attempt in (0, 1):
            pick, guard = group.pick[row], group.guard[row]
            if pick >= 0 and free[cand[pick]] >= need and (guard < 0 or free[cand[guard]] >= need):
                return self._commit(job, group.prof, pick, job.workers, need, group.compute_s[row],
                                    group.transfer_s[row], None, {})
            if attempt or group.planned_from == row or group.planned_version == self.index.version:
                return None  # (planned against this very state: planning again would choose the same)
            self._replan(group, row)
        return None

    def _place_tightest(self, job: JobRequest) -> Placement | None:
        """For policies that take the usable pool with the fewest devices left (first on ties):
        that pool, found in `TightestPools` instead of scored, when nothing else narrows the
        job's pools (quotas, caps, a reservation in its way); None to decide by the full path."""
        if self._tightest is None:
            return None
        prof = self.profiles.of(job)
        need = job.devices_needed
        if self.backfill.narrows(job, need, prof.cand_set):
            return None
        pick = self._tightest.first_fit(prof.cand, prof.cand_list, need)
        if pick < 0:
            return None
        compute_s, transfer_s = prof.run_s(job, need)
        return self._commit(job, prof, pick, job.workers, need, compute_s, transfer_s, None, {})

    def _place_scored(self, job: JobRequest) -> tuple[Placement | None, str | None]:
        """Score every usable pool and ask the policy (the full path)."""
        index = self.index
        ledger = self.ledger
        prof = self.profiles.of(job)
        free = index.pool_free[prof.cand]
        workers = job.workers
        need = job.devices_needed
        fits = free >= need
        if not free.size or free.max() < need:
            if job.gang or not free.size:
                return None, None
            workers = int(min(np.floor(free.max() / job.devices_per_worker), job.workers))
            if workers < 1:
                return None, None
            need = workers * job.devices_per_worker
            fits = free >= need
        why = None
        if self.config.limits:
            capped = {kind: ledger.over_limit(job, kind, need) for kind in set(prof.kinds)}
            within = np.array([capped[k] is None for k in prof.kinds], dtype=bool)
            if not (fits & within).any():
                return None, next((r for r in capped.values() if r), None)
            fits &= within
        quota: dict[str, str] = {}
        if self.config.quotas:
            quota = {kind: ledger.quota_state(job, kind) for kind in set(prof.kinds)}
            allowed = np.array([quota[k] != "blocked" for k in prof.kinds], dtype=bool)
            if not (fits & allowed).any():
                return None, ledger.quota_refusal(job, quota)
            fits &= allowed
        compute_s, transfer_s = prof.run_s(job, need)
        usable = fits
        res = self.backfill.reservation
        if res is not None and res.job_id != job.id:
            in_pool = prof.cand == res.pool
            if (in_pool & usable).any() and need > res.extra:
                ends_before = self.now + transfer_s + compute_s <= res.start
                usable = usable & (~in_pool | ends_before)
                if not usable.any():
                    why = f"backfill would delay the reservation of job {res.job_id} ({format_start(res.start, self.now)})"
        keep = usable.nonzero()[0]
        while keep.size:
            options = PoolOptions(keep, prof.cand, transfer_s, compute_s, free - need, prof.edge_at_site,
                                  prof.relative_speed, prof.models)
            pick = int(keep[self.policy.choose(job, options)])
            placed = self._commit(job, prof, pick, workers, need, compute_s, transfer_s, usable, quota)
            if placed is not None:
                return placed, None
            keep = keep[keep != pick]  # free devices are spread too thin in this pool for a worker each
            why = why or (f"each worker needs {job.devices_per_worker} {describe_demand(job)} on one node; "
                          "free devices are spread across nodes")
        return None, why

    def _commit(self, job: JobRequest, prof: Profile, pick: int, workers: int, need: int, compute_s: np.ndarray,
                transfer_s: np.ndarray, usable: np.ndarray | None, quota: Mapping[str, str]) -> Placement | None:
        """Take nodes for `workers` workers in candidate `pick` and record the placement; None when
        the pool's free devices are spread too thin for a worker each. `usable` (None: every pool
        with room) marks the pools the job was allowed, for the note on why not at its data's edge."""
        index = self.index
        pool = prof.cand_list[pick]
        per_worker = job.devices_per_worker
        chosen = index.select_nodes(pool, workers, per_worker, self.node_strategy, self.rng)
        if chosen is None:
            return None
        note = ""
        if prof.away_from_data[pick]:
            note = self._away_from_data_note(job, prof, pick, usable, need, transfer_s, compute_s)
        before = index.free_list[pool]
        index.take(pool, chosen, per_worker)
        if self._tightest is not None:
            self._tightest.moved(pool, before, index.free_list[pool])
        p = index.pools[pool]
        kind, model, node_ids = p.kind, p.model, p.node_ids
        transfer, compute = transfer_s.item(pick), compute_s.item(pick)
        placement = Placement(
            job.id, p.cluster, kind, model,
            tuple([WorkerAssignment(node_ids[pos], kind, model, n, per_worker) for pos, n in chosen]),
            0.0, transfer, compute, quota.get(kind) == "borrow" if quota else False, note,
        )
        self.ledger.count(job, kind, +1)
        self.backfill.placed(pool, self.now + (0.0 + transfer + compute), need)  # its predicted_completion_s
        self.placements.append(placement)
        return placement

    def _away_from_data_note(self, job: JobRequest, prof: Profile, pick: int, usable: np.ndarray | None, need: int,
                             transfer_s: np.ndarray, compute_s: np.ndarray) -> str:
        """Why a job whose data lies at an edge site runs elsewhere (its edge has no room, is held
        back, or is predicted slower). Called only when it runs away from an edge at its data site.
        `usable` (None: every pool with room) marks the candidates the job was allowed."""
        free = self.index.free_list
        local = prof.local_pairs
        most = max([free[pool] for _, pool in local])
        if most < need:
            return (f"the edge at {job.data_site} has no room ({most:g} free where {need} "
                    f"{describe_demand(job)} are needed): overflow")
        open_local = [at for at, pool in local if (free[pool] >= need if usable is None else usable[at])]
        if not open_local:
            return f"the edge at {job.data_site} is held for a reservation or by a cap: overflow"
        at_edge = min(transfer_s.item(at) + compute_s.item(at) for at in open_local)
        return (f"predicted {transfer_s.item(pick) + compute_s.item(pick):.3g} s here vs {at_edge:.3g} s at the edge "
                f"at {job.data_site}")
