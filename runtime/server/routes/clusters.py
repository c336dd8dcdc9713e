"""Clusters: capacity, and the federation's registry of Ray clusters."""

from __future__ import annotations

import time

from fastapi import APIRouter

from runtime.server.auth import Identity
from runtime.server.deps import ServerDep, require
from runtime.server.domain import clusters
from runtime.server.domain.quotas import quota_report
from runtime.server.schemas import NewCluster

router = APIRouter()


@router.get("/capacity")
def capacity(server: ServerDep, identity: Identity = require("capacity:read")) -> dict:
    """Capacity per cluster, tier and device kind from the newest snapshot (lost clusters'
    devices are not counted), every cluster's health, and quota use."""
    from cluster.capacity import capacity_report

    state = server.current_snapshot()
    return {**capacity_report(state), "taken_at": state.taken_at, "age_s": round(time.time() - state.taken_at, 3),
            "clusters": clusters.clusters_status(server), "quotas": quota_report(server.store)}


@router.post("/clusters", status_code=201)
def add_cluster(body: NewCluster, server: ServerDep, identity: Identity = require("clusters:manage")) -> dict:
    """Register a Ray cluster (422 naming the field when the entry is invalid or the name taken);
    it is probed from now on and scheduled onto once healthy."""
    entry = clusters.register(server, identity, body.model_dump())
    return {"name": entry.name, "address": entry.address, "site": entry.site, "tier": entry.tier}


@router.get("/clusters")
def list_clusters(server: ServerDep, identity: Identity = require("capacity:read")) -> list[dict]:
    """Every registered cluster with its health (healthy, lost, unknown), missed probes, last
    answer and node count; the server's own cluster first."""
    return clusters.clusters_status(server)


@router.delete("/clusters/{name}")
def remove_cluster(name: str, server: ServerDep, identity: Identity = require("clusters:manage")) -> dict:
    """Forget a cluster (409 while attempts run on it)."""
    clusters.remove(server, identity, name)
    return {"name": name, "removed": True}
