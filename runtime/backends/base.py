"""The interface between the controller (which decides) and a cluster (which carries out).

A backend launches one *attempt* of a job on exactly the nodes of its placement and returns a
handle: a small JSON-able dict that a later controller (after a restart or a lease takeover)
can poll again, so a running attempt is adopted instead of relaunched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from schedulers.types import Placement

Phase = Literal["starting", "running", "succeeded", "failed", "stopped", "lost"]
ENDED_PHASES = frozenset({"succeeded", "failed", "stopped", "lost"})


def attempt_name(job_id: str, attempt: int) -> str:
    """An attempt's name in its cluster (the local runner actor's name, the remote Ray job's
    submission id): unique per attempt, so a repeated launch finds the first one."""
    return f"{job_id}.attempt-{attempt}"


@dataclass(frozen=True)
class LaunchSpec:
    """What an attempt runs: a training job's loop config or its user function (cloudpickled
    bytes, only loaded inside the cluster's workers), or a feature job's spec; where its files go,
    and the checkpoint to resume from with the sha256 the store recorded for it."""

    job_id: str
    attempt: int
    run_dir: str
    loop_config: dict  # the training loop's config, or a feature job's spec
    kind: str = "training"  # or "features"
    train_fn: bytes | None = None
    resume_path: str | None = None
    resume_sha256: str | None = None
    cluster: str = "local"  # the cluster it runs on (the placement's)


@dataclass(frozen=True)
class AttemptStatus:
    """What a backend knows of an attempt now. `workers` lists where each worker really ran
    ({rank, node_id}); `error` is one line naming the cause when the phase is failed or lost."""

    phase: Phase
    error: str | None = None
    traceback: str | None = None
    checkpoint: str | None = None
    metrics: dict = field(default_factory=dict)
    workers: tuple[dict, ...] = ()

    @property
    def ended(self) -> bool:
        return self.phase in ENDED_PHASES


class ClusterBackend(Protocol):
    """Carries out placements on one cluster."""

    name: str

    def handle_for(self, spec: LaunchSpec) -> dict:
        """The handle the attempt `spec` will have: known before launching, so that a controller
        that dies mid-launch leaves its successor a way to find (and adopt or stop) the attempt."""
        ...

    def launch(self, placement: Placement, spec: LaunchSpec) -> None:
        """Start the attempt on exactly the placement's nodes (idempotent for the same attempt).
        Does not wait for it."""
        ...

    def poll(self, handle: dict) -> AttemptStatus:
        """The attempt's phase now; `lost` when the cluster no longer knows it."""
        ...

    def stop(self, handle: dict, force: bool = False) -> None:
        """Ask the attempt to stop at its next safe point (`force`: now). Its devices are released
        once `poll` reports an ended phase."""
        ...

    def release(self, handle: dict) -> None:
        """Forget an ended attempt: free whatever the backend kept for it (idempotent)."""
        ...
