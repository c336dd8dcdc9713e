"""`fair`: max-min fairness across tenants.

Each round, running checkpointed jobs and waiting ones compete together; the next job admitted is
always one of the tenant that holds fewest devices so far in the round (water-filling), so every
tenant gets an equal share where it has demand, and leftover capacity goes to the others. Inside
a tenant, jobs go by priority, then arrival. A job takes the pool where it completes soonest.
"""

from __future__ import annotations

import numpy as np

from schedulers.policies.base import Choice, Policy, PoolOptions, RoundContext, by_priority


class FairPolicy(Policy):
    name = "fair"
    time_shares = True

    def order(self, jobs, ctx: RoundContext):
        """Water-filling: the next job is always the next (by priority, then arrival) of the tenant
        that holds fewest devices so far in the round (by name on ties). Each tenant's share only
        grows, so that is the merge of every tenant's jobs sorted by (the tenant's share before the
        job, the tenant, the job's place in the tenant's order): one lexsort."""
        ranked = by_priority(jobs, ctx)
        n = len(ranked)
        if not n:
            return []
        names, tenant = np.unique(np.array([j.tenant for j in ranked], dtype=str), return_inverse=True)
        need = np.fromiter((j.devices_needed for j in ranked), dtype=float, count=n)
        by_tenant = np.argsort(tenant, kind="stable")  # each tenant's jobs together, in their ranked order
        held = np.cumsum(need[by_tenant])
        starts = np.searchsorted(tenant[by_tenant], np.arange(len(names)))  # where each tenant's run begins
        held_before = np.empty(n)
        held_before[by_tenant] = held - need[by_tenant] - np.repeat(
            np.concatenate(([0.0], held))[starts], np.diff(np.append(starts, n)))
        order = np.lexsort((np.arange(n), tenant, held_before))
        return [ranked[i] for i in order.tolist()]

    def choose(self, job, options: PoolOptions) -> int:
        return int(options.completion_s.argmin())

    def compiled_choice(self, jobs):
        return np.full(len(jobs), Choice.SOONEST), np.full(len(jobs), np.nan)
