"""What the ops page (`/ui`) shows, as one JSON document the page polls: clusters and their
health, capacity, the queue with each job's reason and estimated start, the active jobs, quotas."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from runtime.server.domain.clusters import clusters_status
from runtime.server.domain.quotas import ACTIVE, quota_report

if TYPE_CHECKING:
    from runtime.server.auth import Identity
    from runtime.server.service import Server

REFRESH_S = 2.0


def running_view(record) -> dict:
    """An active job as the page lists it: where it runs, on what, how far it is."""
    placed = record.placed
    progress = record.progress or {}
    return {"id": record.id, "name": record.name, "tenant": record.tenant, "user": record.user,
            "state": record.state.value, "cluster": placed and placed.cluster, "kind": placed and placed.kind,
            "model": placed and placed.model, "devices": placed.devices if placed else 0, "attempts": record.attempts,
            "epochs_done": progress.get("epochs_done"), "epochs": (record.spec or {}).get("epochs"),
            "updated": record.updated}


def ops_state(server: Server, identity: Identity) -> dict:
    """Everything the page shows, as `identity` may see it: every cluster with its health, capacity
    per cluster, tier and device kind, the queue (each job's reason and estimated start), the
    active jobs, and quota use. Jobs the caller may not read are counted, not listed."""
    from cluster.capacity import capacity_report

    snapshot = server.current_snapshot()
    report = capacity_report(snapshot)
    queue = server.store.waiting.queue()
    active = server.store.jobs.list(states=ACTIVE)
    shown_queue = [q for q in queue if identity.can_touch("read", q["user"], q["tenant"])]
    shown_active = [running_view(r) for r in active if identity.can_touch("read", r.user, r.tenant)]
    lease = server.store.leases.current()
    return {
        "now": time.time(),
        "refresh_s": REFRESH_S,
        "viewer": {"name": identity.name, "role": identity.role, "tenant": identity.tenant},
        "server": {"role": server.lease.role, "holder": lease.holder if lease else None,
                   "ray_address": server.ray_address},
        "clusters": clusters_status(server),
        "capacity": {"taken_at": snapshot.taken_at, "rows": report["rows"], "totals": report["totals"],
                     "emulated": report["emulated"]},
        "queue": shown_queue,
        "queue_hidden": len(queue) - len(shown_queue),
        "active": shown_active,
        "active_hidden": len(active) - len(shown_active),
        "quotas": quota_report(server.store),
    }
