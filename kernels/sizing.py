"""Benchmark sizes chosen per device, so a figure measures the device and not launch overhead.

NVIDIA's own practice: grow the problem until the rate stops rising, then report the rate with
the size it was measured at. `grow_until_plateau` does that for any measurement; the functions
below give each benchmark's candidate sizes from the device's kind and memory. Pure logic (no
torch): tested on the CPU with recorded rates, used on every device by `suanli bench` and
`kernels.gpucheck`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# A size whose rate is less than this much above the previous size's ends the growth.
PLATEAU_RISE = 0.03


@dataclass(frozen=True)
class Sweep:
    """The sizes tried in order with their rates, and the best of them."""

    sizes: tuple[int, ...]
    rates: tuple[float, ...]

    @property
    def best_size(self) -> int:
        return self.sizes[self.rates.index(max(self.rates))]

    @property
    def best_rate(self) -> float:
        return max(self.rates)

    def to_dict(self) -> dict:
        return {"sizes": list(self.sizes), "rates": list(self.rates), "best_size": self.best_size,
                "best_rate": self.best_rate}


def grow_until_plateau(measure: Callable[[int], float], sizes: Sequence[int], rise: float = PLATEAU_RISE) -> Sweep:
    """Measure `sizes` in increasing order and stop at the first whose rate is not more than `rise`
    (a fraction) above the best so far: past that point the device is saturated. ValueError naming
    `sizes` when it is empty or not increasing."""
    sizes = [int(s) for s in sizes]
    if not sizes or any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)) or sizes[0] < 1:
        raise ValueError(f"sizes: give positive sizes in increasing order, got {sizes}")
    tried: list[int] = []
    rates: list[float] = []
    for size in sizes:
        rate = float(measure(size))
        saturated = bool(rates) and rate <= max(rates) * (1 + rise)
        tried.append(size)
        rates.append(rate)
        if saturated:
            break
    return Sweep(tuple(tried), tuple(rates))


def _doublings(start: int, limit: int) -> list[int]:
    out = [start]
    while out[-1] * 2 <= limit:
        out.append(out[-1] * 2)
    return out


def matmul_sizes(kind: str, memory_bytes: int, element_bytes: int = 2) -> list[int]:
    """Square matmul sizes to try: on an accelerator from 1024 doubling up to 16384 while three
    matrices take at most a quarter of the memory; on the CPU 256 to 2048 (larger only takes
    longer at the same rate)."""
    if kind == "cpu":
        return _doublings(256, 2048)
    largest = 1024
    while largest * 2 <= 16384 and 3 * (largest * 2) ** 2 * element_bytes <= memory_bytes // 4:
        largest *= 2
    return _doublings(1024, largest)


def bandwidth_megabytes(kind: str, memory_bytes: int) -> list[int]:
    """Copy sizes in MiB to try: on an accelerator 64 MiB doubling to 4 GiB while source and
    destination take at most a quarter of the memory; on the CPU 32 to 512 MiB."""
    if kind == "cpu":
        return _doublings(32, 512)
    cap = min(4096, memory_bytes // 8 // 2**20)
    return _doublings(64, max(64, cap))


def batch_sizes(kind: str) -> list[int]:
    """Training/inference batch sizes to try: the CPU is not launch-bound from a few thousand rows
    (256 to 4096); a GPU needs tens of thousands of rows before a step is more than its kernel
    launches (4096 to 262,144)."""
    return _doublings(256, 4096) if kind == "cpu" else _doublings(4096, 262_144)


def feature_events(kind: str, quick: bool = False) -> int:
    """Events per feature-kernel run: 10M on an accelerator (a GPU's fixed cost is invisible
    only at millions of events), 1M on the CPU; 50,000 in a quick run."""
    if quick:
        return 50_000
    return 1_000_000 if kind == "cpu" else 10_000_000
