"""What every Ray node suanli starts shares: loopback binding, and this machine's devices and place
(cluster, tier, site) as the node's resources and labels."""

from __future__ import annotations

import os

from cluster.config import SuanliConfig
from cluster.devices import DiscoveredDevice
from cluster.labels import RAY_RESOURCE_FOR_KIND, node_labels_and_resources

LOOPBACK = "127.0.0.1"


def prepare_loopback() -> None:
    """Make Ray bind to 127.0.0.1. Must run before `ray` is imported anywhere in the process:
    Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER at import time. An operator who has set it
    (for a real multi-machine cluster) keeps their value."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def local_node_args(config: SuanliConfig, found: list[DiscoveredDevice]) -> dict:
    """`ray.init` arguments that describe this machine's real devices and its place (tier, site,
    cluster) as labels and resources."""
    cpus = [d for d in found if d.kind == "cpu"]
    accelerators: dict[str, tuple[str, int, int]] = {}
    for d in found:
        if d.kind == "cpu":
            continue
        model, count, memory = accelerators.get(d.kind, (d.model, 0, d.memory_total_bytes))
        accelerators[d.kind] = (model, count + 1, memory)
    labels, resources = node_labels_and_resources(
        cluster=config.cluster_name, tier=config.tier, site=config.site, accelerators=accelerators,
        emulated=False, name=f"{config.cluster_name}-head", cpu_model=cpus[0].model if cpus else None,
    )
    args = {
        "num_cpus": sum(d.count for d in cpus) or 1,
        "num_gpus": accelerators.get("gpu", ("", 0, 0))[1],
        "resources": {k: v for k, v in resources.items() if k != RAY_RESOURCE_FOR_KIND["gpu"]},
        "labels": labels,
    }
    return args
