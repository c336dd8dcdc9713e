"""The data types every package shares: devices, nodes, cluster state, job requests, placements.

They are plain frozen dataclasses that validate themselves on construction, so a bad value is
caught where it is made, with the field named.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

DEVICE_KINDS: tuple[str, ...] = ("cpu", "gpu", "npu", "fpga", "asic")
ACCELERATOR_KINDS: tuple[str, ...] = ("gpu", "npu", "fpga", "asic")
TIERS: tuple[str, ...] = ("center", "edge")
LATENCY_CLASSES: tuple[str, ...] = ("realtime", "interactive", "batch")
ALGORITHM_CLASSES: tuple[str, ...] = (
    "linear", "gbdt", "mlp", "cnn", "rnn", "transformer", "graph", "recommendation", "rl", "features", "generic",
)


def check_choice(field_name: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise ValueError naming `field_name` and the allowed values unless `value` is one of them."""
    if value not in allowed:
        raise ValueError(f"{field_name}: {value!r} is not one of {', '.join(allowed)}")


def check_non_negative(field_name: str, value: float) -> None:
    """Raise ValueError naming `field_name` when `value` is negative."""
    if value < 0:
        raise ValueError(f"{field_name}: must be >= 0, got {value}")


@dataclass(frozen=True)
class Device:
    """A group of identical devices on one node: `count` of them, `in_use` of those allocated.

    For kind ``cpu`` the count is logical cores. `memory_bytes` is per device (0 when unknown).
    `utilisation` is the measured busy fraction in [0, 1], or None where nothing was measured.
    """

    kind: str
    model: str
    count: int
    memory_bytes: int = 0
    in_use: float = 0
    utilisation: float | None = None
    healthy: bool = True

    def __post_init__(self) -> None:
        check_choice("device.kind", self.kind, DEVICE_KINDS)
        if not self.model:
            raise ValueError("device.model: must be a non-empty name such as 'A100' or 'Xeon-8380'")
        check_non_negative("device.count", self.count)
        check_non_negative("device.memory_bytes", self.memory_bytes)
        check_non_negative("device.in_use", self.in_use)
        if self.in_use > self.count + 1e-9:
            raise ValueError(f"device.in_use: {self.in_use} exceeds device.count {self.count}")

    @property
    def free(self) -> float:
        """Devices not allocated to any work."""
        return max(0.0, self.count - self.in_use)


@dataclass(frozen=True)
class Node:
    """One machine: where it is (cluster, tier, site), what it holds, and whether it is healthy."""

    id: str
    cluster: str
    tier: str
    site: str
    devices: tuple[Device, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    healthy: bool = True
    emulated: bool = False

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("node.id: must be non-empty")
        check_choice("node.tier", self.tier, TIERS)
        if not self.site:
            raise ValueError("node.site: must be non-empty, e.g. 'dc1' or 'branch-sh'")
        if not self.cluster:
            raise ValueError("node.cluster: must be non-empty")

    def device(self, kind: str, model: str | None = None) -> Device | None:
        """The first device group of `kind` (and `model`, when given), or None."""
        for d in self.devices:
            if d.kind == kind and (model is None or d.model == model):
                return d
        return None

    def free(self, kind: str, model: str | None = None) -> float:
        """Free devices of `kind` (and `model`) on this node."""
        return sum(d.free for d in self.devices if d.kind == kind and (model is None or d.model == model))


@dataclass(frozen=True)
class ClusterState:
    """A snapshot of one or more clusters' capacity at `taken_at` (seconds, caller's clock).

    `site_bandwidth_bps` maps (from_site, to_site) to bytes/s for moving data between sites;
    pairs not listed use `default_wan_bps`, and a site to itself uses `local_bps`.
    """

    nodes: tuple[Node, ...]
    taken_at: float = 0.0
    site_bandwidth_bps: Mapping[tuple[str, str], float] = field(default_factory=dict)
    default_wan_bps: float = 125e6  # 1 Gbit/s between sites
    local_bps: float = 2.5e9  # 20 Gbit/s inside a site

    def bandwidth(self, from_site: str, to_site: str) -> float:
        """Bytes per second for moving data from `from_site` to `to_site`."""
        if from_site == to_site:
            return self.local_bps
        return self.site_bandwidth_bps.get((from_site, to_site), self.default_wan_bps)

    def totals(self) -> dict[str, dict[str, float]]:
        """Per device kind: total count, in use and free, summed over healthy nodes."""
        out: dict[str, dict[str, float]] = {}
        for node in self.nodes:
            for d in node.devices:
                t = out.setdefault(d.kind, {"count": 0, "in_use": 0, "free": 0})
                t["count"] += d.count
                t["in_use"] += d.in_use
                t["free"] += d.free if node.healthy else 0
        return out


@dataclass(frozen=True)
class JobRequest:
    """What a job asks for: `workers` workers, each needing `devices_per_worker` devices of one kind.

    `work` is the job's total compute in work units (for example samples x epochs, or training
    steps); the throughput model turns it into seconds per device kind and model. `data_bytes`
    and `data_site` say how much data must reach the workers and from where. `device_model`
    pins an accelerator model ("A100"); `allowed_kinds` lists the device kinds the job can use.
    `attained_service_s` is device-seconds already received (for least-attained-service
    policies); `submitted_at` is the caller's clock. `user` is who submitted it (for per-user
    quotas). `clusters` and `sites`, when not empty, restrict the job to nodes of those clusters
    (by name) and sites. `throughputs`, when given, are measured
    (device model, work units/s for the whole job at its size) pairs that replace the
    throughput model for this job (a trace's throughput matrix, for instance): the job runs only
    on the models listed with a rate above zero.
    """

    id: str
    tenant: str = "default"
    priority: int = 0
    workers: int = 1
    devices_per_worker: int = 1
    algorithm: str = "generic"
    work: float = 1.0
    data_bytes: int = 0
    data_site: str | None = None
    latency: str = "batch"
    allowed_kinds: tuple[str, ...] = ("cpu", "gpu", "npu")
    device_model: str | None = None
    gang: bool = True
    preemptible: bool = True
    submitted_at: float = 0.0
    attained_service_s: float = 0.0
    clusters: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    throughputs: tuple[tuple[str, float], ...] | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("job.id: must be non-empty")
        if not self.tenant:
            raise ValueError("job.tenant: must be non-empty")
        if self.workers < 1:
            raise ValueError(f"job.workers: must be >= 1, got {self.workers}")
        if self.devices_per_worker < 1:
            raise ValueError(f"job.devices_per_worker: must be >= 1, got {self.devices_per_worker}")
        if not self.allowed_kinds:
            raise ValueError("job.allowed_kinds: list at least one of " + ", ".join(DEVICE_KINDS))
        for kind in self.allowed_kinds:
            check_choice("job.allowed_kinds", kind, DEVICE_KINDS)
        check_choice("job.latency", self.latency, LATENCY_CLASSES)
        check_choice("job.algorithm", self.algorithm, ALGORITHM_CLASSES)
        check_non_negative("job.work", self.work)
        check_non_negative("job.data_bytes", self.data_bytes)
        check_non_negative("job.attained_service_s", self.attained_service_s)
        for model, rate in self.throughputs or ():
            if not rate >= 0:
                raise ValueError(f"job.throughputs[{model!r}]: must be >= 0, got {rate}")

    @cached_property  # read many times a round; kept in the instance's dict, not a field (eq/repr ignore it)
    def devices_needed(self) -> int:
        """Devices the whole job needs at once."""
        return self.workers * self.devices_per_worker


@dataclass(frozen=True, init=False)
class WorkerAssignment:
    """`workers` workers of a job on `node_id`, each holding `devices_per_worker` devices."""

    node_id: str
    kind: str
    model: str
    workers: int
    devices_per_worker: int

    def __init__(self, node_id: str, kind: str, model: str, workers: int, devices_per_worker: int):
        # by hand rather than generated: the engine makes one per decision, and writing the
        # instance's dict directly skips the frozen dataclass's __setattr__ detour (3x faster)
        d = self.__dict__
        d["node_id"], d["kind"], d["model"], d["workers"], d["devices_per_worker"] = (
            node_id, kind, model, workers, devices_per_worker)


@dataclass(frozen=True, init=False)
class Placement:
    """Where a job runs and why: its workers' nodes, and the predicted seconds that justified it.

    predicted_completion_s = queue_s + transfer_s + compute_s, all relative to the decision time.
    `borrowed` marks a placement beyond the tenant's quota, on idle capacity that the quota's
    owners may reclaim by preemption. `note` says, for a job whose data lies at an edge site
    that runs elsewhere, why not there (no room, or slower). The engine may pass `note` as a
    function of no arguments instead of the text: the text is then written when first read
    (most notes are never read), from what the function captured at the decision.
    """

    job_id: str
    cluster: str
    kind: str
    model: str
    assignments: tuple[WorkerAssignment, ...]
    queue_s: float
    transfer_s: float
    compute_s: float
    borrowed: bool
    note: str  # no class default: when the text is not written yet, reading it calls `__getattr__`

    def __init__(self, job_id: str, cluster: str, kind: str, model: str, assignments: tuple[WorkerAssignment, ...],
                 queue_s: float, transfer_s: float, compute_s: float, borrowed: bool = False,
                 note: str | Callable[[], str] = ""):
        # by hand for speed, as WorkerAssignment's: one is made per decision
        d = self.__dict__
        d["job_id"], d["cluster"], d["kind"], d["model"], d["assignments"] = job_id, cluster, kind, model, assignments
        d["queue_s"], d["transfer_s"], d["compute_s"], d["borrowed"] = queue_s, transfer_s, compute_s, borrowed
        d["note" if isinstance(note, str) else "_write_note"] = note

    def __getattr__(self, name: str):
        # only reached for `note` while its text is not written yet (every field else is in the instance's dict)
        writer = self.__dict__.get("_write_note") if name == "note" else None
        if writer is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        text = self.__dict__["note"] = writer()
        del self.__dict__["_write_note"]
        return text

    def __getstate__(self) -> dict:
        """The fields with the note written (a pickled placement carries text, not the function)."""
        return {**{k: v for k, v in self.__dict__.items() if k != "_write_note"}, "note": self.note}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    @property
    def predicted_completion_s(self) -> float:
        """Seconds from the decision until the job is predicted to finish."""
        return self.queue_s + self.transfer_s + self.compute_s

    @property
    def node_ids(self) -> tuple[str, ...]:
        """The distinct nodes the job's workers run on."""
        return tuple(a.node_id for a in self.assignments)

    @property
    def devices(self) -> int:
        """The devices the placement holds: every worker's, on every node."""
        return sum(a.workers * a.devices_per_worker for a in self.assignments)

    def to_dict(self) -> dict:
        """Plain JSON-ready values (what the store and the API keep); `from_dict` reads them back."""
        return {**{f: getattr(self, f) for f in ("job_id", "cluster", "kind", "model", "queue_s", "transfer_s",
                                                  "compute_s", "borrowed", "note")},
                "assignments": [vars(a).copy() for a in self.assignments]}

    @classmethod
    def from_dict(cls, data: dict) -> Placement:
        """The placement `to_dict` wrote."""
        return cls(**{**data, "assignments": tuple(WorkerAssignment(**a) for a in data["assignments"])})


@dataclass(frozen=True)
class Waiting:
    """A job that was not placed this round, and a reason a person can read."""

    job_id: str
    reason: str
    next_estimated_start: float | None = None


@dataclass(frozen=True)
class Rejection:
    """A job that can never run on this capacity, with the reason."""

    job_id: str
    reason: str


@dataclass(frozen=True)
class Decisions:
    """The outcome of one scheduling round."""

    placements: tuple[Placement, ...] = ()
    preemptions: tuple[str, ...] = ()
    waiting: tuple[Waiting, ...] = ()
    rejected: tuple[Rejection, ...] = ()
