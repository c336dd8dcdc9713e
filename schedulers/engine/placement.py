"""Where a job goes: which pool (the flavour: cluster, device kind and model, tier, site) and
which nodes in it, and the record of that decision.

Two ways to the same choice:

- compiled (`CompiledRun`): for policies whose `choose` follows a `Choice` rule, runs of jobs are
  decided in compiled code (`schedulers.engine.compiled`) over flat arrays of the round's pools,
  nodes and jobs, and their placements recorded after; not under quotas or caps (their state
  changes the choice job by job);
- scored (`Placer.place`): every usable pool scored and `Policy.choose` asked, job by job; the way
  under quotas and caps, for policies without a compiled rule, for jobs that may start with fewer
  workers, and for each job the compiled run leaves to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np

from schedulers.capacity_index import CapacityIndex
from schedulers.engine import compiled
from schedulers.engine.backfill import Backfill, Reservation
from schedulers.engine.config import SchedulerConfig
from schedulers.engine.profiles import Profile, Profiles
from schedulers.engine.quota import Ledger
from schedulers.policies.base import Policy, PoolOptions
from schedulers.reasons import describe_demand, format_start
from schedulers.throughput import parallel_factors
from schedulers.types import JobRequest, Placement, WorkerAssignment


class Placer:
    """Places jobs against the round's capacity, recording each placement."""

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

    @property
    def compiles(self) -> bool:
        """Whether rounds may be decided in compiled runs: the policy has a compiled rule, and no
        quotas or caps apply (their state changes the choice job by job)."""
        return not self.config.quotas and not self.config.limits and self.policy.compiled_choice(()) is not None

    def compile(self, jobs: Sequence[JobRequest], table: JobTable | None = None) -> CompiledRun | None:
        """`jobs` (in the order they are to be placed; `table`: already laid out) made ready for
        compiled placement; None when rounds may not be compiled."""
        if not jobs or not self.compiles:
            return None
        return CompiledRun(self, table or JobTable.lay_out(self.profiles, jobs), *self.policy.compiled_choice(jobs))

    def place(self, job: JobRequest) -> tuple[Placement | None, str | None]:
        """Place `job` now if any pool can take it (scoring every usable pool and asking the
        policy); else None and, when known, why not."""
        return self._place_scored(job)

    def held_for(self, res: Reservation) -> str:
        """Why a job waits that the reservation `res` keeps out of its pool."""
        return f"backfill would delay the reservation of job {res.job_id} ({format_start(res.start, self.now)})"

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
                    why = self.held_for(res)
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
        if prof.away_from_data[pick]:  # why not at the data's edge: the text is written only when read
            free = index.free_list
            open_local = [at for at, p in prof.local_pairs if (free[p] >= need if usable is None else usable[at])]
            note = partial(edge_note, job, need, max([free[p] for _, p in prof.local_pairs]),
                           min([transfer_s.item(at) + compute_s.item(at) for at in open_local], default=np.inf),
                           transfer_s.item(pick) + compute_s.item(pick))
        index.take(pool, chosen, per_worker)
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


class JobTable:
    """Jobs laid out as the flat arrays the compiled loops read: per profile of the round its candidate
    pools (`prof_off[q]:prof_off[q + 1]` in the c_* arrays: pool, seconds per work unit and per
    byte, edge at the data's site, relative speed, away from the data's edge), and per job its
    profile, workers, devices per worker and in all, work scaled to its devices (as
    `Profile.run_s`), data bytes, gang and priority."""

    @classmethod
    def lay_out(cls, profiles: Profiles, jobs: Sequence[JobRequest]) -> JobTable:
        """The table of `jobs`, in their order."""
        self = object.__new__(cls)
        self.jobs = list(jobs)
        profs = profiles.of_many(jobs)
        parts = list(profiles.built)  # every profile of the round so far (those of `jobs` among them)
        n = len(jobs)
        self.prof_off = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(p.cand) for p in parts], out=self.prof_off[1:])
        self.c_pool = np.concatenate([p.cand for p in parts]).astype(np.int64) if parts else np.zeros(0, np.int64)
        self.c_inv_rate = np.concatenate([p.inv_rate for p in parts]) if parts else np.zeros(0)
        self.c_inv_bw = np.concatenate([p.inv_bandwidth for p in parts]) if parts else np.zeros(0)
        self.c_edge = np.concatenate([p.edge_at_site for p in parts]) if parts else np.zeros(0, np.bool_)
        self.c_speed = np.concatenate([p.relative_speed for p in parts]) if parts else np.zeros(0)
        self.c_away = np.array([a for p in parts for a in p.away_from_data], dtype=np.bool_)
        self.c_pool_list, self.c_away_list = self.c_pool.tolist(), self.c_away.tolist()  # (read per placement)
        self.j_prof = np.fromiter((p.number for p in profs), dtype=np.int64, count=n)
        self.j_workers = np.fromiter((job.workers for job in jobs), dtype=np.int64, count=n)
        self.j_per_worker = np.fromiter((job.devices_per_worker for job in jobs), dtype=np.int64, count=n)
        self.j_need = self.j_workers * self.j_per_worker
        factor = parallel_factors(self.j_need)
        per_device = np.fromiter((p.per_device for p in profs), dtype=np.bool_, count=n)
        work = np.fromiter((job.work for job in jobs), dtype=float, count=n)
        self.j_work = np.where(per_device, work / factor, work)  # as `Profile.run_s`: the same divisions
        self.j_data = np.fromiter((job.data_bytes for job in jobs), dtype=float, count=n)
        self.j_gang = np.fromiter((job.gang for job in jobs), dtype=np.bool_, count=n)
        self.j_priority = np.fromiter((job.priority for job in jobs), dtype=float, count=n)
        return self

    def subset(self, rows: Sequence[int]) -> JobTable:
        """The table of jobs `rows` (indices into this one), in that order; the profiles' arrays shared."""
        out = object.__new__(JobTable)
        at = np.asarray(rows, dtype=np.int64)
        out.jobs = [self.jobs[i] for i in at.tolist()]
        for name in ("prof_off", "c_pool", "c_inv_rate", "c_inv_bw", "c_edge", "c_speed", "c_away", "c_pool_list",
                     "c_away_list"):
            setattr(out, name, getattr(self, name))
        for name in ("j_prof", "j_workers", "j_per_worker", "j_need", "j_work", "j_data", "j_gang", "j_priority"):
            setattr(out, name, getattr(self, name)[at])
        return out


class CompiledRun:
    """A `JobTable` with the policy's rule per job and the arrays `compiled.decide_run` writes;
    `decide` runs the kernel from a job on and records what it decided."""

    def __init__(self, placer: Placer, table: JobTable, rules: np.ndarray, targets: np.ndarray):
        self.placer = placer
        self.table = table
        self.jobs = table.jobs
        n = len(self.jobs)
        self.j_rule = np.asarray(rules, dtype=np.int64)
        self.j_target = np.asarray(targets, dtype=float)
        self._row: dict[str, int] | None = None  # job id -> index in `jobs`, built when a reservation asks
        self.o_node_at = np.zeros(n, dtype=np.int64)
        self.o_status = np.zeros(n, dtype=np.int64)
        self.o_pick = np.full(n, -1, dtype=np.int64)
        self.o_nodes = np.zeros(n, dtype=np.int64)
        # node entries (node, workers there) of a run's placements: room for every worker of every job
        # when that is little, else for twice the cluster's nodes (a job never uses more nodes than a
        # pool has); `decide` records them and reuses the arrays when they fill
        entries = min(int(table.j_workers.sum()), max(2 * len(placer.index.node_free), 1024))
        self.o_pos = np.zeros(entries, dtype=np.int64)
        self.o_count = np.zeros(entries, dtype=np.int64)
        self.cursor = np.zeros(1, dtype=np.int64)
        self.o_most_local = np.zeros(n)
        self.o_at_edge = np.zeros(n)
        self.placed_ids: set[str] = set()

    def decide(self, first: int, stop_priority: float = np.inf,
               may_reserve: bool = False) -> tuple[int, list[tuple[JobRequest, str | None]]]:
        """Decide jobs from `first` on in compiled code, record the placements (in order), and
        return the index of the first job left to the Python path (len(jobs): none) with the jobs
        that wait, each with why when known. A job nothing can hold stops the run when its
        priority is above `stop_priority` (it may preempt) or, with `may_reserve`, while the round
        has no reservation (it gets one)."""
        placer = self.placer
        index = placer.index
        res = placer.backfill.reservation
        reservation = np.array([res.pool, res.start, res.extra, self._index_of(res.job_id)] if res is not None
                               else [-1.0, 0.0, 0.0, -1.0])
        seed = int(placer.rng.integers(1 << 31)) if placer.rng is not None else 0
        strategy = compiled.RANDOM_NODES if placer.node_strategy == "random" else compiled.BEST_FIT
        t = self.table
        waiting: list[tuple[JobRequest, str | None]] = []
        while True:
            self.cursor[0] = 0
            stop = compiled.decide_run(
                first, seed, float(placer.now), strategy, float(stop_priority), bool(may_reserve),
                index.pool_free, index.node_off, index.node_free,
                t.prof_off, t.c_pool, t.c_inv_rate, t.c_inv_bw, t.c_edge, t.c_speed, t.c_away,
                t.j_prof, t.j_workers, t.j_per_worker, t.j_work, t.j_data, self.j_rule, self.j_target,
                t.j_gang, t.j_priority, reservation,
                self.o_status, self.o_pick, self.o_node_at, self.o_nodes, self.o_pos, self.o_count, self.cursor,
                self.o_most_local, self.o_at_edge)
            if res is not None:
                res.extra = float(reservation[2])
            waiting += self._record(first, stop, res)
            if stop == len(self.jobs) or self.o_status[stop] != compiled.NODE_ENTRIES_FULL:
                return stop, waiting
            self.o_status[stop] = compiled.UNDECIDED  # the node entries were full: go on from it
            first, seed = stop, seed + 1

    def _index_of(self, job_id: str) -> int:
        """Where job `job_id` is in `jobs` (-1: not there)."""
        if self._row is None:
            self._row = {job.id: i for i, job in enumerate(self.jobs)}
        return self._row.get(job_id, -1)

    def _record(self, first: int, stop: int, res: Reservation | None) -> list[tuple[JobRequest, str | None]]:
        """The placements of jobs first..stop appended to the placer's, their devices counted for
        their tenants and in backfill's releases; the jobs that wait returned."""
        placer = self.placer
        index = placer.index
        status = self.o_status[first:stop].tolist()
        waiting: list[tuple[JobRequest, str | None]] = []
        if compiled.PLACED in status:
            index.taken_in_bulk()
        pick = self.o_pick[first:stop]
        picks = pick.tolist()
        # each job's seconds, as `Profile.run_s` computes them (a job not placed has pick -1: not read)
        t = self.table
        transfer_s = (t.c_inv_bw[pick] * t.j_data[first:stop]).tolist()
        compute_s = (t.c_inv_rate[pick] * t.j_work[first:stop]).tolist()
        used = self.o_nodes[first:stop].tolist()
        node_at = self.o_node_at[first:stop].tolist()
        written = int(self.cursor[0])
        pos, count = self.o_pos[:written].tolist(), self.o_count[:written].tolist()
        most_local, at_edge = self.o_most_local[first:stop].tolist(), self.o_at_edge[first:stop].tolist()
        pools, c_pool, away = index.pools, t.c_pool_list, t.c_away_list
        now, releases = placer.now, placer.backfill.releases
        placements, placed_ids = placer.placements, self.placed_ids
        usage: dict[tuple[str, str], float] = {}
        for i, job in enumerate(self.jobs[first:stop]):
            state = status[i]
            if state != compiled.PLACED:
                waiting.append((job, placer.held_for(res) if state == compiled.HELD_FOR_RESERVATION else None))
                continue
            c = picks[i]
            pool = c_pool[c]
            p = pools[pool]
            kind, model, node_ids, per_worker, need = p.kind, p.model, p.node_ids, job.devices_per_worker, job.devices_needed
            at = node_at[i]
            transfer, compute = transfer_s[i], compute_s[i]
            note = partial(edge_note, job, need, most_local[i], at_edge[i], transfer + compute) if away[c] else ""
            if used[i] == 1:
                assignments = (WorkerAssignment(node_ids[pos[at]], kind, model, count[at], per_worker),)
            else:
                assignments = tuple([WorkerAssignment(node_ids[pos[k]], kind, model, count[k], per_worker)
                                     for k in range(at, at + used[i])])
            placements.append(Placement(job.id, p.cluster, kind, model, assignments, 0.0, transfer, compute, False,
                                        note))
            placed_ids.add(job.id)
            key = (job.tenant, kind)
            usage[key] = usage.get(key, 0.0) + need
            releases[pool].append((now + (0.0 + transfer + compute), need))
        placer.ledger.add_usage(usage)
        return waiting


def edge_note(job: JobRequest, need: int, most_local: float, at_edge_s: float, here_s: float) -> str:
    """Why a job whose data lies at an edge site runs elsewhere, from what held at the decision:
    the edge pools at its data site had at most `most_local` devices free (no room when under
    `need`), and the soonest of them open to it would have taken `at_edge_s` (inf: none was
    open: held for a reservation or by a cap) against `here_s` where it runs."""
    if most_local < need:
        return (f"the edge at {job.data_site} has no room ({most_local:g} free where {need} "
                f"{describe_demand(job)} are needed): overflow")
    if at_edge_s == np.inf:
        return f"the edge at {job.data_site} is held for a reservation or by a cap: overflow"
    return f"predicted {here_s:.3g} s here vs {at_edge_s:.3g} s at the edge at {job.data_site}"
