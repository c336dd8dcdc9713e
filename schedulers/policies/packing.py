"""`packing`: best fit against fragmentation.

Jobs start in arrival order (priority first); each takes the pool it fills most tightly (fewest
devices left free), and inside it the node it fits most tightly, so large gangs still find whole
nodes later. Throughput-agnostic; no time-sharing.
"""

from __future__ import annotations

import numpy as np

from schedulers.policies.base import Choice, Policy, PoolOptions, RoundContext, by_priority


class PackingPolicy(Policy):
    name = "packing"

    def order(self, jobs, ctx: RoundContext):
        return by_priority(jobs, ctx)

    def choose(self, job, options: PoolOptions) -> int:
        return int(options.free_after.argmin())

    def compiled_choice(self, jobs):
        return np.full(len(jobs), Choice.TIGHTEST), np.full(len(jobs), np.nan)
