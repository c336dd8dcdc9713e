"""Device discovery: one module per device kind, each behind the `DeviceDiscovery` interface."""

from cluster.devices.base import DeviceDiscovery, DiscoveredDevice, group_devices
from cluster.devices.cpu import CpuDiscovery
from cluster.devices.npu import AscendNpuDiscovery
from cluster.devices.nvidia_gpu import NvidiaGpuDiscovery

DISCOVERIES: tuple[type[DeviceDiscovery], ...] = (CpuDiscovery, NvidiaGpuDiscovery, AscendNpuDiscovery)


def discover_local() -> list[DiscoveredDevice]:
    """Every device on this machine: the CPU always, GPUs and NPUs where present (never raises
    because a kind is absent)."""
    found: list[DiscoveredDevice] = []
    for discovery in DISCOVERIES:
        found.extend(discovery().discover())
    return found


__all__ = [
    "DeviceDiscovery",
    "DiscoveredDevice",
    "CpuDiscovery",
    "NvidiaGpuDiscovery",
    "AscendNpuDiscovery",
    "discover_local",
    "group_devices",
]
