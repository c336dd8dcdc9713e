"""Starting or joining Ray: the embedded default on loopback, or a configured cluster."""

from __future__ import annotations

import os
from dataclasses import dataclass

from cluster.config import SuanliConfig, load_config
from cluster.devices import DiscoveredDevice, discover_local
from cluster.labels import RAY_RESOURCE_FOR_KIND, node_labels_and_resources
from cluster.serve_ingress import serve_ingress_environment

LOOPBACK = "127.0.0.1"


def prepare_loopback() -> None:
    """Make Ray bind to 127.0.0.1. Must run before `ray` is imported anywhere in the process:
    Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER at import time. An operator who has set it
    (for a real multi-machine cluster) keeps their value."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@dataclass(frozen=True)
class Connection:
    """How this process reached Ray: `embedded` True when suanli started it here."""

    address: str
    embedded: bool
    config: SuanliConfig


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


def connect(config: SuanliConfig | None = None) -> Connection:
    """Connect this process to Ray and return how.

    With no address configured, starts the embedded default: a single-node Ray bound to loopback
    with this machine's real devices (the CPU always; GPUs through NVML, NPUs through npu-smi).
    With `ray_address` set (config file or SUANLI_RAY_ADDRESS), joins that cluster instead. When
    this process is already connected, returns that connection unchanged.
    """
    prepare_loopback()
    import ray

    config = config or load_config()
    if ray.is_initialized():
        ctx = ray.get_runtime_context()
        return Connection(address=ctx.gcs_address, embedded=False, config=config)
    if config.ray_address:
        ray.init(address=config.ray_address, log_to_driver=False)
        return Connection(address=ray.get_runtime_context().gcs_address, embedded=False, config=config)
    args = local_node_args(config, discover_local())
    for name, value in serve_ingress_environment().items():  # the embedded Ray's processes inherit this one's
        os.environ.setdefault(name, value)
    ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address=LOOPBACK, **args)
    return Connection(address=ray.get_runtime_context().gcs_address, embedded=True, config=config)


def disconnect() -> None:
    """Disconnect from Ray (stopping the embedded default if this process started it)."""
    import ray

    ray.shutdown()
