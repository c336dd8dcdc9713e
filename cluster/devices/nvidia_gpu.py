"""NVIDIA GPU discovery through NVML (the `nvidia-ml-py` package, imported as `pynvml`).

Has run against: recorded values of an A100 and an H100 (tests/cluster/fake_pynvml.py). It has not
yet run against a real driver in this project's CI; `suanli capacity` on a GPU node is that run.
"""

from __future__ import annotations

import re
from types import ModuleType

from cluster.devices.base import DeviceDiscovery, DiscoveredDevice

# A GPU at or above this temperature, or with any uncorrected ECC error, is reported unhealthy.
GPU_UNHEALTHY_TEMPERATURE_C = 90

_KNOWN_MODELS = ("GH200", "H200", "H100", "H800", "H20", "A100", "A800", "A30", "A10G", "A10", "L40S", "L40",
                 "L4", "V100", "T4", "P100", "K80", "RTX 4090", "RTX A6000")


def short_gpu_model(name: str) -> str:
    """'NVIDIA A100-SXM4-80GB' -> 'A100', 'NVIDIA H100 80GB HBM3' -> 'H100'; unknown names are
    kept with the vendor prefix dropped and spaces as dashes."""
    bare = re.sub(r"^(NVIDIA|Tesla|GeForce|Quadro)\s+", "", name.strip(), flags=re.IGNORECASE)
    bare = re.sub(r"^(Tesla|GeForce)\s+", "", bare, flags=re.IGNORECASE)
    for model in _KNOWN_MODELS:
        if re.match(rf"{re.escape(model)}\b", bare) or bare.startswith(model + "-"):
            return model.replace(" ", "-")
    return re.sub(r"\s+", "-", bare) or "gpu"


def _load_pynvml() -> ModuleType | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


class NvidiaGpuDiscovery(DeviceDiscovery):
    """One record per GPU with memory, utilisation, temperature and uncorrected ECC errors."""

    kind = "gpu"

    def __init__(self, nvml: ModuleType | None = None):
        self._nvml = nvml

    def discover(self) -> list[DiscoveredDevice]:
        """The machine's NVIDIA GPUs; empty when NVML or its driver is missing."""
        nvml = self._nvml or _load_pynvml()
        if nvml is None:
            return []
        try:
            nvml.nvmlInit()
        except nvml.NVMLError:
            return []  # no driver: a machine without NVIDIA GPUs
        try:
            return [self._read(nvml, i) for i in range(nvml.nvmlDeviceGetCount())]
        finally:
            nvml.nvmlShutdown()

    @staticmethod
    def _read(nvml: ModuleType, index: int) -> DiscoveredDevice:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        if isinstance(name, bytes):
            name = name.decode()
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        utilisation = _optional(nvml, lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0)
        temperature = _optional(nvml, lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        ecc = _optional(
            nvml,
            lambda: nvml.nvmlDeviceGetTotalEccErrors(
                handle, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC
            ),
        )
        healthy = (ecc or 0) == 0 and (temperature is None or temperature < GPU_UNHEALTHY_TEMPERATURE_C)
        return DiscoveredDevice(
            kind="gpu",
            model=short_gpu_model(name),
            index=index,
            count=1,
            memory_total_bytes=int(memory.total),
            memory_used_bytes=int(memory.used),
            utilisation=utilisation,
            temperature_c=temperature,
            ecc_uncorrected=ecc,
            healthy=healthy,
            detail=name,
        )


def _optional(nvml: ModuleType, read):
    """A telemetry value, or None where this GPU does not support the query (ECC off, vGPU...)."""
    try:
        return read()
    except nvml.NVMLError:
        return None
