"""`fifo`: the heterogeneity-agnostic baseline as Gavel defines it.

Jobs start in arrival order (priority first); accelerators are interchangeable, so a job takes a
free device type at random (seeded, so runs repeat) and random nodes within it. No preemption.
"""

from __future__ import annotations

import numpy as np

from schedulers.policies.base import Choice, Policy, PoolOptions, RoundContext, by_priority


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

    def compiled_choice(self, jobs):
        return np.full(len(jobs), Choice.RANDOM), np.full(len(jobs), np.nan)
