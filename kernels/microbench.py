"""Device micro-benchmarks: matrix multiply (fp32, and bf16/fp16 where the device has them),
memory bandwidth, and host-to-device copy bandwidth. Each returns a `Measurement`; `peak_for`
gives the device's published peak where it is known, so results can be read as % of peak."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from kernels.device import resolve_device, synchronize

# Published dense peaks: (fp32 TFLOP/s, bf16/fp16 tensor TFLOP/s, memory GB/s).
KNOWN_PEAKS = {
    "H200": (67.0, 989.0, 4800.0), "H100": (67.0, 989.0, 3350.0), "A100": (19.5, 312.0, 2039.0),
    "A10": (31.2, 125.0, 600.0), "L40S": (91.6, 362.0, 864.0), "L4": (30.3, 121.0, 300.0),
    "V100": (15.7, 125.0, 900.0), "T4": (8.1, 65.0, 320.0), "P100": (9.3, 18.7, 732.0), "K80": (4.1, 0.0, 240.0),
}
MATMUL_NAMES = {torch.float32: "matmul_fp32", torch.bfloat16: "matmul_bf16", torch.float16: "matmul_fp16"}


@dataclass(frozen=True)
class Measurement:
    """One benchmark on one device: `value` in `unit` (higher is better)."""

    name: str
    device: str
    value: float
    unit: str
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def peak_for(model: str, measurement: str) -> float | None:
    """The published peak for a device model and a measurement name, in the measurement's unit."""
    peaks = KNOWN_PEAKS.get(model)
    if peaks is None:
        return None
    if measurement == "matmul_fp32":
        return peaks[0] * 1e3  # GFLOP/s
    if measurement in ("matmul_bf16", "matmul_fp16"):
        return peaks[1] * 1e3 or None
    if measurement == "memory_bandwidth":
        return peaks[2]
    return None


def seconds_per_call(fn, device: torch.device, repeats: int) -> float:
    """Mean seconds of `fn()` over `repeats` calls after one warm-up call: timed by CUDA events on
    a GPU (device time, as NVIDIA measures), by the wall clock around a synchronised loop on the
    CPU."""
    fn()
    synchronize(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000 / repeats
    begin = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - begin) / repeats


def matmul(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, size: int = 1024,
           repeats: int = 5) -> Measurement:
    """GFLOP/s of a square matrix multiply of `size` in `dtype`."""
    if size < 1 or repeats < 1:
        raise ValueError("size, repeats: must be >= 1")
    dev = resolve_device(device)
    a = torch.randn(size, size, device=dev, dtype=dtype)
    b = torch.randn(size, size, device=dev, dtype=dtype)
    seconds = seconds_per_call(lambda: torch.mm(a, b), dev, repeats)
    return Measurement(MATMUL_NAMES[dtype], str(dev), 2 * size**3 / seconds / 1e9, "GFLOP/s", f"{size}x{size}")


def supported_half_dtypes(device: str | torch.device = "cpu") -> list[torch.dtype]:
    """The reduced-precision dtypes worth benchmarking on `device`."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        out = [torch.float16]
        if torch.cuda.is_bf16_supported():
            out.append(torch.bfloat16)
        return out
    return [torch.bfloat16]  # the CPU computes bf16 matmuls (fast only with AMX/AVX512-BF16)


def memory_bandwidth(device: str | torch.device = "cpu", megabytes: int = 256, repeats: int = 5) -> Measurement:
    """GB/s of a device-to-device copy (bytes read plus bytes written)."""
    if megabytes < 1:
        raise ValueError("megabytes: must be >= 1")
    dev = resolve_device(device)
    src = torch.empty(megabytes * 2**20 // 4, dtype=torch.float32, device=dev).fill_(1.0)
    dst = torch.empty_like(src)
    seconds = seconds_per_call(lambda: dst.copy_(src), dev, repeats)
    return Measurement("memory_bandwidth", str(dev), 2 * src.numel() * 4 / seconds / 1e9, "GB/s", f"{megabytes} MiB")


def host_to_device(device: str | torch.device = "cuda", megabytes: int = 256, repeats: int = 5) -> Measurement:
    """GB/s of a pinned host-to-device copy; ValueError naming `device` for the CPU (no copy exists)."""
    dev = resolve_device(device)
    if dev.type == "cpu":
        raise ValueError("device: host-to-device copy needs an accelerator; the CPU is the host")
    src = torch.empty(megabytes * 2**20 // 4, dtype=torch.float32).pin_memory()
    dst = torch.empty(src.numel(), dtype=torch.float32, device=dev)
    seconds = seconds_per_call(lambda: dst.copy_(src, non_blocking=True), dev, repeats)
    return Measurement("host_to_device", str(dev), src.numel() * 4 / seconds / 1e9, "GB/s", f"{megabytes} MiB pinned")
