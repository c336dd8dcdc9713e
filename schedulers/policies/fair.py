"""`fair`: max-min fairness across tenants.

Each round, running checkpointed jobs and waiting ones compete together; the next job admitted is
always one of the tenant that holds fewest devices so far in the round (water-filling), so every
tenant gets an equal share where it has demand, and leftover capacity goes to the others. Inside
a tenant, jobs go by priority, then arrival. A job takes the pool where it completes soonest.
"""

from __future__ import annotations

import heapq

import numpy as np

from schedulers.policies.base import Choice, Policy, PoolOptions, RoundContext, by_priority


class FairPolicy(Policy):
    name = "fair"
    time_shares = True

    def order(self, jobs, ctx: RoundContext):
        per_tenant: dict[str, list] = {}
        for job in by_priority(jobs, ctx):
            per_tenant.setdefault(job.tenant, []).append(job)
        # the round starts with every tenant's share at zero: all its jobs are candidates here
        heap = [(0.0, tenant) for tenant in sorted(per_tenant)]
        heapq.heapify(heap)
        position = dict.fromkeys(per_tenant, 0)
        ordered = []
        while heap:
            share, tenant = heapq.heappop(heap)
            job = per_tenant[tenant][position[tenant]]
            ordered.append(job)
            position[tenant] += 1
            if position[tenant] < len(per_tenant[tenant]):
                heapq.heappush(heap, (share + job.devices_needed, tenant))
        return ordered

    def choose(self, job, options: PoolOptions) -> int:
        return int(options.completion_s.argmin())

    def compiled_choice(self, jobs):
        return np.full(len(jobs), Choice.SOONEST), np.full(len(jobs), np.nan)
