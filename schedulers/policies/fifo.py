"""`fifo`: the heterogeneity-agnostic baseline as Gavel defines it.

Jobs start in arrival order (priority first); accelerators are interchangeable, so a job takes a
free device type at random (seeded, so runs repeat) and random nodes within it. No preemption.
"""

from __future__ import annotations

import numpy as np

from schedulers.policies.base import Policy, PoolOptions, RoundContext, by_priority


class FifoPolicy(Policy):
    name = "fifo"
    node_strategy = "random"

    def __init__(self, seed: int = 0):
        self._rng = np.random.default_rng(seed)

    def order(self, jobs, ctx: RoundContext):
        return by_priority(jobs, ctx)

    def choose(self, job, options: PoolOptions) -> int:
        return int(self._rng.integers(len(options)))

    def rng(self):
        return self._rng

    chooses_in_batches = True

    def choose_batch(self, jobs, completion_s, usable, edge_at_data_site, relative_speed):
        # uniform over the usable pools; while the pick stays usable it is still uniform over the
        # pools usable then (a uniform draw conditioned on a subset is uniform on that subset)
        counts = usable.sum(axis=1)
        kth = self._rng.integers(np.maximum(counts, 1))
        pick = (usable.cumsum(axis=1) > kth[:, None]).argmax(axis=1)
        return np.where(counts > 0, pick, -1), np.full(len(jobs), -1)
