"""Pure placement logic: given capacity and a queue, decide where and when jobs run.

No Ray, no I/O, no clock: time is always an argument, so the same code decides in production
and in the trace simulator. (The one file written is numba's cache of the compiled placement loop,
`engine/compiled.py`, as Python writes its own bytecode cache: on a machine without one, the first
round of a process compiles it, about 6 s here; later processes load it in about 0.1 s.)
"""

from schedulers.types import (
    DEVICE_KINDS,
    LATENCY_CLASSES,
    TIERS,
    ClusterState,
    Device,
    JobRequest,
    Node,
    Placement,
    WorkerAssignment,
)

__all__ = [
    "DEVICE_KINDS",
    "LATENCY_CLASSES",
    "TIERS",
    "ClusterState",
    "Device",
    "JobRequest",
    "Node",
    "Placement",
    "WorkerAssignment",
]
