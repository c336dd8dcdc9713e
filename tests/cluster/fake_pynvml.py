"""A stand-in for the NVML C library behind `pynvml`, returning the values NVML reports for an
A100-SXM4-80GB and an H100 80GB HBM3 (names, and memory totals of 81920 MiB and 81559 MiB, are
those products' NVML values; usage, utilisation, temperature and ECC counts are a plausible
moment of a busy node). It replaces the library, not the code under test: `NvidiaGpuDiscovery`
calls it exactly as it calls the real `pynvml`."""

from types import SimpleNamespace

NVML_TEMPERATURE_GPU = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0


class NVMLError(Exception):
    pass


RECORDED = [
    {"name": "NVIDIA A100-SXM4-80GB", "total": 85899345920, "used": 4517920768, "gpu": 37, "temp": 41, "ecc": 0},
    {"name": "NVIDIA H100 80GB HBM3", "total": 85520809984, "used": 557842432, "gpu": 0, "temp": 33, "ecc": 0},
]
calls: list[str] = []
fail_init = False
devices = RECORDED


def nvmlInit():
    calls.append("init")
    if fail_init:
        raise NVMLError("NVML Shared Library Not Found")


def nvmlShutdown():
    calls.append("shutdown")


def nvmlDeviceGetCount():
    return len(devices)


def nvmlDeviceGetHandleByIndex(i):
    return devices[i]


def nvmlDeviceGetName(h):
    return h["name"]


def nvmlDeviceGetMemoryInfo(h):
    return SimpleNamespace(total=h["total"], used=h["used"], free=h["total"] - h["used"])


def nvmlDeviceGetUtilizationRates(h):
    return SimpleNamespace(gpu=h["gpu"], memory=0)


def nvmlDeviceGetTemperature(h, sensor):
    assert sensor == NVML_TEMPERATURE_GPU
    return h["temp"]


def nvmlDeviceGetTotalEccErrors(h, error_type, counter_type):
    if h["ecc"] is None:
        raise NVMLError("Not Supported")
    return h["ecc"]
