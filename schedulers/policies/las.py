"""`las`: least attained service with heterogeneity-aware placement (Tiresias / Gavel LAS).

Like `hetero` in where jobs go, but ranks jobs by the normalised device time they have already
received rather than by predicted remaining time: for clusters whose jobs' work is not known.
"""

from __future__ import annotations

import numpy as np

from schedulers.policies.base import RoundContext, by_priority
from schedulers.policies.hetero import HeteroPolicy


class LasPolicy(HeteroPolicy):
    name = "las"

    def order(self, jobs, ctx: RoundContext):
        attained = np.fromiter((j.attained_service_s / j.devices_needed for j in jobs), dtype=float, count=len(jobs))
        return by_priority(jobs, ctx, attained)
