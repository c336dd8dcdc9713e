"""Devices in use per tenant and per cap, and what quotas and caps allow a job now.

Quotas (`SchedulerConfig.quotas`) guarantee a tenant devices per kind: beyond its quota a tenant
may borrow idle devices with a preemptible job, which the quota's owner may reclaim. Caps
(`SchedulerConfig.limits`, keyed `tenant:<name>` or `user:<name>`) are hard: a job that would pass
one waits, with the cap named as its reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from schedulers.engine.config import RunningJob, SchedulerConfig
from schedulers.types import JobRequest


class Ledger:
    """What each tenant and each cap holds during a round, updated as jobs start and stop."""

    def __init__(self, config: SchedulerConfig, running: Sequence[RunningJob]):
        self.quotas = config.quotas
        self.limits = config.limits
        self.usage: dict[str, dict[str, float]] = {}  # tenant -> kind -> devices in use
        self.limited: dict[str, dict[str, float]] = {}  # cap key -> kind or "jobs" -> in use
        for r in running:
            self.count(r.request, r.placement.kind, +1)

    def count(self, job: JobRequest, kind: str, sign: int) -> None:
        """Record that `job` starts (`sign` +1) or stops (-1) holding its devices of `kind`."""
        need = job.devices_needed
        per_kind = self.usage.setdefault(job.tenant, {})
        per_kind[kind] = per_kind.get(kind, 0.0) + sign * need
        if not self.limits:
            return
        for key in self.limit_keys(job):
            used = self.limited.setdefault(key, {})
            used[kind] = used.get(kind, 0.0) + sign * need
            used["jobs"] = used.get("jobs", 0.0) + sign

    def add_usage(self, devices: dict[tuple[str, str], float]) -> None:
        """Record devices newly held per (tenant, kind) (what `count` does job by job; only where no
        caps apply, since it counts no cap's jobs)."""
        assert not self.limits, "caps count jobs one by one: use count()"
        for (tenant, kind), amount in devices.items():
            per_kind = self.usage.setdefault(tenant, {})
            per_kind[kind] = per_kind.get(kind, 0.0) + amount

    def tenant_totals(self) -> dict[str, float]:
        """Devices of every kind each tenant holds now."""
        return {t: sum(k.values()) for t, k in self.usage.items()}

    def limit_keys(self, job: JobRequest) -> list[str]:
        """The caps that apply to `job`, the narrowest (its user's) first."""
        keys = ([f"user:{job.user}"] if job.user else []) + [f"tenant:{job.tenant}"]
        return [k for k in keys if k in self.limits]

    def over_limit(self, job: JobRequest, kind: str, need: float) -> str | None:
        """The reason `job` may not take `need` devices of `kind` now (a cap it would pass), or None."""
        for key in self.limit_keys(job):
            limit, used = self.limits[key], self.limited.get(key, {})
            if "jobs" in limit and used.get("jobs", 0.0) + 1 > limit["jobs"]:
                return f"quota {key} allows {limit['jobs']:g} concurrent jobs, {used.get('jobs', 0.0):g} running"
            if kind in limit and used.get(kind, 0.0) + need > limit[kind]:
                return f"quota {key} allows {limit[kind]:g} {kind}, {used.get(kind, 0.0):g} in use"
        return None

    def limit_reason(self, job: JobRequest) -> str | None:
        """Why a waiting job is held by a cap, when one holds it in every kind it may use."""
        if not self.limits:
            return None
        reasons = [self.over_limit(job, kind, job.devices_needed) for kind in job.allowed_kinds]
        return reasons[0] if reasons and all(reasons) else None

    def quota_state(self, job: JobRequest, kind: str) -> str:
        """'within', 'borrow' or 'blocked' for `job` using devices of `kind`."""
        if not self.quotas:
            return "within"
        limit = self.quotas.get(job.tenant, {}).get(kind, 0.0)
        used = self.usage.get(job.tenant, {}).get(kind, 0.0)
        if used + job.devices_needed <= limit:
            return "within"
        return "borrow" if job.preemptible else "blocked"

    def quota_refusal(self, job: JobRequest, kinds) -> str:
        """Why a job that is not preemptible may not borrow beyond its tenant's quota in `kinds`."""
        used = {k: self.usage.get(job.tenant, {}).get(k, 0.0) for k in kinds}
        return (f"tenant {job.tenant!r} is at its quota ({', '.join(f'{v:g} {k}' for k, v in used.items())}"
                " in use) and the job is not preemptible, so it cannot borrow idle devices")
