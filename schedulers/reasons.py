"""Words for people: how a job's demand and an estimated start time are written in reasons."""

from __future__ import annotations

from schedulers.types import JobRequest

_EPOCH_2001 = 978307200.0  # times above this are taken as Unix time and shown as a UTC clock


def describe_demand(job: JobRequest) -> str:
    """'gpu(A100)', 'gpu/npu' or 'cpu' for the device kinds (and model) a job accepts."""
    kinds = "/".join(job.allowed_kinds)
    return f"{kinds}({job.device_model})" if job.device_model else kinds


def format_start(start: float | None, now: float) -> str:
    """'14:05 UTC (in 12 min)' for Unix times, 'in 12 min' for relative ones, 'unknown' if None."""
    if start is None:
        return "unknown (no running job is expected to free enough devices)"
    wait = max(0.0, start - now)
    relative = "now" if wait < 1 else f"in {_duration(wait)}"
    if start < _EPOCH_2001:
        return relative
    seconds = int(start) % 86400
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d} UTC ({relative})"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
