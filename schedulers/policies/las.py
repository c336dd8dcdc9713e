"""`las`: least attained service with heterogeneity-aware placement (Tiresias / Gavel LAS).

Like `hetero` in where jobs go, but ranks jobs by the normalised device time they have already
received rather than by predicted remaining time: for clusters whose jobs' work is not known.
"""

from __future__ import annotations

from schedulers.policies.base import RoundContext, effective_priority
from schedulers.policies.hetero import HeteroPolicy


class LasPolicy(HeteroPolicy):
    name = "las"

    def order(self, jobs, ctx: RoundContext):
        return sorted(
            jobs,
            key=lambda j: (-effective_priority(j, ctx), j.attained_service_s / j.devices_needed, j.submitted_at, j.id),
        )
