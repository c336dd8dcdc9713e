"""CPU discovery through psutil and /proc/cpuinfo."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import psutil

from cluster.devices.base import DeviceDiscovery, DiscoveredDevice


def cpu_model_name(cpuinfo_text: str | None = None) -> str:
    """A short CPU model name ("Xeon-8380", "EPYC-7763"), from /proc/cpuinfo where readable."""
    if cpuinfo_text is None:
        path = Path("/proc/cpuinfo")
        cpuinfo_text = path.read_text(errors="replace") if path.exists() else ""
    match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo_text, re.MULTILINE)
    full = match.group(1).strip() if match else (platform.processor() or platform.machine() or "cpu")
    return short_cpu_model(full)


def short_cpu_model(full: str) -> str:
    """Reduce a marketing name to family-number: 'Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz'
    -> 'Xeon-8380', 'AMD EPYC 7763 64-Core Processor' -> 'EPYC-7763'; otherwise the name with
    spaces as dashes."""
    cleaned = re.sub(r"\((R|TM|tm|r)\)", "", full)
    for family in ("Xeon", "EPYC", "Core", "Kunpeng", "Ryzen", "Neoverse"):
        m = re.search(rf"{family}\b.*?\b([A-Z]?\d{{3,5}}[A-Z0-9]*)", cleaned)
        if m:
            return f"{family}-{m.group(1)}"
    cleaned = re.sub(r"\s+CPU\s+@.*$", "", cleaned).strip()
    return re.sub(r"\s+", "-", cleaned)[:40] or "cpu"


class CpuDiscovery(DeviceDiscovery):
    """The machine's CPU as one device group: logical cores, system memory, current utilisation."""

    kind = "cpu"

    def discover(self) -> list[DiscoveredDevice]:
        """Always one record: this machine has a CPU."""
        memory = psutil.virtual_memory()
        return [
            DiscoveredDevice(
                kind="cpu",
                model=cpu_model_name(),
                index=0,
                count=psutil.cpu_count(logical=True) or 1,
                memory_total_bytes=int(memory.total),
                memory_used_bytes=int(memory.total - memory.available),
                utilisation=psutil.cpu_percent(interval=0.1) / 100.0,
                detail=platform.processor() or platform.machine(),
            )
        ]
