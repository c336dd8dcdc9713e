"""Per kind of job, the pools it may run in and what each would give it: computed once a round.

A job's profile depends only on what it asks (device kinds, model, clusters, sites, algorithm,
data site, measured throughputs), so the thousands of jobs of a queue share a few dozen. The
profile holds, per candidate pool, the seconds per work unit and per byte of data, whether the
pool is an edge at the job's data site, and its speed relative to the job's fastest pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from schedulers.capacity_index import CapacityIndex
from schedulers.throughput import ThroughputModel, parallel_factor, parallel_factors
from schedulers.types import JobRequest


@dataclass(frozen=True)
class Profile:
    """The per-pool vectors of one kind of job (parallel arrays over its candidate pools)."""

    cand: np.ndarray  # candidate pools where the job can run
    inv_rate: np.ndarray  # seconds per work unit: on one device (per_device) or the whole job (measured)
    per_device: bool
    inv_bandwidth: np.ndarray  # seconds per byte from the job's data site to each pool
    edge_at_site: np.ndarray
    relative_speed: np.ndarray
    best_rate: float
    kinds: list[str]
    models: list[str]
    local_pairs: list[tuple[int, int]]  # (position in `cand`, pool) of edge pools at the job's data site
    cand_set: frozenset[int]
    cand_list: list[int]  # `cand` as Python ints (indexing a list is cheaper than an array on the hot path)
    away_from_data: list[bool]  # per candidate: the job's data lies at an edge site and this pool is not there
    number: int  # its place in `Profiles.built` (the round's profiles in the order they were first needed)

    def run_s(self, job: JobRequest, need: int) -> tuple[np.ndarray, np.ndarray]:
        """(compute seconds, transfer seconds) of `job` on `need` devices in each candidate pool."""
        work = job.work / parallel_factor(need) if self.per_device else job.work
        return self.inv_rate * work, self.inv_bandwidth * job.data_bytes


class Profiles:
    """The profiles of a round's jobs, cached by what they ask and by job id."""

    def __init__(self, index: CapacityIndex, throughput: ThroughputModel):
        self.index = index
        self.throughput = throughput
        self.pool_kind = [p.kind for p in index.pools]
        self.pool_model = [p.model for p in index.pools]
        self._rate_vectors: dict[str, np.ndarray] = {}
        self._runnable: dict[tuple, np.ndarray] = {}
        self._by_key: dict[tuple, Profile] = {}
        self._by_job: dict[str, Profile] = {}  # ids are unique in a round
        self.built: list[Profile] = []  # every profile of the round, by `number`

    def of(self, job: JobRequest) -> Profile:
        """`job`'s profile (computed on first use in the round)."""
        found = self._by_job.get(job.id)
        return found if found is not None else self.of_many((job,))[0]

    def of_many(self, jobs: Sequence[JobRequest]) -> list[Profile]:
        """The profile of each of `jobs`, in one pass: a profile is keyed by what a job asks (device
        kinds, model, clusters, sites, algorithm, data site, measured throughputs)."""
        by_job, by_key = self._by_job, self._by_key
        out = []
        for job in jobs:
            found = by_job.get(job.id)
            if found is None:
                key = (job.allowed_kinds, job.device_model, job.clusters, job.sites, job.algorithm, job.data_site,
                       job.throughputs)
                found = by_key.get(key)
                if found is None:
                    found = by_key[key] = self._build(job)
                    self.built.append(found)
                by_job[job.id] = found
            out.append(found)
        return out

    def _build(self, job: JobRequest) -> Profile:
        index = self.index
        cand = self._runnable_pools(job)
        rate = self._rates(job, cand)
        sites = [index.pools[p].site for p in cand]
        with np.errstate(divide="ignore"):
            inv_rate = np.where(rate > 0, 1.0 / rate, np.inf)
        edge_at_site = index.pool_edge[cand] & np.array([s == job.data_site for s in sites], dtype=bool)
        return Profile(
            cand=cand,
            inv_rate=inv_rate,
            per_device=not job.throughputs,
            inv_bandwidth=1.0 / index.bandwidth_to(job.data_site)[cand],
            edge_at_site=edge_at_site,
            relative_speed=rate / rate.max() if rate.size and rate.max() > 0 else np.ones(len(cand)),
            best_rate=float(rate.max()) if rate.size else 0.0,
            kinds=[self.pool_kind[p] for p in cand],
            models=[self.pool_model[p] for p in cand],
            local_pairs=[(at, int(cand[at])) for at in np.flatnonzero(edge_at_site).tolist()],
            cand_set=frozenset(cand.tolist()),
            cand_list=cand.tolist(),
            away_from_data=((~edge_at_site).tolist() if edge_at_site.any() and job.data_site is not None
                            else [False] * len(cand)),
            number=len(self.built),
        )

    def _rates(self, job: JobRequest, cand: np.ndarray) -> np.ndarray:
        """Work units/s in each candidate pool: of the whole job when it carries measured
        throughputs, else of one device (the throughput model's rates)."""
        if job.throughputs:  # measured for this job: models it lists are the only ones it runs on
            measured = dict(job.throughputs)
            return np.array([measured.get(self.pool_model[p], 0.0) for p in cand], dtype=float)
        vec = self._rate_vectors.get(job.algorithm)
        if vec is None:
            tm = self.throughput
            vec = np.array([tm.rate(job.algorithm, p.kind, p.model) for p in self.index.pools], dtype=float)
            self._rate_vectors[job.algorithm] = vec
        return vec[cand]

    def _runnable_pools(self, job: JobRequest) -> np.ndarray:
        """Candidate pools where the job's rate is above zero."""
        cand = self.index.candidates(job)
        if not job.throughputs:
            return cand
        key = (job.throughputs, job.allowed_kinds, job.device_model, job.clusters, job.sites)
        found = self._runnable.get(key)
        if found is None:
            found = self._runnable[key] = cand[self._rates(job, cand) > 0]
        return found

    def fastest_run_s(self, job: JobRequest) -> float:
        """Seconds `job` would run on its fastest pool (inf when it has none)."""
        prof = self.of(job)
        best = prof.best_rate * (parallel_factor(job.devices_needed) if prof.per_device else 1.0)
        return job.work / best if best > 0 else np.inf

    def fastest_runs_s(self, jobs: Sequence[JobRequest]) -> np.ndarray:
        """`fastest_run_s` of each of `jobs`, as one array (the same numbers)."""
        n = len(jobs)
        profs = self.of_many(jobs)
        need = np.fromiter((job.devices_needed for job in jobs), dtype=np.int64, count=n)
        factor = parallel_factors(need)
        per_device = np.fromiter((p.per_device for p in profs), dtype=np.bool_, count=n)
        rates = np.fromiter((p.best_rate for p in profs), dtype=float, count=n) * np.where(per_device, factor, 1.0)
        work = np.fromiter((job.work for job in jobs), dtype=float, count=n)
        out = np.full(n, np.inf)
        np.divide(work, rates, out=out, where=rates > 0)
        return out

    def model_rates(self, job: JobRequest) -> dict[str, float]:
        """The job's work units/s as a whole on each device model among its runnable pools."""
        prof = self.of(job)
        scale = parallel_factor(job.devices_needed) if prof.per_device else 1.0
        rates: dict[str, float] = {}
        for pool, inv in zip(prof.cand.tolist(), prof.inv_rate.tolist(), strict=True):
            model = self.pool_model[pool]
            rates[model] = max(rates.get(model, 0.0), scale / inv if inv > 0 else 0.0)
        return rates

    def free_by_model(self) -> dict[str, float]:
        """Free devices per device model now."""
        out: dict[str, float] = {}
        for model, free in zip(self.pool_model, self.index.pool_free.tolist(), strict=True):
            out[model] = out.get(model, 0.0) + free
        return out
