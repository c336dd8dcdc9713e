"""`hetero` (ours): heterogeneity-aware, throughput-normalised, time-sharing.

Each round (an event or a periodic tick), running checkpointed jobs and waiting ones compete
together, ordered by priority and then by least attained service (Tiresias / Gavel LAS): the job
that has had least normalised device time goes first, so short jobs are not stuck behind long
ones; jobs that lose their place are preempted and resume from their checkpoint later.

Admitted jobs then pick devices in order of how much they gain from the fastest device over the
slowest (Gavel's throughput-normalised view): the jobs that speed up most get the fast GPUs.

Where a job goes depends on its latency class (REQUIREMENTS 6.1 d, f):
- `realtime`: an edge node at the job's data site if one is free, else the lowest predicted latency;
- `interactive`: the lowest predicted completion (data transfer + compute);
- `batch`: the highest relative speed (useful throughput per device), completion breaking ties,
  so that slow devices go to the jobs that lose least on them.
"""

from __future__ import annotations

import numpy as np

from schedulers.policies.base import Policy, PoolOptions, RoundContext, effective_priority
from schedulers.types import JobRequest


def speedup_spread(job: JobRequest) -> float:
    """How much faster the job runs on its fastest known device than its slowest (1.0 if unknown)."""
    if not job.throughputs:
        return 1.0
    rates = [rate for _, rate in job.throughputs if rate > 0]
    return max(rates) / min(rates) if rates else 1.0


class HeteroPolicy(Policy):
    name = "hetero"
    time_shares = True

    def order(self, jobs, ctx: RoundContext):
        return sorted(
            jobs,
            key=lambda j: (-effective_priority(j, ctx), j.attained_service_s / j.devices_needed, j.submitted_at, j.id),
        )

    def assignment_order(self, jobs, ctx: RoundContext):
        return sorted(jobs, key=lambda j: -speedup_spread(j))

    def choose(self, job, options: PoolOptions) -> int:
        completion = options.completion_s
        if job.latency == "realtime":
            local = np.flatnonzero(options.edge_at_data_site)
            if local.size:
                return int(local[np.argmin(completion[local])])
            return int(np.argmin(completion))
        if job.latency == "interactive":
            return int(np.argmin(completion))
        # batch: most useful throughput per device first; among equals the earliest completion
        best_speed = options.relative_speed.max()
        near_best = np.flatnonzero(options.relative_speed >= best_speed * 0.999)
        return int(near_best[np.argmin(completion[near_best])])
