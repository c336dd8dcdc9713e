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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from schedulers.engine import RunningJob, SchedulerConfig, schedule
from schedulers.policies.base import Policy
from schedulers.simulator.metrics import JobOutcome, OutcomeStats
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

    The trace is read as the simulation reaches each job's arrival, and a job is forgotten when it
    finishes (its JCT, queueing delay and slowdown are kept, 24 bytes), so a trace of a million
    jobs runs in memory bounded by the jobs present at once plus those few bytes and each id (for
    the duplicate check). A list is replayed in arrival order; any other iterable must already be
    in arrival order (TraceError naming the first job that is not).

    Jobs that can never run are left out with the reason (in the result's `rejected`), and the
    others are simulated as if they were not in the trace: a job id seen before in the trace, a
    job larger than the cluster's largest accelerator type it can run on, one the engine rejects.
    `progress(finished, total)`, when given, is called every `progress_every` finished jobs (total
    is None for a trace that is not a list).
    """

    def __init__(self, jobs: Iterable[TraceJob], matrix: Matrix, cluster: dict[str, int], policy: Policy,
                 config: SimConfig = SimConfig(), progress: Callable[[int, int | None], None] | None = None,
                 progress_every: int = 10_000):
        if not cluster or not any(count > 0 for count in cluster.values()):
            raise ValueError("cluster: no accelerators; give at least one ACCELERATOR:COUNT with COUNT >= 1, "
                             "e.g. k80:36,p100:36,v100:36")
        self.config = config
        self.policy = policy
        self.cluster = cluster
        self.matrix = matrix
        self.progress, self.progress_every = progress, max(1, progress_every)
        self.rejected: dict[str, str] = {}
        if isinstance(jobs, Sequence):  # the first entry of an id in the list is the one that runs
            first: dict[str, TraceJob] = {}
            for t in jobs:
                if t.id in first:
                    self.rejected.setdefault(f"{t.id} (again)", f"duplicate job id {t.id!r}: only its first entry runs")
                else:
                    first[t.id] = t
            jobs = sorted(first.values(), key=lambda t: t.arrival_s)  # stable: equal arrivals keep the list's order
            self.total: int | None = len(jobs)
        else:
            self.total = None
        self._source: Iterator[TraceJob] = iter(jobs)
        self._last_arrival = -math.inf
        self.jobs: dict[str, _Job] = {}  # arrived and not yet finished
        self.seen: set[str] = set()
        self.stats = OutcomeStats()
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
        self._next = self._read()

    def _read(self) -> _Job | None:
        """The next job of the trace that can run (recording why the others cannot), or None at its end."""
        cluster = self.cluster
        for t in self._source:
            if t.arrival_s < self._last_arrival:
                raise TraceError(f"trace: job {t.id} arrives at {t.arrival_s:g} s, before the job read before it "
                                 f"({self._last_arrival:g} s); a streamed trace must be in arrival order")
            self._last_arrival = t.arrival_s
            if t.id in self.seen:
                self.rejected.setdefault(f"{t.id} (again)", f"duplicate job id {t.id!r}: only its first entry runs")
                continue
            self.seen.add(t.id)
            key = (t.job_type, t.scale_factor)
            rates = {acc: self.matrix.get(acc, {}).get(key, 0.0) for acc in cluster}
            if not any(r > 0 for r in rates.values()):
                raise TraceError(f"throughputs: job {t.id} ({t.job_type!r} x{t.scale_factor}) has a zero or no rate "
                                 f"on every accelerator of the cluster ({', '.join(cluster)})")
            largest = max(count for acc, count in cluster.items() if rates[acc] > 0)
            if t.scale_factor > largest:
                self.rejected[t.id] = (f"rejected: needs {t.scale_factor} GPUs of one type; the largest type it can run "
                                       f"on here has {largest} ({', '.join(f'{a} {c}' for a, c in cluster.items())})")
                continue
            return _Job(t, rates, t.arrival_s / self.config.time_scale, t.total_steps)
        return None

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
        waiting: dict[str, _Job] = {}
        running: dict[str, _Job] = {}
        tick_pending = False
        while heap or self._next is not None:
            now = heap[0][0] if heap else math.inf
            if self._next is not None and self._next.arrival_s <= now:
                now = self._next.arrival_s
            self._advance(list(running.values()), now)
            while self._next is not None and self._next.arrival_s == now:  # arrivals before other events
                job, self._next = self._next, self._read()
                self.jobs[job.trace.id] = waiting[job.trace.id] = job
            while heap and heap[0][0] == now:
                _, _, kind, job_id, version = heapq.heappop(heap)
                if kind == "tick":
                    tick_pending = False
                    continue
                job = self.jobs.get(job_id)
                if job is not None and job.version == version and job_id in running:
                    job.finish = now
                    self._release(job)
                    del running[job_id], self.jobs[job_id]
                    self.stats.add(JobOutcome(job_id, job.trace.tenant, job.arrival_s, job.first_start, now,
                                              job.trace.total_steps / max(job.rates.values()), job.preemptions))
                    if self.progress is not None and len(self.stats) % self.progress_every == 0:
                        self.progress(len(self.stats), self.total)
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
                del self.jobs[rejection.job_id]
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
        if self.jobs:
            raise RuntimeError(f"simulation ended with {len(self.jobs)} unfinished job(s), e.g. {next(iter(self.jobs))}")
        return {**self.stats.summary(self.busy_device_s, dict(self.cluster)),
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


