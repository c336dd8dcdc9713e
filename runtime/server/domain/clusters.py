"""The federation's registry as the API sees it: registering and forgetting Ray clusters (with
the rules each entry must meet) and every cluster's health, the server's own first."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import cluster
from cluster.federation import ClusterEntry
from runtime.server.domain.errors import Conflict, Invalid, NotFound, one_line

if TYPE_CHECKING:
    from runtime.server.auth import Identity
    from runtime.server.service import Server

log = logging.getLogger(__name__)


def register(server: Server, identity: Identity, fields: dict) -> ClusterEntry:
    """Register a cluster from `fields` (NewCluster's) once checked with the cluster itself (its
    dashboard answers with the token; a job on it finds the runs directory at `storage`), its
    token kept in the server's secrets store; audited. Invalid naming the field otherwise."""
    from runtime.backends.registration import register_cluster

    registered = {e.name for e in server.clusters.list()}
    own = {n.cluster for n in server.current_snapshot().nodes if n.cluster not in registered}
    try:
        entry = register_cluster(server.clusters, fields, identity.name, server.runs_dir, reserved=own)
    except ValueError as exc:
        refused = Invalid(str(exc))
        log.warning("registration refused: %s", refused.message, extra={"cluster": one_line(fields.get("name"), 40)})
        raise refused from None
    log.info("cluster registered: %s at site %s (%s)", entry.address, entry.site, entry.tier,
             extra={"cluster": entry.name})
    if server.backends:
        server.backends.forget(entry.name)
    server.events.cluster_added(identity.name, entry)
    return entry


def remove(server: Server, identity: Identity, name: str) -> None:
    """Forget a cluster, audited; Conflict while attempts are open on it, NotFound if unknown."""
    busy = [a.job_id for a in server.store.attempts.open() if (a.handle or {}).get("cluster") == name]
    if busy:
        raise Conflict(f"cluster {name} runs attempts of {', '.join(busy)}; cancel them or wait")
    if not server.clusters.remove(name):
        raise NotFound(f"cluster: no registered cluster {name!r}")
    if server.backends:
        server.backends.forget(name)
    log.info("cluster removed from the registry", extra={"cluster": name})
    server.events.cluster_removed(identity.name, name)


def clusters_status(server: Server) -> list[dict]:
    """The server's own cluster and every registered one, with health (healthy, lost, unknown),
    missed probes, last answer and node count; the server's own first."""
    entries = server.clusters.list()
    registered = {e.name for e in entries}
    nodes = [n for n in server.current_snapshot().nodes if n.cluster not in registered]
    names = sorted({n.cluster for n in nodes}) or [cluster.load_config().cluster_name]
    own = {"name": ", ".join(names), "address": server.ray_address, "site": ", ".join(sorted({n.site for n in nodes})),
           "tier": ", ".join(sorted({n.tier for n in nodes})), "health": "healthy", "missed_probes": 0,
           "lost_since": None, "nodes": len(nodes), "own": True}
    status = {s["name"]: s for s in server.federation.status()}
    for entry in entries:  # registered since the last probe round: unknown until probed
        status.setdefault(entry.name, {"name": entry.name, "address": entry.address, "site": entry.site,
                                       "tier": entry.tier, "health": "unknown", "missed_probes": 0,
                                       "lost_since": None, "nodes": 0})
    return [own] + [status[name] for name in sorted(status)]
