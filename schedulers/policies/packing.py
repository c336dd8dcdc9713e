"""`packing`: best fit against fragmentation.

Jobs start in arrival order (priority first); each takes the pool it fills most tightly (fewest
devices left free), and inside it the node it fits most tightly, so large gangs still find whole
nodes later. Throughput-agnostic; no time-sharing.
"""

from __future__ import annotations

from schedulers.policies.base import Policy, PoolOptions, RoundContext, effective_priority


class PackingPolicy(Policy):
    name = "packing"

    def order(self, jobs, ctx: RoundContext):
        return sorted(jobs, key=lambda j: (-effective_priority(j, ctx), j.submitted_at, j.id))

    def choose(self, job, options: PoolOptions) -> int:
        return int(options.free_after.argmin())
