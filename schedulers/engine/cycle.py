"""The scheduling cycle: one round from the queue to `Decisions`.

A round drops duplicate ids and jobs that can never fit, asks the policy for the order, and then
for each job in turn: place it (`placement`, in compiled runs where the policy allows), else
preempt for it (`preemption`), else reserve for it (`backfill`); why each job waits (`explain`) is
written once the round's placements are all made, from the capacity they leave. Time-sharing policies first re-admit
running and waiting jobs together (`preemption.TimeSharing`).
"""

from __future__ import annotations

import gc
from collections.abc import Sequence

import numpy as np

from schedulers.capacity_index import CapacityIndex
from schedulers.engine.backfill import Backfill
from schedulers.engine.config import RunningJob, SchedulerConfig
from schedulers.engine.explain import Explainer
from schedulers.engine.feasibility import can_ever_fit
from schedulers.engine.placement import Placer
from schedulers.engine.preemption import TimeSharing, preempt_for
from schedulers.engine.profiles import Profiles
from schedulers.engine.quota import Ledger
from schedulers.policies.base import Policy, RoundContext
from schedulers.types import ClusterState, Decisions, JobRequest, Rejection


def schedule(
    queue: Sequence[JobRequest],
    state: ClusterState,
    now: float,
    policy: Policy,
    running: Sequence[RunningJob] = (),
    config: SchedulerConfig | None = None,
) -> Decisions:
    """Decide this round: which queued jobs start where, which running jobs are preempted, why
    each other job waits, and which can never run. `state` is the capacity now (running jobs'
    devices already in use); `running` lists those jobs so they can be preempted or counted.

    The cyclic garbage collector is paused for the round (and restored after): a round makes
    tens of thousands of short-lived, acyclic objects, and the full collections they would
    trigger walk every object of the process (the queue and the cluster's nodes among them),
    which cost up to a third of a round at 10,000 jobs."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return Round(state, now, policy, running, config or SchedulerConfig()).run(queue)
    finally:
        if was_enabled:
            gc.enable()


class Round:
    """One round's state: the capacity index and the rooms that read and change it."""

    def __init__(self, state: ClusterState, now: float, policy: Policy, running: Sequence[RunningJob],
                 config: SchedulerConfig):
        self.index = CapacityIndex(state)
        self.now = now
        self.policy = policy
        self.config = config
        self.running = list(running)
        self.ledger = Ledger(config, self.running)
        self.profiles = Profiles(self.index, config.throughput)
        self.ctx = RoundContext(
            now=now,
            tenant_usage=self.ledger.tenant_totals(),
            ageing_interval_s=config.ageing_interval_s,
            fastest_run_s=self.profiles.fastest_run_s,
            fastest_runs_s=self.profiles.fastest_runs_s,
            model_rates=self.profiles.model_rates,
            free_by_model=self.profiles.free_by_model,
            running_model=lambda job, held={r.request.id: r.placement.model for r in self.running}: held.get(job.id),
        )
        self.backfill = Backfill(self.index, now)
        for r in self.running:
            self.backfill.add_running(r.placement, r.expected_end)
        self.placer = Placer(self.index, self.profiles, self.ledger, self.backfill, policy, config, now)
        self.explainer = Explainer(self.index, self.ledger, self.backfill, self.running, now, config.explain_waiting)
        self.preempted: list[str] = []
        self.waits: list[tuple[JobRequest, str | None]] = []  # jobs that wait, with why when the placer knew
        self.rejected: list[Rejection] = []

    def run(self, queue: Sequence[JobRequest]) -> Decisions:
        """The round's decisions for `queue`."""
        feasible = self._feasible(queue)
        if self.policy.time_shares:
            self._time_shared_round(feasible)
        else:
            self._ordered_round(feasible)
        explain = self.explainer.waiting  # once the round's placements are all made: the state they leave
        return Decisions(
            placements=tuple(self.placer.placements),
            preemptions=tuple(self.preempted),
            waiting=tuple([explain(job, why) for job, why in self.waits]),
            rejected=tuple(self.rejected),
        )

    def _feasible(self, queue: Sequence[JobRequest]) -> list[JobRequest]:
        """The queue less duplicate ids and jobs that can never fit (both rejected with the reason)."""
        feasible = []
        never: dict[tuple, str | None] = {}
        seen: set[str] = set()
        for job in queue:
            if job.id in seen:  # ids key every per-job cache of the round: a second entry would corrupt them
                self.rejected.append(Rejection(job.id, f"rejected: duplicate job id {job.id!r} in the queue; only its "
                                                       "first entry is scheduled"))
                continue
            seen.add(job.id)
            shape = (job.allowed_kinds, job.device_model, job.clusters, job.sites, job.devices_per_worker,
                     job.devices_needed if job.gang else 0)
            if shape not in never:
                never[shape] = can_ever_fit(job, self.index)
            reason = never[shape]
            if reason:
                self.rejected.append(Rejection(job.id, reason))
            else:
                feasible.append(job)
        return feasible

    def _ordered_round(self, jobs: list[JobRequest]) -> None:
        """Jobs in the policy's order: each placed, else preempted for, else reserved for and
        explained. Runs of jobs are decided in compiled code where the policy allows; the job a run
        stops at (one that may preempt or gets the reservation, say) is decided here."""
        lowest_running = min((r.request.priority for r in self.running if r.request.preemptible), default=None)
        any_borrowed = any(r.placement.borrowed for r in self.running)
        stop_priority = np.inf if lowest_running is None else (-np.inf if any_borrowed else lowest_running)
        full = False
        ordered = self.policy.order(jobs, self.ctx)
        placer = self.placer
        run = placer.compile(ordered)
        at = 0
        while at < len(ordered):
            if run is not None and not full:
                at, waiting = run.decide(at, stop_priority, may_reserve=self.config.backfill)
                self.waits += waiting
                if at == len(ordered):
                    break
            job = ordered[at]
            at += 1
            if full:
                self.waits.append((job, None))  # nothing free and nothing to preempt
                continue
            placed, why = placer.place(job)
            if placed is None and lowest_running is None and self.index.pool_free.sum() < 1:
                full = True
            if placed is None and lowest_running is not None and (job.priority > lowest_running or any_borrowed):
                placed = preempt_for(job, self.running, self.preempted, self.index, self.ledger, placer, self.config,
                                     self.now)
            if placed is not None:
                continue
            if self.config.backfill and self.backfill.reservation is None and self.ledger.limit_reason(job) is None:
                self.backfill.reserve(job)  # (a job held by a cap reserves nothing: freed devices would not help it)
            self.waits.append((job, why))

    def _time_shared_round(self, jobs: list[JobRequest]) -> None:
        """Running and waiting jobs re-admitted together; the waiting ones admitted are placed (in
        compiled runs where the policy allows)."""
        sharing = TimeSharing(self.index, self.profiles, self.ledger, self.policy, self.ctx, self.config, self.now)
        placer = self.placer
        new, table = sharing.readmit(jobs, self.running, self.preempted, compiled=placer.compiles)
        run = placer.compile(new, table)
        placed_ids: set[str] = set()
        at = 0
        while at < len(new):
            if run is not None:
                at, _ = run.decide(at)
                if at == len(new):
                    break
            job = new[at]
            at += 1
            placed, _ = placer.place(job)
            if placed is not None:
                placed_ids.add(job.id)
        if run is not None:
            placed_ids |= run.placed_ids
        for job in jobs:
            if job.id not in placed_ids:
                self.waits.append((job, self.ledger.limit_reason(job)))
