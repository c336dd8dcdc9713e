"""Quotas: caps on a tenant's or a user's devices per kind and concurrent jobs, and their use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.server.domain.errors import Invalid
from runtime.specs import JobState

if TYPE_CHECKING:
    from runtime.server.auth import Identity
    from runtime.server.service import Server

SCOPES = ("tenant", "user")
ACTIVE = (JobState.STARTING, JobState.RUNNING, JobState.STOPPING)


def quota_report(store) -> list[dict]:
    """Each cap with its use now: devices per kind and jobs of the tenant's or user's active jobs."""
    used: dict[str, dict[str, float]] = {}
    for record in store.jobs.list(states=ACTIVE):
        placed = record.placed
        if placed is None:
            continue
        for key in (f"tenant:{record.tenant}", f"user:{record.user}"):
            entry = used.setdefault(key, {})
            entry[placed.kind] = entry.get(placed.kind, 0) + placed.devices
            entry["jobs"] = entry.get("jobs", 0) + 1
    return [{"key": key, "limits": limits, "used": {k: used.get(key, {}).get(k, 0) for k in limits}}
            for key, limits in sorted(store.quotas.all().items())]


def set_quota(server: Server, identity: Identity, scope: str, name: str, limits: dict) -> str:
    """Cap `scope`:`name` at `limits` (empty: remove the cap), audited; the quota's key."""
    if scope not in SCOPES:
        raise Invalid(f"scope: {scope!r} is not tenant or user")
    key = f"{scope}:{name}"
    server.store.quotas.set(key, limits or None, identity.name)
    server.events.quota_set(identity.name, key, limits)
    return key
