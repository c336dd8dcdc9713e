"""Huawei Ascend NPU discovery by parsing `npu-smi info`.

Has run against: recorded `npu-smi info` output of a 910B host (tests/cluster/data/). It has not run
on a real Ascend machine in this project.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from cluster.devices.base import DeviceDiscovery, DiscoveredDevice

# First row of a chip: "| 0     910B3               | OK            | 93.5        40  ..."
_CHIP_ROW = re.compile(r"^\|\s*(\d+)\s+(\S+)\s*\|\s*(\w+)\s*\|\s*([\d.]+)\s+(\d+)\s+")
# Second row: "| 0                         | 0000:C1:00.0  | 0           0    / 0          3161 / 65536 |"
_USAGE_ROW = re.compile(r"^\|\s*\d+\s*\|\s*[0-9A-Fa-f:.]+\s*\|\s*(\d+)\s+\d+\s*/\s*\d+\s+(\d+)\s*/\s*(\d+)\s*\|")


def parse_npu_smi_info(text: str) -> list[DiscoveredDevice]:
    """Parse the table printed by `npu-smi info` into one record per NPU chip.

    Model names are normalised to 'Ascend<name>' ("910B3" -> "Ascend910B3"); memory comes from the
    HBM column in MB; health is the Health column being "OK".
    """
    devices: list[DiscoveredDevice] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        chip = _CHIP_ROW.match(line)
        if not chip or i + 1 >= len(lines):
            continue
        usage = _USAGE_ROW.match(lines[i + 1])
        if not usage:
            continue
        index, name, health, _power, temperature = chip.groups()
        aicore, hbm_used, hbm_total = usage.groups()
        devices.append(
            DiscoveredDevice(
                kind="npu",
                model=name if name.startswith("Ascend") else f"Ascend{name}",
                index=int(index),
                count=1,
                memory_total_bytes=int(hbm_total) * 2**20,
                memory_used_bytes=int(hbm_used) * 2**20,
                utilisation=int(aicore) / 100.0,
                temperature_c=float(temperature),
                healthy=health.upper() == "OK",
                detail=name,
            )
        )
    return devices


class AscendNpuDiscovery(DeviceDiscovery):
    """Ascend NPUs through the `npu-smi` tool that ships with the Ascend driver."""

    kind = "npu"

    def __init__(self, npu_smi: str = "npu-smi"):
        self._npu_smi = npu_smi

    def discover(self) -> list[DiscoveredDevice]:
        """The machine's NPUs; empty when `npu-smi` is not installed or fails."""
        binary = shutil.which(self._npu_smi)
        if binary is None:
            return []
        try:
            out = subprocess.run([binary, "info"], capture_output=True, text=True, timeout=20, check=True)
        except (subprocess.SubprocessError, OSError):
            return []
        return parse_npu_smi_info(out.stdout)
