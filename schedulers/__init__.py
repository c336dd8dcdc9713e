"""Pure placement logic: given capacity and a queue, decide where and when jobs run.

No Ray, no I/O, no clock: time is always an argument, so the same code decides in production
and in the trace simulator.
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
