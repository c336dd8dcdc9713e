"""Why a job waits, and when it may start: the reasons a person reads in `suanli status`.

Reasons are built once per kind of job and capacity state (cached until capacity changes), so a
long queue of similar jobs costs one explanation, not one per job.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from schedulers.capacity_index import CapacityIndex
from schedulers.engine.backfill import Backfill
from schedulers.engine.config import RunningJob
from schedulers.engine.quota import Ledger
from schedulers.reasons import describe_demand, format_start
from schedulers.types import JobRequest, Waiting


class Explainer:
    """Writes each waiting job's reason and estimated start (or only 'waiting' when not asked to)."""

    def __init__(self, index: CapacityIndex, ledger: Ledger, backfill: Backfill, running: Sequence[RunningJob],
                 now: float, explain: bool):
        self.index = index
        self.ledger = ledger
        self.backfill = backfill
        self.running = running
        self.now = now
        self.explain = explain
        self._cache: dict[tuple, str] = {}
        self._cache_version = -1

    def waiting(self, job: JobRequest, why: str | None) -> Waiting:
        """`job`'s `Waiting` record: `why` (when the placer knew) or the shortfall, and when it may start."""
        if not self.explain:
            return Waiting(job.id, "waiting")
        cap = self.ledger.limit_reason(job)
        if cap is not None:  # held by a cap: free devices would not start it
            start = self._cap_end(job)
            when = (format_start(start, self.now) if start is not None
                    else "unknown (nothing running counts against the cap: raise it with 'suanli quota set')")
            return Waiting(job.id, f"waiting: {cap}; next estimated start {when}", start)
        found = self.backfill.earliest_start(job)
        start = found[0] if found else None
        if why is not None:
            return Waiting(job.id, f"waiting: {why}; next estimated start {format_start(start, self.now)}", start)
        index = self.index
        if index.version != self._cache_version:
            self._cache.clear()
            self._cache_version = index.version
        key = (job.allowed_kinds, job.device_model, job.clusters, job.sites, job.devices_needed, start)
        why = self._cache.get(key)
        if why is None:
            cand = index.candidates(job)
            per_cluster = np.bincount(index.pool_cluster[cand], weights=index.pool_free[cand],
                                      minlength=len(index.clusters))
            why = self._cache[key] = (f"needs {job.devices_needed} {describe_demand(job)} in one cluster, "
                                      f"{per_cluster.max():g} free; next estimated start {format_start(start, self.now)}")
        return Waiting(job.id, f"waiting: {why}", start)

    def _cap_end(self, job: JobRequest) -> float | None:
        """When the first running job counted against one of `job`'s caps is expected to end (a cap
        frees only then, whatever devices are free), or None when none runs."""
        keys = set(self.ledger.limit_keys(job))
        ends = [r.expected_end for r in self.running
                if (r.request.user and f"user:{r.request.user}" in keys) or f"tenant:{r.request.tenant}" in keys]
        return max(min(ends), self.now) if ends else None
