"""The interface every device kind's discovery implements, and the record it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass

from schedulers.types import Device


@dataclass(frozen=True)
class DiscoveredDevice:
    """One physical device (for the CPU: the whole socket set) as read from the machine.

    `count` is 1 for an accelerator and the logical core count for the CPU. Telemetry fields are
    None where the device kind does not report them.
    """

    kind: str
    model: str
    index: int
    count: int
    memory_total_bytes: int
    memory_used_bytes: int | None = None
    utilisation: float | None = None  # busy fraction in [0, 1]
    temperature_c: float | None = None
    ecc_uncorrected: int | None = None
    healthy: bool = True
    detail: str = ""  # the full product name as the driver reports it

    def to_dict(self) -> dict:
        """A JSON-ready dict of every field."""
        return asdict(self)


class DeviceDiscovery(ABC):
    """Finds the devices of one kind on this machine."""

    kind: str

    @abstractmethod
    def discover(self) -> list[DiscoveredDevice]:
        """The devices of this kind present; an empty list when there are none or no driver."""


def group_devices(found: list[DiscoveredDevice]) -> tuple[Device, ...]:
    """Fold individual devices into the scheduler's per-(kind, model) `Device` groups.

    A group is healthy only if all its members are; utilisation is their mean where measured.
    """
    groups: dict[tuple[str, str], list[DiscoveredDevice]] = {}
    for d in found:
        groups.setdefault((d.kind, d.model), []).append(d)
    out = []
    for (kind, model), members in groups.items():
        measured = [m.utilisation for m in members if m.utilisation is not None]
        count = sum(m.count for m in members)
        out.append(
            Device(
                kind=kind,
                model=model,
                count=count,
                memory_bytes=members[0].memory_total_bytes,
                utilisation=sum(measured) / len(measured) if measured else None,
                healthy=all(m.healthy for m in members),
            )
        )
    return tuple(out)
