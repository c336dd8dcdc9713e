"""`hetero` (ours): heterogeneity-aware, throughput-normalised, time-sharing.

Each round (an event or a periodic tick), running checkpointed jobs and waiting ones compete
together, ordered by priority and then by the least predicted remaining device time (remaining
work over the job's best throughput in this cluster, times its devices), with least attained
service breaking ties: short jobs are never stuck behind long ones, and jobs that lose their place
are preempted and resume from their checkpoint later. suanli knows each job's work (data volume x
epochs) and the throughput model, so it can rank by what is left rather than by what was received
(the `las` policy ranks by attained service alone, as Tiresias and Gavel's LAS do, for when work
is unknown). Ageing lifts long jobs that wait too long.

Admitted jobs then pick devices in order of how much they gain from the fastest device over the
slowest (Gavel's throughput-normalised view): the jobs that speed up most get the fast GPUs.

Where a job goes depends on its latency class (REQUIREMENTS 6.1 d, f):
- `realtime`: an edge node at the job's data site if one is free, else the lowest predicted latency;
- `interactive`: the lowest predicted completion (data transfer + compute);
- `batch`: of the pools that finish within 10% of the earliest, the one with the slowest devices
  for this job, so that fast devices stay free for jobs that gain more from them (the cluster's
  total useful throughput).
"""

from __future__ import annotations

import numpy as np

from schedulers.policies.base import Policy, PoolOptions, RoundContext, argmin_where, effective_priority
from schedulers.types import JobRequest

BATCH_SLACK = 1.10


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
            key=lambda j: (-effective_priority(j, ctx), ctx.fastest_run_s(j) * j.devices_needed,
                           j.attained_service_s / j.devices_needed, j.submitted_at, j.id),
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
        # batch: among pools that finish within BATCH_SLACK of the best, take the least valuable
        # devices (lowest relative speed), leaving fast ones to jobs that gain more from them
        near_best = np.flatnonzero(completion <= completion.min() * BATCH_SLACK)
        return int(near_best[np.lexsort((completion[near_best], options.relative_speed[near_best]))[0]])

    chooses_in_batches = True

    def choose_batch(self, jobs, completion_s, usable, edge_at_data_site, relative_speed):
        latency = jobs[0].latency  # the engine groups jobs by latency class
        fastest = argmin_where(completion_s, usable)
        if latency == "realtime":
            local = argmin_where(completion_s, usable & edge_at_data_site)
            return np.where(local >= 0, local, fastest), np.full(len(jobs), -1)
        if latency == "interactive":
            return fastest, np.full(len(jobs), -1)
        masked = np.where(usable, completion_s, np.inf)
        near_best = usable & (masked <= masked.min(axis=1, keepdims=True) * BATCH_SLACK)
        speed = np.where(near_best, relative_speed, np.inf)
        slowest = near_best & (speed == speed.min(axis=1, keepdims=True))
        # the pick holds while the fastest pool (which sets the 10% window) can still take the job
        return argmin_where(completion_s, slowest), fastest
