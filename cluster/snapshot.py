"""Turning what Ray knows about its nodes into the scheduler's `ClusterState`.

This is the only view of the hardware the scheduler gets. Free capacity comes from Ray's
per-node available resources, so a task holding a GPU shows that GPU as in use.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from cluster.devices import DiscoveredDevice
from cluster.labels import (
    LABEL_ACCELERATOR_MEMORY_GB,
    LABEL_ACCELERATOR_MODEL,
    LABEL_CLUSTER,
    LABEL_CPU_MODEL,
    LABEL_EMULATED,
    LABEL_SITE,
    LABEL_TIER,
    RAY_RESOURCE_FOR_KIND,
)
from schedulers.types import ClusterState, Device, Node


def node_from_ray(
    node_id: str,
    total: Mapping[str, float],
    available: Mapping[str, float],
    labels: Mapping[str, str],
    alive: bool = True,
    local_devices: list[DiscoveredDevice] | None = None,
    node_memory_bytes: int = 0,
) -> Node:
    """One Ray node as a scheduler `Node`. `local_devices`, when given, is this machine's own
    discovery, which adds measured utilisation and health to the matching device groups."""
    measured = {}
    for d in local_devices or []:
        measured.setdefault((d.kind, d.model), []).append(d)
    model = labels.get(LABEL_ACCELERATOR_MODEL, "")
    memory_gb = float(labels.get(LABEL_ACCELERATOR_MEMORY_GB, 0) or 0)
    devices = []
    cpu_total = total.get("CPU", 0)
    if cpu_total:
        cpu_model = labels.get(LABEL_CPU_MODEL) or "cpu"
        devices.append(_device("cpu", cpu_model, cpu_total, available.get("CPU", 0), node_memory_bytes, measured))
    for kind, resource in RAY_RESOURCE_FOR_KIND.items():
        count = total.get(resource, 0)
        if count:
            devices.append(
                _device(kind, model or kind, count, available.get(resource, 0), int(memory_gb * 2**30), measured)
            )
    return Node(
        id=node_id,
        cluster=labels.get(LABEL_CLUSTER, "local"),
        tier=labels.get(LABEL_TIER, "center"),
        site=labels.get(LABEL_SITE, "local"),
        devices=tuple(devices),
        labels=dict(labels),
        healthy=alive and all(d.healthy for d in devices),
        emulated=labels.get(LABEL_EMULATED) == "true",
    )


def _device(kind, model, count, available, memory_bytes, measured) -> Device:
    members = measured.get((kind, model), [])
    utils = [m.utilisation for m in members if m.utilisation is not None]
    if members and kind != "cpu" and not memory_bytes:
        memory_bytes = members[0].memory_total_bytes
    return Device(
        kind=kind,
        model=model,
        count=int(count) if float(count).is_integer() else count,
        memory_bytes=memory_bytes,
        in_use=min(count, max(0.0, count - available)),
        utilisation=sum(utils) / len(utils) if utils else None,
        healthy=all(m.healthy for m in members),
    )


def snapshot(include_local_telemetry: bool = True) -> ClusterState:
    """The connected Ray cluster's nodes, devices and free capacity, as `ClusterState`.

    Requires this process to be connected to Ray (the server, or an emulated cluster) first. Dead nodes are left out. When
    `include_local_telemetry`, the node this process runs on is enriched with NVML/psutil
    readings (utilisation, temperature-based health).
    """
    import ray
    from ray._private import state

    from cluster.devices import discover_local

    if not ray.is_initialized():
        raise RuntimeError("snapshot: not connected to Ray; connect to a cluster first")
    available = state.available_resources_per_node()
    this_node = ray.get_runtime_context().get_node_id()
    local = discover_local() if include_local_telemetry else None
    nodes = []
    for info in ray.nodes():
        if not info.get("Alive"):
            continue
        node_id = info["NodeID"]
        labels = info.get("Labels") or {}
        nodes.append(
            node_from_ray(
                node_id,
                info.get("Resources", {}),
                available.get(node_id, {}),
                labels,
                local_devices=local if node_id == this_node and labels.get(LABEL_EMULATED) != "true" else None,
                node_memory_bytes=int(info.get("Resources", {}).get("memory", 0)),
            )
        )
    nodes.sort(key=lambda n: (n.cluster, n.tier, n.site, n.labels.get("node-name", ""), n.id))
    return ClusterState(nodes=tuple(nodes), taken_at=time.time())
