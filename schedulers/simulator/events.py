"""Discrete-event replay of a trace on a described cluster, through the same `schedule()` that
decides in production.

Events are arrivals, completions and, for time-sharing policies, round ticks every `round_s`
while jobs wait. A job's speed on an accelerator is `throughput[accelerator][(job_type,
scale_factor)]` steps/s, so its run time there is `total_steps / throughput`. A preempted job
keeps its progress (it checkpoints) and pays `restart_s` of no progress when it starts again.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from schedulers.engine import RunningJob, SchedulerConfig, schedule
from schedulers.policies.base import Policy
from schedulers.simulator.metrics import JobOutcome, summarise
from schedulers.simulator.traces import Matrix, TraceError, TraceJob
from schedulers.types import ClusterState, Device, JobRequest, Node


@dataclass(frozen=True)
class SimConfig:
    """`round_s`: time-sharing round; `restart_s`: cost of resuming after preemption or
    migration; `gpus_per_node`: accelerators per simulated server; `time_scale`: arrival times
    are divided by it (> 1 means more load)."""

    round_s: float = 360.0
    restart_s: float = 30.0
    gpus_per_node: int = 4
    time_scale: float = 1.0
    ageing_interval_s: float = math.inf


def parse_cluster_spec(spec: str, known: list[str] | None = None) -> dict[str, int]:
    """'k80:36,p100:36,v100:36' -> {'k80': 36, ...}; ValueError naming a bad or unknown entry."""
    out: dict[str, int] = {}
    for part in spec.split(","):
        name, _, count = part.strip().partition(":")
        if not name or not count.isdigit() or int(count) < 1:
            raise ValueError(f"--cluster: {part.strip()!r} must be ACCELERATOR:COUNT with COUNT >= 1")
        if known is not None and name not in known:
            raise ValueError(f"--cluster: unknown accelerator {name!r}; the throughput matrix has {', '.join(known)}")
        out[name] = out.get(name, 0) + int(count)
    return out


@dataclass
class _Job:
    trace: TraceJob
    rates: dict[str, float]
    arrival_s: float
    remaining: float
    attained: float = 0.0
    first_start: float | None = None
    finish: float | None = None
    preemptions: int = 0
    version: int = 0
    running: RunningJob | None = None
    rate: float = 0.0
    progress_from: float = 0.0
    last_update: float = 0.0
    request: JobRequest | None = field(default=None, repr=False)

    def as_request(self) -> JobRequest:
        if self.request is None or self.request.work != self.remaining or self.request.attained_service_s != self.attained:
            self.request = JobRequest(
                id=self.trace.id, tenant=self.trace.tenant, priority=self.trace.priority,
                workers=self.trace.scale_factor, devices_per_worker=1, allowed_kinds=("gpu",),
                work=self.remaining, submitted_at=self.arrival_s, attained_service_s=self.attained,
                throughputs=tuple(self.rates.items()),
            )
        return self.request


class Simulation:
    """One policy over one trace and cluster; `run()` returns the metrics dict.

    Jobs that can never run are left out with the reason (in the result's `rejected`), and the
    others are simulated as if they were not in the trace: a job id seen before in the trace, a
    job larger than the cluster's largest accelerator type it can run on, one the engine rejects.
    `progress(finished, total)`, when given, is called every `progress_every` finished jobs.
    """

    def __init__(self, jobs: list[TraceJob], matrix: Matrix, cluster: dict[str, int], policy: Policy,
                 config: SimConfig = SimConfig(), progress: Callable[[int, int], None] | None = None,
                 progress_every: int = 10_000):
        if not cluster or not any(count > 0 for count in cluster.values()):
            raise ValueError("cluster: no accelerators; give at least one ACCELERATOR:COUNT with COUNT >= 1, "
                             "e.g. k80:36,p100:36,v100:36")
        self.config = config
        self.policy = policy
        self.cluster = cluster
        self.progress, self.progress_every = progress, max(1, progress_every)
        self.jobs: dict[str, _Job] = {}
        self.rejected: dict[str, str] = {}
        for t in jobs:
            if t.id in self.jobs or t.id in self.rejected:
                self.rejected.setdefault(f"{t.id} (again)", f"duplicate job id {t.id!r}: only its first entry runs")
                continue
            key = (t.job_type, t.scale_factor)
            rates = {acc: matrix.get(acc, {}).get(key, 0.0) for acc in cluster}
            if not any(r > 0 for r in rates.values()):
                raise TraceError(f"throughputs: job {t.id} ({t.job_type!r} x{t.scale_factor}) has a zero or no rate "
                                 f"on every accelerator of the cluster ({', '.join(cluster)})")
            largest = max(count for acc, count in cluster.items() if rates[acc] > 0)
            if t.scale_factor > largest:
                self.rejected[t.id] = (f"rejected: needs {t.scale_factor} GPUs of one type; the largest type it can run "
                                       f"on here has {largest} ({', '.join(f'{a} {c}' for a, c in cluster.items())})")
                continue
            self.jobs[t.id] = _Job(t, rates, t.arrival_s / config.time_scale, t.total_steps)
        self.nodes: list[tuple[str, str, int]] = []
        for acc, count in cluster.items():
            full, rest = divmod(count, config.gpus_per_node)
            sizes = [config.gpus_per_node] * full + ([rest] if rest else [])
            self.nodes += [(f"{acc}-{i}", acc, size) for i, size in enumerate(sizes)]
        self.in_use = {node_id: 0 for node_id, _, _ in self.nodes}
        self.busy_device_s = dict.fromkeys(cluster, 0.0)
        self.sched_config = SchedulerConfig(
            min_run_before_preempt_s=config.round_s, explain_waiting=False,
            ageing_interval_s=config.ageing_interval_s,
        )

    def _state(self, now: float) -> ClusterState:
        return ClusterState(
            nodes=tuple(
                Node(id=node_id, cluster="sim", tier="center", site="sim",
                     devices=(Device("gpu", acc, size, in_use=self.in_use[node_id]),))
                for node_id, acc, size in self.nodes
            ),
            taken_at=now,
        )

    def _advance(self, running: list[_Job], now: float) -> None:
        for job in running:
            start = max(job.last_update, job.progress_from)
            if now > start:
                done = (now - start) * job.rate
                job.remaining = max(0.0, job.remaining - done)
                best = max(job.rates.values())  # attained service is normalised to the fastest device
                job.attained += (now - start) * job.trace.scale_factor * job.rate / best
            acc = job.running.placement.model
            self.busy_device_s[acc] += (now - job.last_update) * job.trace.scale_factor
            job.last_update = now

    def run(self) -> dict:
        heap: list[tuple[float, int, str, str, int]] = []
        seq = 0
        for job in self.jobs.values():
            heapq.heappush(heap, (job.arrival_s, seq, "arrival", job.trace.id, 0))
            seq += 1
        waiting: dict[str, _Job] = {}
        running: dict[str, _Job] = {}
        tick_pending = False
        finished = 0
        while heap:
            now = heap[0][0]
            self._advance(list(running.values()), now)
            while heap and heap[0][0] == now:
                _, _, kind, job_id, version = heapq.heappop(heap)
                if kind == "tick":
                    tick_pending = False
                    continue
                job = self.jobs[job_id]
                if kind == "arrival":
                    waiting[job_id] = job
                elif kind == "complete" and job.version == version and job_id in running:
                    job.finish = now
                    job.request = None  # only the outcome is kept from here on
                    self._release(job)
                    del running[job_id]
                    finished += 1
                    if self.progress is not None and finished % self.progress_every == 0:
                        self.progress(finished, len(self.jobs))
            if not waiting:
                continue
            if self.policy.time_shares and tick_pending and not self._has_free_device():
                continue  # time-sharing policies re-plan at round ticks; between them only fill idle devices
            decisions = schedule(
                [j.as_request() for j in waiting.values()], self._state(now), now, self.policy,
                [replace(j.running, request=j.as_request()) for j in running.values()], self.sched_config,
            )
            for rejection in decisions.rejected:
                waiting.pop(rejection.job_id)
                self.rejected[rejection.job_id] = rejection.reason
            for job_id in decisions.preemptions:
                job = running.pop(job_id)
                self._release(job)
                job.preemptions += 1
                job.version += 1
                waiting[job_id] = job
            for placement in decisions.placements:
                job = waiting.pop(placement.job_id)
                for a in placement.assignments:
                    self.in_use[a.node_id] += a.workers * a.devices_per_worker
                job.rate = job.rates[placement.model]
                job.progress_from = now + (self.config.restart_s if job.first_start is not None else 0.0)
                job.first_start = now if job.first_start is None else job.first_start
                job.last_update = now
                job.version += 1
                end = job.progress_from + job.remaining / job.rate
                job.running = RunningJob(job.as_request(), placement, now, end)
                running[job.trace.id] = job
                heapq.heappush(heap, (end, seq, "complete", job.trace.id, job.version))
                seq += 1
            if self.policy.time_shares and waiting and not tick_pending:
                heapq.heappush(heap, (now + self.config.round_s, seq, "tick", "", 0))
                seq += 1
                tick_pending = True
        unfinished = [j.trace.id for j in self.jobs.values() if j.finish is None and j.trace.id not in self.rejected]
        if unfinished:
            raise RuntimeError(f"simulation ended with {len(unfinished)} unfinished job(s), e.g. {unfinished[0]}")
        outcomes = [
            JobOutcome(j.trace.id, j.trace.tenant, j.arrival_s, j.first_start, j.finish,
                       j.trace.total_steps / max(j.rates.values()), j.preemptions)
            for j in self.jobs.values() if j.trace.id not in self.rejected
        ]
        devices = dict(self.cluster)
        return {**summarise(outcomes, self.busy_device_s, devices),
                "rejected": [{"id": job_id, "reason": reason} for job_id, reason in self.rejected.items()]}

    def _has_free_device(self) -> bool:
        return any(self.in_use[node_id] < size for node_id, _, size in self.nodes)

    def _release(self, job: _Job) -> None:
        for a in job.running.placement.assignments:
            self.in_use[a.node_id] -= a.workers * a.devices_per_worker
        job.running = None


def simulate(jobs, matrix, cluster, policy, config: SimConfig = SimConfig(), progress=None) -> dict:
    """Replay `jobs` on `cluster` under `policy`; the metrics of `summarise`, and `rejected`:
    the jobs left out, each with the reason."""
    return Simulation(jobs, matrix, cluster, policy, config, progress).run()


