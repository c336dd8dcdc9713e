"""Zeroing device memory a finished tenant's worker used, before another tenant's work runs
there (REQUIREMENTS 6.2 a: scheduling must not leak data between tasks).

On CUDA, PyTorch's caching allocator keeps freed blocks and hands them to the next tensor
unzeroed, so a later tenant in the same process could read them: `scrub_device` releases the
cache, then allocates the free device memory chunk by chunk, zeroes each, checks it, and frees it.
On the CPU the operating system hands a new process only zeroed pages; within one process,
`zero_tensors` overwrites a worker's tensors before they are released. The CUDA path has not yet
run on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kernels.device import resolve_device, synchronize


@dataclass(frozen=True)
class ScrubReport:
    """How much memory was zeroed on which device, and whether a read-back found only zeros."""

    device: str
    bytes_zeroed: int
    verified: bool


def zero_tensors(tensors) -> ScrubReport:
    """Overwrite every tensor in `tensors` with zeros in place and check it (any device)."""
    total = 0
    verified = True
    device = "cpu"
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"tensors: expected torch tensors, got {type(t).__name__}")
        with torch.no_grad():
            t.zero_()
        verified &= bool((t == 0).all())
        total += t.numel() * t.element_size()
        device = str(t.device)
    return ScrubReport(device, total, verified)


def scrub_device(device: str | torch.device, max_bytes: int | None = None, chunk_bytes: int = 256 * 2**20) -> ScrubReport:
    """Zero the free memory of a CUDA device (up to `max_bytes`). ValueError naming `device` for
    the CPU, where the operating system zeroes pages between processes (use `zero_tensors`)."""
    dev = resolve_device(device)
    if dev.type != "cuda":
        raise ValueError("device: scrub_device zeroes accelerator memory; on the CPU use zero_tensors")
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes: must be >= 1")
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(dev)
    budget = free if max_bytes is None else min(free, max_bytes)
    chunks = []
    zeroed = 0
    verified = True
    try:
        while zeroed + chunk_bytes <= budget:
            try:
                chunk = torch.zeros(chunk_bytes, dtype=torch.uint8, device=dev)
            except torch.OutOfMemoryError:
                break
            chunks.append(chunk)
            zeroed += chunk_bytes
        synchronize(dev)
        verified = all(int(c.max()) == 0 for c in chunks)
    finally:
        chunks.clear()
        torch.cuda.empty_cache()
    return ScrubReport(str(dev), zeroed, verified)
