"""`hetero` (ours): heterogeneity-aware, throughput-normalised, time-sharing.

Each round (an event or a periodic tick), running checkpointed jobs and waiting ones compete
together, ordered by priority and then by the least predicted remaining device time (remaining
work over the job's best throughput in this cluster, times its devices: shortest remaining first),
with least attained service breaking ties: short jobs are never stuck behind long ones, and jobs
that lose their place are preempted and resume from their checkpoint later. suanli knows each
job's work (data volume x epochs) and the throughput model, so it can rank by what is left rather
than by what was received (the `las` policy ranks by attained service alone, as Tiresias and
Gavel's LAS do, for when work is unknown). Ageing lifts long jobs that wait too long.

Batch jobs without data to move are then given device models for the whole round at once (as Sia's per-round
assignment does, over each job's rate per device model, Gavel's effective throughput):

- in that order, each job takes the fastest model with room that it *accepts*: a model is accepted
  when the time it would lose there against its fastest model (remaining work x (best rate / rate
  - 1)) is no more than it has already waited. A job just submitted therefore waits for a fast
  device rather than starting on one several times slower; the longer it waits, the more it
  accepts (the ski-rental rule: never lose more by waiting than by going slow);
- a job that finds room only on models it does not accept is held back this round (it waits);
- then, for each held-back job, a job planned on a model it accepts moves to another model with
  room that the mover accepts, when there is one: the fast devices go to the jobs that gain most
  from them, and jobs that gain little take the slow ones.

Where a job goes depends on its latency class (REQUIREMENTS 6.1 d, f):
- `realtime`: an edge node at the job's data site if one is free, else the lowest predicted latency;
- `interactive`: the lowest predicted completion (data transfer + compute);
- `batch`: the device model planned for it this round (the pool whose relative speed is that
  model's), else (a job with data to move) the lowest predicted completion.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from schedulers.policies.base import (
    Choice,
    Policy,
    PoolOptions,
    RoundContext,
    by_priority,
    speed_distance,
)
from schedulers.types import JobRequest


def speedup_spread(job: JobRequest) -> float:
    """How much faster the job runs on its fastest known device than its slowest (1.0 if unknown)."""
    if not job.throughputs:
        return 1.0
    rates = [rate for _, rate in job.throughputs if rate > 0]
    return max(rates) / min(rates) if rates else 1.0


def fastest_first(rates: Mapping[str, float]) -> list[str]:
    """The models a job runs on (rate above zero), fastest first (ties in `rates`' order)."""
    return sorted((m for m, r in rates.items() if r > 0), key=lambda m: -rates[m])


def accepted_models(rates: Mapping[str, float], remaining_s: float, waited_s: float,
                    ranked: list[str] | None = None) -> list[str]:
    """The models (fastest first) where the job would lose no more time against its fastest model
    than it has already waited: `remaining_s` (on its fastest model) x (best / rate - 1) <= waited.
    `ranked`: `fastest_first(rates)`, when the caller keeps it."""
    best = max(rates.values(), default=0.0)
    return [m for m in (ranked if ranked is not None else fastest_first(rates))
            if remaining_s * (best / rates[m] - 1.0) <= waited_s]


class HeteroPolicy(Policy):
    name = "hetero"
    time_shares = True

    def __init__(self):
        self._plan: dict[str, float] = {}  # batch job id -> relative speed of the model planned for it this round

    def order(self, jobs, ctx: RoundContext):
        """Jobs admitted this round, most deserving first; batch jobs held back for a faster
        device are left out (they wait), and each admitted batch job gets a planned model."""
        free = dict(ctx.free_by_model())
        need = np.fromiter((j.devices_needed for j in jobs), dtype=float, count=len(jobs))
        attained = np.fromiter((j.attained_service_s for j in jobs), dtype=float, count=len(jobs))
        fastest = ctx.fastest_runs(jobs)
        ranked = by_priority(jobs, ctx, fastest * need, attained / need)
        fastest_of = dict(zip(map(id, jobs), fastest.tolist(), strict=True))  # ctx.fastest_run_s, computed once
        admitted: list[JobRequest] = []
        held: list[tuple[JobRequest, dict[str, float], list[str]]] = []
        unplanned: list[JobRequest] = []
        planned: dict[str, tuple[JobRequest, dict[str, float], list[str], str]] = {}
        rates_of: dict[tuple, tuple[dict[str, float], list[str]]] = {}  # per shape: rates per model, fastest first
        for job in ranked:
            need = job.devices_needed
            holds = ctx.running_model(job)
            if holds is not None:  # a running job keeps its place if a shorter job has not taken it
                if free.get(holds, 0.0) >= need:
                    free[holds] -= need
                    admitted.append(job)
                continue
            if job.latency != "batch" or job.data_bytes:
                admitted.append(job)
                continue
            shape = (job.throughputs, job.algorithm, need, job.allowed_kinds, job.device_model, job.clusters, job.sites)
            found = rates_of.get(shape)
            if found is None:
                rates = dict(ctx.model_rates(job))
                found = rates_of[shape] = (rates, fastest_first(rates))
            rates, models = found
            if not models:  # it runs on no model: nothing to plan
                admitted.append(job)
                continue
            waited = max(0.0, ctx.now - job.submitted_at - job.attained_service_s / need)
            accepted = accepted_models(rates, fastest_of[id(job)], waited, models)
            roomy = [m for m in accepted if free.get(m, 0.0) >= need]
            if roomy:
                free[roomy[0]] -= need
                planned[job.id] = (job, rates, accepted, roomy[0])
                admitted.append(job)
            elif any(r > 0 and free.get(m, 0.0) >= need for m, r in rates.items()):
                held.append((job, rates, accepted))  # room only where it runs too slowly: it waits
            else:
                unplanned.append(job)  # no room by this count: last, in case a cap holds a job counted here
        for job, rates, accepted in held:
            swap = self._swap(job, accepted, planned, free)
            if swap is not None:
                mover, to, model = swap
                free[to] -= mover.devices_needed
                free[model] += mover.devices_needed - job.devices_needed
                planned[mover.id] = (*planned[mover.id][:3], to)
                planned[job.id] = (job, rates, accepted, model)
                admitted.append(job)
        self._plan = {job_id: rates[model] / max(rates.values()) for job_id, (_, rates, _, model) in planned.items()}
        return admitted + unplanned

    @staticmethod
    def _swap(job, accepted, planned, free):
        """(mover, its new model, the model `job` takes) when a planned job on a model `job`
        accepts can move to another model with room that the mover accepts; None otherwise."""
        for model in accepted:
            for mover, _, mover_accepts, at in planned.values():
                if at != model or mover.id == job.id or free.get(model, 0.0) + mover.devices_needed < job.devices_needed:
                    continue
                for to in mover_accepts:
                    if to != model and free.get(to, 0.0) >= mover.devices_needed:
                        return mover, to, model
        return None

    def assignment_order(self, jobs, ctx: RoundContext):
        """The jobs that gain most from a fast device first (stable: ties keep admission order)."""
        if not any(job.throughputs for job in jobs):
            return list(jobs)  # no measured throughputs: every spread is 1.0
        spread_of: dict = {}  # jobs with the same measured throughputs have the same spread
        spreads = []
        for job in jobs:
            spread = spread_of.get(job.throughputs)
            if spread is None:
                spread = spread_of[job.throughputs] = speedup_spread(job)
            spreads.append(-spread)
        return [jobs[i] for i in np.argsort(np.array(spreads, dtype=float), kind="stable").tolist()]

    def choose(self, job, options: PoolOptions) -> int:
        completion = options.completion_s
        if job.latency == "realtime":
            local = np.flatnonzero(options.edge_at_data_site)
            if local.size:
                return int(local[np.argmin(completion[local])])
            return int(np.argmin(completion))
        target = self._plan.get(job.id) if job.latency == "batch" else None
        if target is None:
            return int(np.argmin(completion))
        distance = speed_distance(options.relative_speed, target)
        nearest = np.flatnonzero(distance == distance.min())
        return int(nearest[np.argmin(completion[nearest])])

    def compiled_choice(self, jobs):
        rule = {"realtime": Choice.EDGE_FIRST, "interactive": Choice.SOONEST, "batch": Choice.NEAREST_SPEED}
        rules = np.array([rule[j.latency] for j in jobs], dtype=np.int64)
        targets = np.full(len(jobs), np.nan)
        if self._plan:  # (only batch jobs are planned)
            plan = self._plan.get
            targets[:] = [plan(j.id, np.nan) for j in jobs]
        return rules, targets
