"""A stored job as the scheduler's `JobRequest`, with what was measured of it so far: production
decides like the simulator.

- `work` is what is left: rows x the epochs not yet done, so it shrinks as epochs finish (a
  feature job: events x windows);
- `throughputs` (whole-job work units per second, per device model) come from the job's own
  measured epoch times on the model it ran on, and from the throughput model (measured
  `suanli bench` profiles over the defaults) for every other model in the cluster;
- `attained_service_s` is the device-seconds the job has received.
"""

from __future__ import annotations

from schedulers.throughput import ThroughputModel, parallel_factor
from schedulers.types import ClusterState, JobRequest, Placement

DEFAULT_ROWS = 1000  # a user train_fn job declares no dataset: a nominal size


def job_request(record, throughput: ThroughputModel, state: ClusterState | None = None) -> JobRequest:
    """The scheduler's view of `record` (a JobRecord) now."""
    spec = record.spec
    dataset = spec.get("_dataset") or {}
    rows = int(dataset.get("rows") or DEFAULT_ROWS)
    progress = record.progress or {}
    if spec.get("_kind") == "features":  # events x windows, once
        units_left = len(spec["windows_s"])
    else:
        units_left = max(0, int(spec["epochs"]) - int(progress.get("epochs_done", 0)))
    algorithm = spec["_algorithm"]
    kinds = tuple(spec["_device_kinds"])
    devices = int(spec["workers"])
    throughputs = None
    measured = progress.get("seconds_per_epoch")
    if measured and state is not None:
        rates = {}
        for node in state.nodes:
            for d in node.devices:
                if d.kind in kinds and (spec["_device_model"] in (None, d.model)):
                    rates[d.model] = throughput.rate(algorithm, d.kind, d.model) * parallel_factor(devices)
        if progress.get("model") and progress.get("workers") == devices:
            rates[progress["model"]] = rows / measured  # the job's own rate where it ran, at its size
        throughputs = tuple(sorted(rates.items())) or None
    return JobRequest(
        id=record.id, tenant=record.tenant, priority=spec["priority"], workers=spec["workers"], devices_per_worker=1,
        algorithm=algorithm, work=float(rows * units_left), data_bytes=int(dataset.get("bytes", 0)),
        data_site=spec.get("data_site"), latency=spec["latency"], allowed_kinds=kinds,
        device_model=spec["_device_model"], preemptible=spec["preemptible"], submitted_at=record.created,
        attained_service_s=float(progress.get("device_seconds", 0.0)), throughputs=throughputs, user=record.user,
        clusters=tuple(spec.get("clusters") or ()), sites=tuple(spec.get("sites") or ()))


def progress_from_epochs(lines: list[dict], placement: Placement) -> dict:
    """The job's progress from its epoch lines (all attempts, in order) and its current placement:
    epochs done, the median seconds per epoch on the current placement, device-seconds received."""
    if not lines:
        return {}
    devices = placement.devices
    done = max(line["epoch"] for line in lines) + 1
    recent = sorted(line["epoch_seconds"] for line in lines if line.get("attempt") == lines[-1].get("attempt"))
    return {"epochs_done": done, "seconds_per_epoch": recent[len(recent) // 2] if recent else None,
            "kind": placement.kind, "model": placement.model, "workers": devices,
            "device_seconds": sum(line["epoch_seconds"] for line in lines) * devices}
