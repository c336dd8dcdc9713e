"""What a round is told besides the queue and the capacity: its settings and the running jobs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from schedulers.throughput import ThroughputModel
from schedulers.types import JobRequest, Placement


@dataclass(frozen=True)
class RunningJob:
    """A job that holds devices now: its request, placement, start and expected end (caller's clock)."""

    request: JobRequest
    placement: Placement
    started_at: float
    expected_end: float


@dataclass(frozen=True)
class SchedulerConfig:
    """Settings of the queue semantics. `quotas` maps tenant -> device kind -> guaranteed
    devices; when empty, no quotas apply. `min_run_before_preempt_s` protects a job that just
    started from being preempted (limits thrashing). `explain_waiting=False` skips writing
    reasons and start estimates for waiting jobs (the simulator does not read them). `limits` are
    hard caps, keyed `tenant:<name>` or `user:<name>`, on devices in use per kind and on
    concurrent jobs (`jobs`): a job that would pass one waits, with the cap named as its reason."""

    throughput: ThroughputModel = field(default_factory=ThroughputModel)
    quotas: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    limits: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    ageing_interval_s: float = 3600.0
    min_run_before_preempt_s: float = 0.0
    backfill: bool = True
    explain_waiting: bool = True
