"""One scheduling round: `schedule(queue, state, now, policy, running, config) -> Decisions`.

Pure: no Ray, no I/O, no clock (`now` is an argument), so the same code decides in production
and in the trace simulator. The engine owns the queue semantics every policy shares:

- gangs: a job's workers are placed all at once in one pool (one cluster, device kind and model,
  tier and site), or not at all (`gang=False` jobs may start with fewer workers);
- priorities with preemption: a blocked job may preempt preemptible running jobs of lower
  priority (they resume from their checkpoint later);
- quotas with borrowing: a tenant beyond its quota may borrow idle devices if its job is
  preemptible; the quota's owner reclaims them by preemption when it needs them;
- backfill: the first blocked job gets a reservation (pool and start time, from running jobs'
  expected ends); later jobs may use that pool only if they finish before it or leave enough
  free for it;
- ageing: a job's priority rises by one for every `ageing_interval_s` it waits;
- rejection: a job that can never fit (16 GPUs asked of a cluster that has 8) is rejected;
- time-sharing (policies with `time_shares`): running preemptible jobs compete with waiting ones
  every round, and those that lose their place are preempted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from schedulers.capacity_index import CapacityIndex
from schedulers.policies.base import Policy, PoolOptions, RoundContext
from schedulers.reasons import describe_demand, format_start
from schedulers.throughput import ThroughputModel, parallel_factor
from schedulers.types import (
    ClusterState,
    Decisions,
    JobRequest,
    Placement,
    Rejection,
    Waiting,
    WorkerAssignment,
)


@dataclass(frozen=True)
class RunningJob:
    """A job that holds devices now: its request, placement, start and expected end (caller's clock)."""

    request: JobRequest
    placement: Placement
    started_at: float
    expected_end: float


@dataclass(frozen=True)
class SchedulerConfig:
    """Settings of the queue semantics. `quotas` maps tenant -> device kind -> guaranteed
    devices; when empty, no quotas apply. `min_run_before_preempt_s` protects a job that just
    started from being preempted (limits thrashing). `explain_waiting=False` skips writing
    reasons and start estimates for waiting jobs (the simulator does not read them). `limits` are
    hard caps, keyed `tenant:<name>` or `user:<name>`, on devices in use per kind and on
    concurrent jobs (`jobs`): a job that would pass one waits, with the cap named as its reason."""

    throughput: ThroughputModel = field(default_factory=ThroughputModel)
    quotas: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    limits: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    ageing_interval_s: float = 3600.0
    min_run_before_preempt_s: float = 0.0
    backfill: bool = True
    explain_waiting: bool = True


@dataclass(frozen=True)
class _Profile:
    cand: np.ndarray  # candidate pools where the job can run
    inv_rate: np.ndarray  # seconds per work unit: on one device (per_device) or the whole job (measured)
    per_device: bool
    inv_bandwidth: np.ndarray  # seconds per byte from the job's data site to each pool
    edge_at_site: np.ndarray
    relative_speed: np.ndarray
    best_rate: float
    kinds: list[str]
    models: list[str]
    local: np.ndarray  # positions (in `cand`) of edge pools at the job's data site
    cand_set: frozenset[int]


@dataclass
class _Group:
    """Jobs that share a profile, size and latency class, in placement order, with their
    compute and transfer seconds per candidate pool (rows) and the policy's planned choice per
    job: position `pick` in the profile's candidates (-1: none), which stays the policy's choice
    while `pick` and `guard` (-1: none) can still hold the job, since placements only ever
    shrink the set of pools that can."""

    prof: _Profile
    need: int
    members: list[JobRequest]
    compute_s: np.ndarray
    transfer_s: np.ndarray
    pick: list[int] = field(default_factory=list)
    guard: list[int] = field(default_factory=list)
    planned_from: int = 0  # rows before this were planned against an older state


@dataclass
class _Reservation:
    job_id: str
    pool: int
    start: float
    extra: float  # devices of the pool that may still be used past `start`


def can_ever_fit(job: JobRequest, index: CapacityIndex) -> str | None:
    """None if the job fits the cluster's total capacity when empty; else why it never will."""
    cand = index.candidates(job)
    demand = describe_demand(job)
    if cand.size == 0:
        return f"rejected: no {demand} exists in any cluster"
    per_node_ok = cand[index.pool_max_node[cand] >= job.devices_per_worker]
    if per_node_ok.size == 0:
        return (f"rejected: each worker needs {job.devices_per_worker} {demand} on one node; the largest node "
                f"has {index.pool_max_node[cand].max():g}")
    need = job.devices_needed if job.gang else job.devices_per_worker
    largest = index.pool_total[per_node_ok].max()
    if largest < need:
        return f"rejected: needs {need} {demand} in one pool (cluster, model, site); the largest has {largest:g}"
    return None


def check_submission(job: JobRequest, state: ClusterState) -> Rejection | None:
    """Reject at submission a job that can never fit `state`'s total capacity (with the reason)."""
    reason = can_ever_fit(job, CapacityIndex(state))
    return Rejection(job.id, reason) if reason else None


def schedule(
    queue: Sequence[JobRequest],
    state: ClusterState,
    now: float,
    policy: Policy,
    running: Sequence[RunningJob] = (),
    config: SchedulerConfig | None = None,
) -> Decisions:
    """Decide this round: which queued jobs start where, which running jobs are preempted, why
    each other job waits, and which can never run. `state` is the capacity now (running jobs'
    devices already in use); `running` lists those jobs so they can be preempted or counted."""
    return _Round(state, now, policy, running, config or SchedulerConfig()).run(queue)


class _Round:
    def __init__(self, state, now, policy, running, config):
        self.index = CapacityIndex(state)
        self.now = now
        self.policy = policy
        self.config = config
        self.running = list(running)
        self.usage: dict[str, dict[str, float]] = {}
        self.limited: dict[str, dict[str, float]] = {}  # limit key -> kind or "jobs" -> in use
        for r in self.running:
            self._count(r.request.tenant, r.placement.kind, r.request, +1)
        self._running_model = {r.request.id: r.placement.model for r in self.running}
        self.ctx = RoundContext(
            now=now,
            tenant_usage={t: sum(k.values()) for t, k in self.usage.items()},
            ageing_interval_s=config.ageing_interval_s,
            fastest_run_s=self._fastest_run_s,
            model_rates=self._model_rates,
            free_by_model=self._free_by_model,
            running_model=lambda job: self._running_model.get(job.id),
        )
        self.rng = policy.rng()
        self.pool_kind = [p.kind for p in self.index.pools]
        self.pool_model = [p.model for p in self.index.pools]
        self._rate_vectors: dict[str, np.ndarray] = {}
        self.releases: list[list[tuple[float, float]]] = [[] for _ in self.index.pools]
        for r in self.running:
            self._add_release(r.placement, r.expected_end)
        self._start_cache: dict[tuple, tuple[float, int] | None] = {}
        self._runnable_cache: dict[tuple, np.ndarray] = {}
        self._profiles: dict[tuple, _Profile] = {}
        self._profile_of: dict[str, _Profile] = {}  # by job id (ids are unique in a round)
        self._reason_cache: dict[tuple, str] = {}
        self._reason_version = -1
        self._planned: dict[str, tuple[_Group, int]] = {}
        self._planned_at = -1  # the index's `grown` when the plan was made; a release voids it
        self.reservation: _Reservation | None = None
        self.placements: list[Placement] = []
        self.preempted: list[str] = []
        self.waiting: list[Waiting] = []
        self.rejected: list[Rejection] = []

    # ---- bookkeeping -------------------------------------------------------------------
    def _count(self, tenant, kind, job, sign):
        per_kind = self.usage.setdefault(tenant, {})
        per_kind[kind] = per_kind.get(kind, 0.0) + sign * job.devices_needed
        if not self.config.limits:
            return
        for key in self._limit_keys(job):
            used = self.limited.setdefault(key, {})
            used[kind] = used.get(kind, 0.0) + sign * job.devices_needed
            used["jobs"] = used.get("jobs", 0.0) + sign

    def _limit_keys(self, job: JobRequest) -> list[str]:
        keys = ([f"user:{job.user}"] if job.user else []) + [f"tenant:{job.tenant}"]  # the narrowest cap first
        return [k for k in keys if k in self.config.limits]

    def over_limit(self, job: JobRequest, kind: str, need: float) -> str | None:
        """The reason `job` may not take `need` devices of `kind` now (a cap it would pass), or None."""
        for key in self._limit_keys(job):
            limit, used = self.config.limits[key], self.limited.get(key, {})
            if "jobs" in limit and used.get("jobs", 0.0) + 1 > limit["jobs"]:
                return f"quota {key} allows {limit['jobs']:g} concurrent jobs, {used.get('jobs', 0.0):g} running"
            if kind in limit and used.get(kind, 0.0) + need > limit[kind]:
                return f"quota {key} allows {limit[kind]:g} {kind}, {used.get(kind, 0.0):g} in use"
        return None

    def _add_release(self, placement: Placement, at: float) -> None:
        for a in placement.assignments:
            found = self.index.locate(a.node_id, a.kind, a.model)
            if found is not None:
                self.releases[found[0]].append((at, a.workers * a.devices_per_worker))

    def _rates(self, job: JobRequest, cand: np.ndarray) -> np.ndarray:
        """Work units/s in each candidate pool: of the whole job when it carries measured
        throughputs, else of one device (the throughput model's rates)."""
        if job.throughputs:  # measured for this job: models it lists are the only ones it runs on
            measured = dict(job.throughputs)
            return np.array([measured.get(self.pool_model[p], 0.0) for p in cand], dtype=float)
        vec = self._rate_vectors.get(job.algorithm)
        if vec is None:
            tm = self.config.throughput
            vec = np.array([tm.rate(job.algorithm, p.kind, p.model) for p in self.index.pools], dtype=float)
            self._rate_vectors[job.algorithm] = vec
        return vec[cand]

    def _fastest_run_s(self, job: JobRequest) -> float:
        prof = self._profile(job)
        best = prof.best_rate * (parallel_factor(job.devices_needed) if prof.per_device else 1.0)
        return job.work / best if best > 0 else np.inf

    def _model_rates(self, job: JobRequest) -> dict[str, float]:
        """The job's work units/s as a whole on each device model among its runnable pools."""
        prof = self._profile(job)
        scale = parallel_factor(job.devices_needed) if prof.per_device else 1.0
        rates: dict[str, float] = {}
        for pool, inv in zip(prof.cand.tolist(), prof.inv_rate.tolist(), strict=True):
            model = self.pool_model[pool]
            rates[model] = max(rates.get(model, 0.0), scale / inv if inv > 0 else 0.0)
        return rates

    def _free_by_model(self) -> dict[str, float]:
        """Free devices per device model now."""
        out: dict[str, float] = {}
        for model, free in zip(self.pool_model, self.index.pool_free.tolist(), strict=True):
            out[model] = out.get(model, 0.0) + free
        return out

    def _runnable_pools(self, job: JobRequest) -> np.ndarray:
        """Candidate pools where the job's rate is above zero."""
        cand = self.index.candidates(job)
        if not job.throughputs:
            return cand
        key = (job.throughputs, job.allowed_kinds, job.device_model, job.clusters, job.sites)
        found = self._runnable_cache.get(key)
        if found is None:
            found = self._runnable_cache[key] = cand[self._rates(job, cand) > 0]
        return found

    # ---- the round ---------------------------------------------------------------------
    def run(self, queue: Sequence[JobRequest]) -> Decisions:
        feasible = []
        never: dict[tuple, str | None] = {}
        seen: set[str] = set()
        for job in queue:
            if job.id in seen:  # ids key every per-job cache of the round: a second entry would corrupt them
                self.rejected.append(Rejection(job.id, f"rejected: duplicate job id {job.id!r} in the queue; only its "
                                                       "first entry is scheduled"))
                continue
            seen.add(job.id)
            shape = (job.allowed_kinds, job.device_model, job.clusters, job.sites, job.devices_per_worker,
                     job.devices_needed if job.gang else 0)
            if shape not in never:
                never[shape] = can_ever_fit(job, self.index)
            reason = never[shape]
            if reason:
                self.rejected.append(Rejection(job.id, reason))
            else:
                feasible.append(job)
        if self.policy.time_shares:
            self._time_shared_round(feasible)
        else:
            self._ordered_round(feasible)
        return Decisions(
            placements=tuple(self.placements),
            preemptions=tuple(self.preempted),
            waiting=tuple(self.waiting),
            rejected=tuple(self.rejected),
        )

    def _ordered_round(self, jobs: list[JobRequest]) -> None:
        lowest_running = min((r.request.priority for r in self.running if r.request.preemptible), default=None)
        any_borrowed = any(r.placement.borrowed for r in self.running)
        full = False
        ordered = self.policy.order(jobs, self.ctx)
        self._plan(ordered)
        for job in ordered:
            if full:
                self.waiting.append(self._waiting(job, None))  # nothing free and nothing to preempt
                continue
            placed, why = self._place(job)
            if placed is None and lowest_running is None and self.index.pool_free.sum() < 1:
                full = True
            if placed is None and lowest_running is not None and (job.priority > lowest_running or any_borrowed):
                placed = self._place_by_preempting(job)
            if placed is not None:
                continue
            if self.config.backfill and self.reservation is None and self._limit_reason(job) is None:
                self._reserve(job)  # (a job held by a cap reserves nothing: freed devices would not help it)
            self.waiting.append(self._waiting(job, why))

    def _time_shared_round(self, jobs: list[JobRequest]) -> None:
        releasable = {
            r.request.id: r for r in self.running
            if r.request.preemptible and self.now - r.started_at >= self.config.min_run_before_preempt_s
        }
        for r in releasable.values():
            self.index.release(r.placement)
        candidates = jobs + [r.request for r in releasable.values()]
        available = self.index.pool_free.copy()
        left = float(available.sum())
        admitted: list[JobRequest] = []
        for job in self.policy.order(candidates, self.ctx):
            if left < 1:
                break  # full: every job after this one waits (or, if running, is preempted)
            if job.id in releasable:
                pools = [self.index.locate(a.node_id, a.kind, a.model)[0]
                         for a in releasable[job.id].placement.assignments]
                need = [a.workers * a.devices_per_worker for a in releasable[job.id].placement.assignments]
                if all(available[p] >= n for p, n in zip(pools, need, strict=True)):
                    for p, n in zip(pools, need, strict=True):
                        available[p] -= n
                    left -= sum(need)
                    admitted.append(job)
                continue
            cand = self._profile(job).cand
            need = job.devices_needed
            if self.config.limits:
                fits = cand[available[cand] >= need]
                if fits.size:
                    fits = fits[[self.over_limit(job, self.pool_kind[p], need) is None for p in fits]]
                best = fits[np.argmax(available[fits])] if fits.size else -1
            elif cand.size:
                best = cand[available[cand].argmax()]  # the emptiest pool, if it has room
                best = best if available[best] >= need else -1
            else:
                best = -1
            if best >= 0:
                available[best] -= need
                left -= need
                admitted.append(job)
        kept = [j for j in admitted if j.id in releasable]
        for job in kept:
            self.index.retake(releasable[job.id].placement)
        kept_ids = {j.id for j in kept}
        for job_id, r in releasable.items():
            if job_id not in kept_ids:
                self.preempted.append(job_id)
                self._count(r.request.tenant, r.placement.kind, r.request, -1)
        new = self.policy.assignment_order([j for j in admitted if j.id not in releasable], self.ctx)
        self._plan(new)
        placed_ids = set()
        for job in new:
            placed, _ = self._place(job)
            if placed is not None:
                placed_ids.add(job.id)
        for job in jobs:
            if job.id not in placed_ids:
                self.waiting.append(self._waiting(job, self._limit_reason(job)))

    def _limit_reason(self, job: JobRequest) -> str | None:
        """Why a waiting job is held by a cap, when one holds it in every kind it may use."""
        if not self.config.limits:
            return None
        reasons = [self.over_limit(job, kind, job.devices_needed) for kind in job.allowed_kinds]
        return reasons[0] if reasons and all(reasons) else None

    # ---- placing one job ---------------------------------------------------------------
    def _quota_state(self, job: JobRequest, kind: str) -> str:
        """'within', 'borrow' or 'blocked' for `job` using devices of `kind`."""
        if not self.config.quotas:
            return "within"
        limit = self.config.quotas.get(job.tenant, {}).get(kind, 0.0)
        used = self.usage.get(job.tenant, {}).get(kind, 0.0)
        if used + job.devices_needed <= limit:
            return "within"
        return "borrow" if job.preemptible else "blocked"

    @staticmethod
    def _profile_key(job: JobRequest) -> tuple:
        return (job.allowed_kinds, job.device_model, job.clusters, job.sites, job.algorithm, job.data_site,
                job.throughputs)

    def _profile(self, job: JobRequest) -> _Profile:
        """The per-pool vectors that depend only on what the job is, cached for the round."""
        found = self._profile_of.get(job.id)
        if found is not None:
            return found
        key = self._profile_key(job)
        found = self._profiles.get(key)
        if found is None:
            cand = self._runnable_pools(job)
            per_device = not job.throughputs
            rate = self._rates(job, cand)
            index = self.index
            sites = [index.pools[p].site for p in cand]
            with np.errstate(divide="ignore"):
                inv_rate = np.where(rate > 0, 1.0 / rate, np.inf)
            edge_at_site = index.pool_edge[cand] & np.array([s == job.data_site for s in sites], dtype=bool)
            found = _Profile(
                cand=cand,
                inv_rate=inv_rate,
                per_device=per_device,
                inv_bandwidth=1.0 / index.bandwidth_to(job.data_site)[cand],
                edge_at_site=edge_at_site,
                relative_speed=rate / rate.max() if rate.size and rate.max() > 0 else np.ones(len(cand)),
                best_rate=float(rate.max()) if rate.size else 0.0,
                kinds=[self.pool_kind[p] for p in cand],
                models=[self.pool_model[p] for p in cand],
                local=np.flatnonzero(edge_at_site),
                cand_set=frozenset(cand.tolist()),
            )
            self._profiles[key] = found
        self._profile_of[job.id] = found
        return found

    def _plan(self, jobs: Sequence[JobRequest]) -> None:
        """Group jobs that share a profile, size and latency class, and compute each group's pool
        choices at once (the policy's `choose_batch` over a jobs x pools matrix), so that the
        placement loop mostly checks that a choice still holds. Skipped under quotas or caps
        (their state changes the choice job by job) and for policies that choose one at a time."""
        self._planned = {}
        if not jobs or self.config.quotas or self.config.limits or not self.policy.chooses_in_batches:
            return
        self._planned_at = self.index.grown
        members_of: dict[tuple, list[JobRequest]] = {}
        profile = self._profile
        for job in jobs:
            members_of.setdefault((id(profile(job)), job.devices_needed, job.latency), []).append(job)
        for (_, need, _), members in members_of.items():
            prof = profile(members[0])
            if not prof.cand.size:
                continue
            work = np.fromiter((j.work for j in members), dtype=float, count=len(members))
            data = np.fromiter((j.data_bytes for j in members), dtype=float, count=len(members))
            group = _Group(prof, need, members,
                           np.outer(work / parallel_factor(need) if prof.per_device else work, prof.inv_rate),
                           np.outer(data, prof.inv_bandwidth))
            self._replan(group, 0)
            for row, job in enumerate(members):
                self._planned[job.id] = (group, row)

    def _replan(self, group: _Group, row: int) -> None:
        """Plan the choices of `group`'s jobs from `row` on against the capacity now."""
        compute_s, transfer_s = group.compute_s[row:], group.transfer_s[row:]
        usable = np.broadcast_to(self.index.pool_free[group.prof.cand] >= group.need, compute_s.shape)
        planned = self.policy.choose_batch(group.members[row:], transfer_s + compute_s, usable,
                                           group.prof.edge_at_site, group.prof.relative_speed)
        group.pick[row:] = planned[0].tolist()
        group.guard[row:] = planned[1].tolist()
        group.planned_from = row

    def _place_planned(self, job: JobRequest) -> Placement | None:
        """Place `job` at its planned choice if that choice still holds (planning its group's
        remaining jobs again once when it does not); None to decide afresh."""
        found = self._planned.get(job.id)
        if found is None or self.index.grown != self._planned_at:
            return None
        group, row = found
        need = group.need
        res = self.reservation
        if res is not None and res.job_id != job.id and need > res.extra and res.pool in group.prof.cand_set:
            return None  # the reservation narrows this job's pools: the full path applies it
        free, cand = self.index.pool_free, group.prof.cand
        for attempt in (0, 1):
            pick, guard = group.pick[row], group.guard[row]
            if pick >= 0 and free[cand[pick]] >= need and (guard < 0 or free[cand[guard]] >= need):
                return self._commit(job, group.prof, pick, job.workers, need, group.compute_s[row],
                                    group.transfer_s[row], None, {})
            if attempt or group.planned_from == row:
                return None
            self._replan(group, row)
        return None

    def _place(self, job: JobRequest) -> tuple[Placement | None, str | None]:
        """Place `job` now if any pool can take it; else None and, when known, why not."""
        placed = self._place_planned(job)
        if placed is not None:
            return placed, None
        index = self.index
        prof = self._profile(job)
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
            capped = {kind: self.over_limit(job, kind, need) for kind in set(prof.kinds)}
            within = np.array([capped[k] is None for k in prof.kinds], dtype=bool)
            if not (fits & within).any():
                return None, next((r for r in capped.values() if r), None)
            fits &= within
        quota: dict[str, str] = {}
        if self.config.quotas:
            quota = {kind: self._quota_state(job, kind) for kind in set(prof.kinds)}
            allowed = np.array([quota[k] != "blocked" for k in prof.kinds], dtype=bool)
            if not (fits & allowed).any():
                used = {k: self.usage.get(job.tenant, {}).get(k, 0.0) for k in quota}
                return None, (f"tenant {job.tenant!r} is at its quota ({', '.join(f'{v:g} {k}' for k, v in used.items())}"
                              " in use) and the job is not preemptible, so it cannot borrow idle devices")
            fits &= allowed
        compute_s = prof.inv_rate * (job.work / parallel_factor(need) if prof.per_device else job.work)
        transfer_s = prof.inv_bandwidth * job.data_bytes
        usable = fits
        res = self.reservation
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

    def _commit(self, job: JobRequest, prof: _Profile, pick: int, workers: int, need: int, compute_s: np.ndarray,
                transfer_s: np.ndarray, usable: np.ndarray | None, quota: Mapping[str, str]) -> Placement | None:
        """Take nodes for `workers` workers in candidate `pick` and record the placement; None when
        the pool's free devices are spread too thin for a worker each. `usable` (None: every pool
        with room) marks the pools the job was allowed, for the note on why not at its data's edge."""
        index = self.index
        pool = int(prof.cand[pick])
        chosen = index.select_nodes(pool, workers, job.devices_per_worker, self.policy.node_strategy, self.rng)
        if chosen is None:
            return None
        note = ""
        if prof.local.size and job.data_site is not None and not prof.edge_at_site[pick]:
            free = index.pool_free[prof.cand]
            note = self._away_from_data_note(job, prof, pick, free >= need if usable is None else usable, free, need,
                                             transfer_s + compute_s)
        index.take(pool, chosen, job.devices_per_worker)
        p = index.pools[pool]
        placement = Placement(
            job_id=job.id,
            cluster=p.cluster,
            kind=p.kind,
            model=p.model,
            assignments=tuple(
                WorkerAssignment(p.node_ids[pos], p.kind, p.model, n, job.devices_per_worker) for pos, n in chosen
            ),
            queue_s=0.0,
            transfer_s=float(transfer_s[pick]),
            compute_s=float(compute_s[pick]),
            borrowed=quota.get(p.kind) == "borrow",
            note=note,
        )
        self._count(job.tenant, p.kind, job, +1)
        self._add_release(placement, self.now + placement.predicted_completion_s)
        res = self.reservation
        if res is not None and pool == res.pool and self.now + placement.predicted_completion_s > res.start:
            res.extra -= need
        self.placements.append(placement)
        return placement

    @staticmethod
    def _away_from_data_note(job: JobRequest, prof: _Profile, pick: int, usable: np.ndarray, free: np.ndarray,
                             need: int, completion_s: np.ndarray) -> str:
        """Why a job whose data lies at an edge site runs elsewhere (its edge has no room, is held
        back, or is predicted slower). Called only when it runs away from an edge at its data site."""
        local = prof.local
        if free[local].max() < need:
            return (f"the edge at {job.data_site} has no room ({free[local].max():g} free where {need} "
                    f"{describe_demand(job)} are needed): overflow")
        open_local = local[usable[local]]
        if not open_local.size:
            return f"the edge at {job.data_site} is held for a reservation or by a cap: overflow"
        return (f"predicted {completion_s[pick]:.3g} s here vs {completion_s[open_local].min():.3g} s at the edge at "
                f"{job.data_site}")

    def _place_by_preempting(self, job: JobRequest) -> Placement | None:
        """Preempt lower-priority (or borrowed, when `job` is within quota) running jobs until
        `job` fits; undo and return None if even all of them would not make room."""
        cand = set(self.index.candidates(job).tolist())
        victims = []
        for r in self.running:
            if r.request.id in self.preempted or not r.request.preemptible:
                continue
            if self.now - r.started_at < self.config.min_run_before_preempt_s:
                continue
            pool = self.index.locate(r.placement.assignments[0].node_id, r.placement.kind, r.placement.model)
            if pool is None or pool[0] not in cand:
                continue
            lower = r.request.priority < job.priority
            reclaim = (r.placement.borrowed and r.request.tenant != job.tenant
                       and self._quota_state(job, r.placement.kind) == "within")
            if lower or reclaim:
                victims.append(r)
        victims.sort(key=lambda r: (r.request.priority, not r.placement.borrowed, -r.started_at))
        released = []
        for victim in victims:
            self.index.release(victim.placement)
            released.append(victim)
            placed, _ = self._place(job)
            if placed is not None:
                for v in released:
                    self.preempted.append(v.request.id)
                    self._count(v.request.tenant, v.placement.kind, v.request, -1)
                return placed
        for victim in released:
            self.index.retake(victim.placement)
        return None

    # ---- waiting -----------------------------------------------------------------------
    def _earliest_start(self, job: JobRequest) -> tuple[float, int] | None:
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

    def _reserve(self, job: JobRequest) -> None:
        found = self._earliest_start(job)
        if found is None:
            return
        start, pool = found
        free_then = self.index.pool_free[pool] + sum(a for at, a in self.releases[pool] if at <= start)
        self.reservation = _Reservation(job.id, pool, start, max(0.0, free_then - job.devices_needed))

    def _cap_end(self, job: JobRequest) -> float | None:
        """When the first running job counted against one of `job`'s caps is expected to end (a cap
        frees only then, whatever devices are free), or None when none runs."""
        keys = set(self._limit_keys(job))
        ends = [r.expected_end for r in self.running
                if (r.request.user and f"user:{r.request.user}" in keys) or f"tenant:{r.request.tenant}" in keys]
        return max(min(ends), self.now) if ends else None

    def _waiting(self, job: JobRequest, why: str | None) -> Waiting:
        if not self.config.explain_waiting:
            return Waiting(job.id, "waiting")
        cap = self._limit_reason(job)
        if cap is not None:  # held by a cap: free devices would not start it
            start = self._cap_end(job)
            when = (format_start(start, self.now) if start is not None
                    else "unknown (nothing running counts against the cap: raise it with 'suanli quota set')")
            return Waiting(job.id, f"waiting: {cap}; next estimated start {when}", start)
        found = self._earliest_start(job)
        start = found[0] if found else None
        if why is None:
            key = (job.allowed_kinds, job.device_model, job.clusters, job.sites, job.devices_needed, start)
            why = self._reason_cache.get(key)
            if why is None or self.index.version != self._reason_version:
                if self.index.version != self._reason_version:
                    self._reason_cache.clear()
                    self._reason_version = self.index.version
                cand = self.index.candidates(job)
                per_cluster = np.bincount(self.index.pool_cluster[cand], weights=self.index.pool_free[cand],
                                          minlength=len(self.index.clusters))
                why = (f"needs {job.devices_needed} {describe_demand(job)} in one cluster, {per_cluster.max():g} free;"
                       f" next estimated start {format_start(start, self.now)}")
                self._reason_cache[key] = why
            return Waiting(job.id, f"waiting: {why}", start)
        return Waiting(job.id, f"waiting: {why}; next estimated start {format_start(start, self.now)}", start)
