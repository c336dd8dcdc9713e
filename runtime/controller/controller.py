"""The job controller: drives stored jobs through the state machine while this server holds the
lease; decides with `schedulers.schedule`, carries out with a `ClusterBackend`.

One `step()`, only while the lease is held (every write carries its fencing token):
1. after taking the lease, adopt every attempt the store says is open: one still running in the
   cluster is followed, one really gone is handed to the failure policy (never relaunched blindly);
2. follow each attempt: STARTING -> RUNNING once its workers run (where they run is checked
   against the placement), record new checkpoints with their sha256, record measured progress,
   and settle attempts that ended (success, failure through the failure policy, stop);
3. honour cancellations (STOPPING until the attempt has released its devices);
4. snapshot the cluster and schedule: REJECTED, preemptions (STOPPING, then QUEUED once the old
   attempt ended), and launches (QUEUED -> STARTING with a new attempt).

Several clusters (a `Federation`): the snapshot holds the nodes of the server's own cluster and of
every healthy registered one; an attempt on a cluster declared lost is fenced (its attempt ended
as "fenced" before anything else: its checkpoints are refused from then on, and its run is told
to stop) and its job requeued, not counted as a failure, to resume from its last recorded
checkpoint wherever the scheduler places it; the stale run is stopped once the cluster answers
again. Jobs that can only run on lost clusters wait (never rejected) with a reason naming them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cluster
from runtime.backends.base import AttemptStatus, ClusterBackend, LaunchSpec
from runtime.backends.federated import FederatedBackend
from runtime.controller.failure_policy import FailurePolicy
from runtime.controller.finish import finish_job
from runtime.controller.lease_keeper import LeaseKeeper
from runtime.controller.requests import job_request, progress_from_epochs
from runtime.specs import JobState
from runtime.store import FencedOut, JobRecord, JobStore
from runtime.training.checkpoints import CHECKPOINT_META, checkpoint_digest
from runtime.training.devices import collective_backend, compute_kind
from schedulers.engine import RunningJob, SchedulerConfig, schedule
from schedulers.policies import make_policy
from schedulers.types import ClusterState, Placement, Waiting, WorkerAssignment

log = logging.getLogger(__name__)

FEATURE_KEYS = ("input", "keys", "time_column", "amount_column", "windows_s", "statistics", "output", "_input_root",
                "_output_root")
RESCHEDULE_UNCHANGED_S = 10.0  # an unchanged queue and cluster is still rescheduled this often (ageing)
LOOP_KEYS = ("model", "dataset", "label", "categorical", "validation_fraction", "test_fraction", "seed", "hidden",
             "learning_rate", "class_weight", "batch_size", "epochs", "checkpoint_every", "trees", "max_depth",
             "early_stopping_rounds", "funds_related")


def placement_from_dict(data: dict) -> Placement:
    return Placement(**{**data, "assignments": tuple(WorkerAssignment(**a) for a in data["assignments"])})


@dataclass
class _Tracked:
    """An attempt this controller follows."""

    attempt: int
    handle: dict
    placement: Placement
    started: float
    stop_asked_at: float | None = None
    forced: bool = False
    checkpoints_seen: set[str] = field(default_factory=set)
    checkpoints_suspect: set[str] = field(default_factory=set)  # files differ from meta.json (being copied?)
    progress_size: int = -1  # bytes of this attempt's progress.jsonl when last read


class JobController:
    """Owns the queue's progress while `lease` is held. `start()` runs `step()` every `poll_s`."""

    def __init__(self, store: JobStore, backend: ClusterBackend, lease: LeaseKeeper, runs_dir: str | Path,
                 policy: str = "hetero", config: SchedulerConfig | None = None, poll_s: float = 0.5,
                 stop_grace_s: float = 30.0, snapshot=None, federation=None):
        self.store = store
        self.backend = backend if isinstance(backend, FederatedBackend) else FederatedBackend(backend)
        self.federation = federation
        self.lease = lease
        self.runs_dir = Path(runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.policy = make_policy(policy)
        self.config = config or SchedulerConfig(min_run_before_preempt_s=120.0)
        self.poll_s = poll_s
        self.stop_grace_s = stop_grace_s
        self.take_snapshot = snapshot or (lambda: cluster.snapshot(include_local_telemetry=False))
        self.failure_policy = FailurePolicy()
        self.tracked: dict[str, _Tracked] = {}
        self.last_state: ClusterState | None = None
        self.step_failures = 0
        self.last_error = ""
        self.last_step_at = 0.0
        self._token: int | None = None
        self._last_reason: dict[str, str] = {}
        self._last_round: tuple = ()
        self._last_round_at = 0.0
        self._stale_checked_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="suanli-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except FencedOut as exc:
                log.warning("controller fenced out: %s", exc)
                self.lease.lost()
                self._forget()
            except Exception as exc:  # noqa: BLE001 - one bad step is counted and shown; the loop goes on
                self.step_failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("controller step failed")
            self._stop.wait(self.poll_s)

    def _forget(self) -> None:
        self.tracked.clear()
        self._token = None

    # ---- one step ------------------------------------------------------------------------
    def step(self) -> None:
        token = self.lease.token()
        if token is None:
            self._forget()
            return
        if token != self._token:
            self._forget()
            self._adopt(token)
            self._token = token
        self._follow(token)
        self._stop_stale_runs(token)
        self._cancel_requested(token)
        self._schedule(token)
        self.last_step_at = time.time()

    def _adopt(self, token: int) -> None:
        """Follow every open attempt the store knows (launched by us before a restart, or by a
        holder that lost the lease); requeue or fail only those the cluster no longer has."""
        for attempt in self.store.open_attempts():
            record = self.store.get(attempt.job_id)
            placement = placement_from_dict(attempt.placement)
            tracked = _Tracked(attempt.number, attempt.handle, placement, attempt.started)
            self.tracked[record.id] = tracked
            if attempt.number != record.attempts or not record.state.active:
                self._settle(record, tracked, AttemptStatus("stopped"), token, stale=True)
                continue
            status = self.backend.poll(attempt.handle)
            log.info("adopting %s attempt %d: %s", record.id, attempt.number, status.phase)
            self.store.log(record.id, f"controller (lease token {token}) adopted attempt {attempt.number}: "
                                      f"{status.phase} in the cluster")
            if record.state == JobState.STOPPING:
                self._ask_stop(record, tracked)  # the old holder may have died before asking

    def _follow(self, token: int) -> None:
        for job_id, tracked in list(self.tracked.items()):
            record = self.store.get(job_id)
            lost_since = self.backend.lost_since(tracked.placement.cluster)
            if lost_since is not None:
                self._fence(record, tracked, lost_since, token)
                continue
            status = self.backend.poll(tracked.handle)
            self._record_checkpoints(record, tracked, token)
            if status.workers and record.state == JobState.STARTING:
                self._check_workers(record, tracked, status)
                self.store.transition(job_id, JobState.RUNNING, detail=self._workers_detail(tracked, status),
                                      expect=(JobState.STARTING,), fence=token, attempt=tracked.attempt)
                self.store.update_attempt(job_id, tracked.attempt, token, state="running")
            if record.state in (JobState.STARTING, JobState.RUNNING):
                self._record_progress(record, tracked, token)
            lost = self._placed_nodes_lost(tracked) if record.state == JobState.STARTING and not status.ended else None
            if lost:  # its workers can never start where they were placed: stop it, let the policy decide
                self.store.update_attempt(job_id, tracked.attempt, token, state="stopping")  # fenced, first
                self.backend.stop(tracked.handle, force=True)
                status = AttemptStatus("lost", error=f"node(s) {', '.join(lost)} of the placement were lost before "
                                                     "its workers started")
            if status.ended:
                self._settle(self.store.get(job_id), tracked, status, token)
            elif (record.state == JobState.STOPPING and tracked.stop_asked_at and not tracked.forced
                  and time.time() - tracked.stop_asked_at > self.stop_grace_s):
                self.store.update_attempt(job_id, tracked.attempt, token, state="stopping")  # fenced, first
                self.store.log(job_id, f"attempt {tracked.attempt} did not stop within {self.stop_grace_s:g} s; "
                                       "stopping it by force")
                self.backend.stop(tracked.handle, force=True)
                tracked.forced = True

    def _settle(self, record: JobRecord, tracked: _Tracked, status: AttemptStatus, token: int,
                stale: bool = False) -> None:
        """An attempt ended: record how (a fenced write first: a holder that lost the lease must
        not touch the cluster either), release it, and move the job on."""
        self._record_checkpoints(record, tracked, token)
        self.store.update_attempt(record.id, tracked.attempt, token, state="ended", outcome=status.phase,
                                  error=status.error, ended=time.time())
        if stale:
            self.backend.stop(tracked.handle, force=True)
        self.backend.release(tracked.handle)
        self.tracked.pop(record.id, None)
        if stale:
            return
        if status.traceback:
            self.store.log(record.id, f"attempt {tracked.attempt} {status.phase}:\n{status.traceback}")
        state = record.state
        if state == JobState.STOPPING and not (status.phase == "succeeded" and not record.cancel_requested):
            if record.cancel_requested:
                self.store.transition(record.id, JobState.CANCELLED, actor="controller", fence=token,
                                      detail=f"attempt {tracked.attempt} stopped and released its devices",
                                      attempt=tracked.attempt)
            else:
                self.store.transition(record.id, JobState.QUEUED, fence=token, attempt=tracked.attempt,
                                      detail=f"attempt {tracked.attempt} stopped and released its devices; the job "
                                             "waits to resume from its latest checkpoint")
            return
        if status.phase == "succeeded":
            if state == JobState.STARTING:
                self.store.transition(record.id, JobState.RUNNING, fence=token, detail=self._workers_detail(tracked, status))
            self._succeed(record, tracked, status, token)
            return
        decision = self.failure_policy.decide(record, status)
        if decision.action == "retry":
            self.store.transition(record.id, JobState.STOPPING, detail=decision.reason, fence=token, attempt=tracked.attempt)
            self.store.transition(record.id, JobState.QUEUED, fence=token, failures=record.failures + 1,
                                  detail="resumes from its latest checkpoint on a new placement")
        else:
            self.store.transition(record.id, JobState.FAILED, detail=decision.reason, fence=token,
                                  error=decision.reason, failures=record.failures + 1, attempt=tracked.attempt)

    def _fence(self, record: JobRecord, tracked: _Tracked, lost_since: float, token: int) -> None:
        """The attempt's cluster was lost: end the attempt as fenced (a fenced write, first), mark
        its directory so the run stops and reports nothing, and requeue the job (no retry used)."""
        cluster_name = tracked.placement.cluster
        at = time.strftime("%H:%M:%S", time.localtime(lost_since))
        self.store.update_attempt(record.id, tracked.attempt, token, state="ended", outcome="fenced",
                                  error=f"cluster {cluster_name} lost {at}", ended=time.time())
        self.backend.fence(tracked.handle)
        self.tracked.pop(record.id, None)
        latest = self.store.checkpoints(record.id)
        resume = f"from epoch {latest[-1]['epoch']}" if latest else "from the start (no checkpoint yet)"
        reason = f"cluster {cluster_name} lost {at}; attempt {tracked.attempt} fenced"
        if record.state in (JobState.STARTING, JobState.RUNNING):
            self.store.transition(record.id, JobState.STOPPING, detail=reason, fence=token, attempt=tracked.attempt)
        if record.cancel_requested:
            self.store.transition(record.id, JobState.CANCELLED, fence=token, attempt=tracked.attempt,
                                  detail=f"{reason}; cancelled as requested")
        else:
            self.store.transition(record.id, JobState.QUEUED, fence=token, attempt=tracked.attempt,
                                  detail=f"{reason}; resumes {resume} on another cluster")

    def _stop_stale_runs(self, token: int) -> None:
        """Stop the Ray job of each fenced attempt whose cluster answers again (every 2 s)."""
        if self.federation is None or time.time() - self._stale_checked_at < 2.0:
            return
        self._stale_checked_at = time.time()
        for attempt in self.store.fenced_attempts():
            cluster_name = attempt.handle.get("cluster") if attempt.handle else None
            if cluster_name is None or self.federation.health(cluster_name) != "healthy":
                continue
            self.backend.stop(attempt.handle, force=True)
            self.store.update_attempt(attempt.job_id, attempt.number, token, outcome="fenced-stopped")
            self.store.note(attempt.job_id, f"cluster {cluster_name} answers again; the stale run of attempt "
                                            f"{attempt.number} was stopped", fence=token, attempt=attempt.number)

    def held_devices(self) -> dict[str, dict[str, float]]:
        """{node id: {device kind: devices}} held by the attempts this controller follows."""
        held: dict[str, dict[str, float]] = {}
        for tracked in list(self.tracked.values()):
            p = tracked.placement
            for a in p.assignments:
                kinds = held.setdefault(a.node_id, {})
                kinds[a.kind] = kinds.get(a.kind, 0.0) + a.workers * a.devices_per_worker
        return held

    def _succeed(self, record: JobRecord, tracked: _Tracked, status: AttemptStatus, token: int) -> None:
        if record.spec.get("_kind") == "features":
            result = {"kind": "features", **status.metrics, "placement": asdict(tracked.placement)}
            self.store.transition(record.id, JobState.SUCCEEDED, fence=token, result=result, attempt=tracked.attempt,
                                  detail=f"{status.metrics.get('rows')} rows of features in "
                                         f"{status.metrics.get('seconds')} s on {status.metrics.get('device')}")
            return
        try:
            result = finish_job(self.store, record, tracked.placement, status, self.runs_dir / record.id, tracked.started)
        except Exception as exc:  # noqa: BLE001 - an evaluation failure fails the job, not the controller
            import traceback

            self.store.log(record.id, "evaluation failed:\n" + traceback.format_exc())
            self.store.transition(record.id, JobState.FAILED, detail=f"evaluation failed: {exc}", fence=token,
                                  error=f"evaluation failed: {type(exc).__name__}: {exc}")
            return
        auc = result["metrics"].get("auc")
        self.store.transition(record.id, JobState.SUCCEEDED, fence=token, result=result, attempt=tracked.attempt,
                              detail=f"test AUC {auc:.4f}" if isinstance(auc, float) else "finished")

    def _placed_nodes_lost(self, tracked: _Tracked) -> list[str]:
        """Nodes of the attempt's placement missing from the latest snapshot (dead)."""
        if self.last_state is None:
            return []
        alive = {n.id for n in self.last_state.nodes if n.healthy}
        return sorted({a.node_id[:12] for a in tracked.placement.assignments if a.node_id not in alive})

    def _check_workers(self, record: JobRecord, tracked: _Tracked, status: AttemptStatus) -> None:
        placed = sorted(a.node_id for a in tracked.placement.assignments for _ in range(a.workers))
        ran = sorted(w["node_id"] for w in status.workers)
        if placed != ran:
            self.store.log(record.id, f"WARNING: workers ran on {ran}, the placement named {placed}")

    @staticmethod
    def _workers_detail(tracked: _Tracked, status: AttemptStatus) -> str:
        nodes = sorted({w["node_id"][:12] for w in status.workers})
        p = tracked.placement
        return (f"attempt {tracked.attempt}: {len(status.workers)} worker(s) on {p.kind}({p.model}), node(s) "
                f"{', '.join(nodes)} as placed")

    def _attempt_dir(self, job_id: str, attempt: int) -> Path:
        return self.runs_dir / job_id / f"attempt-{attempt}"

    def _record_checkpoints(self, record: JobRecord, tracked: _Tracked, token: int) -> None:
        """Record each checkpoint the attempt persisted, once, with the sha256 its writer
        computed. One whose files do not (yet) match it is looked at again next step (Ray Train
        may still be copying it into place) and left out, logged once, while they differ."""
        for meta in sorted(self._attempt_dir(record.id, tracked.attempt).glob(f"checkpoint_*/{CHECKPOINT_META}")):
            path = str(meta.parent)
            if path in tracked.checkpoints_seen:
                continue
            info = json.loads(meta.read_text())
            if checkpoint_digest(meta.parent) != info["sha256"]:
                if path not in tracked.checkpoints_suspect:
                    tracked.checkpoints_suspect.add(path)
                    self.store.log(record.id, f"checkpoint {path} does not match the sha256 its writer recorded "
                                              "(yet); not recorded while it differs")
                continue
            tracked.checkpoints_seen.add(path)
            self.store.record_checkpoint(record.id, tracked.attempt, int(info["epoch"]), path, info["sha256"], token)

    def _record_progress(self, record: JobRecord, tracked: _Tracked, token: int) -> None:
        current = self._attempt_dir(record.id, tracked.attempt) / "progress.jsonl"
        size = current.stat().st_size if current.exists() else 0
        if size == tracked.progress_size:
            return  # no new epoch since the last step (earlier attempts' files no longer change)
        tracked.progress_size = size
        lines = []
        for attempt in range(1, tracked.attempt + 1):
            path = self._attempt_dir(record.id, attempt) / "progress.jsonl"
            if path.exists():
                lines += [{**json.loads(line), "attempt": attempt} for line in path.read_text().splitlines() if line]
        progress = progress_from_epochs(lines, asdict(tracked.placement))
        if progress and progress != record.progress:
            self.store.set_progress(record.id, progress, token)

    # ---- cancellations ---------------------------------------------------------------------
    def _cancel_requested(self, token: int) -> None:
        for record in self.store.list(states=(JobState.STARTING, JobState.RUNNING), cancel_requested=True):
            tracked = self.tracked.get(record.id)
            if tracked is None:
                continue
            self.store.transition(record.id, JobState.STOPPING, detail="cancel requested; stopping the attempt",
                                  expect=(JobState.STARTING, JobState.RUNNING), fence=token, attempt=tracked.attempt)
            self._ask_stop(record, tracked)

    def _ask_stop(self, record: JobRecord, tracked: _Tracked) -> None:
        """Built-in loops stop at their next epoch boundary; a user train_fn (its Ray Train
        placement group removed with it) and a feature task are stopped by force."""
        force = record.train_fn is not None or record.spec.get("_kind") == "features"
        self.backend.stop(tracked.handle, force=force)
        tracked.stop_asked_at = time.time()
        tracked.forced = force

    # ---- scheduling ------------------------------------------------------------------------
    def _schedule(self, token: int) -> None:
        queued = self.store.list(states=(JobState.QUEUED,), cancel_requested=False)
        state = self.take_snapshot()
        if self.federation is not None:
            state = self.federation.merged_state(state, self.held_devices())
        self.last_state = state
        if not queued:
            return
        throughput = self.config.throughput
        requests = {r.id: job_request(r, throughput, state) for r in queued}
        running = []
        for record in self.store.list(states=(JobState.STARTING, JobState.RUNNING)):  # one query, not one per job
            tracked = self.tracked.get(record.id)
            if tracked is not None:
                expected = tracked.started + tracked.placement.predicted_completion_s
                running.append(RunningJob(job_request(record, throughput, state), tracked.placement, tracked.started,
                                          expected))
        limits = self.store.quotas()  # caps as set now (suanli quota set)
        fingerprint = (tuple((r.id, r.updated, r.attempts) for r in queued), tuple((r.request.id, r.request.work)
                       for r in running), tuple((n.id, n.healthy, tuple(d.free for d in n.devices)) for n in state.nodes),
                       repr(sorted(limits.items())))
        if fingerprint == self._last_round and time.time() - self._last_round_at < RESCHEDULE_UNCHANGED_S:
            return  # nothing changed since the last round: the same decisions
        self._last_round, self._last_round_at = fingerprint, time.time()
        config = replace(self.config, limits=limits)
        decisions = schedule(list(requests.values()), state, time.time(), self.policy, running, config)
        lost = self.backend.lost_clusters()
        waiting = list(decisions.waiting)
        for rejection in decisions.rejected:
            if lost:  # the lost clusters' devices may be what it needs: it waits for them
                waiting.append(Waiting(rejection.job_id, f"waits: {rejection.reason.removeprefix('rejected: ')} "
                                                         f"while cluster(s) {', '.join(sorted(lost))} are lost"))
                continue
            self.store.transition(rejection.job_id, JobState.REJECTED, actor="scheduler", detail=rejection.reason,
                                  error=rejection.reason, expect=(JobState.QUEUED,), fence=token)
        for job_id in decisions.preemptions:
            tracked = self.tracked.get(job_id)
            record = self.store.get(job_id)
            if tracked and self.store.transition(job_id, JobState.STOPPING, fence=token, attempt=tracked.attempt,
                                                 detail="preempted by the scheduler; resumes from its latest "
                                                        "checkpoint once a placement frees up",
                                                 expect=(JobState.STARTING, JobState.RUNNING)):
                self._ask_stop(record, tracked)
        waiting = [self._pinned_to_lost(w, lost, requests[w.job_id]) for w in waiting]
        changed = [w for w in waiting if self._last_reason.get(w.job_id) != w.reason]
        self._last_reason.update((w.job_id, w.reason) for w in changed)
        # one transaction: the API's writes do not queue behind a round
        self.store.note_waiting([(w.job_id, w.reason, w.next_estimated_start) for w in changed])
        labels = {n.id: n for n in state.nodes}
        for placement in decisions.placements:
            self._launch(self.store.get(placement.job_id), placement, labels, token)

    @staticmethod
    def _pinned_to_lost(waiting: Waiting, lost: dict[str, float], request) -> Waiting:
        """A job restricted to clusters that are all lost says so."""
        if request.clusters and all(c in lost for c in request.clusters):
            since = ", ".join(f"{c} lost {time.strftime('%H:%M:%S', time.localtime(lost[c]))}"
                              for c in request.clusters)
            return Waiting(waiting.job_id, f"waits: the job may run only on {', '.join(request.clusters)}; {since}")
        return waiting

    def _launch(self, record: JobRecord, placement: Placement, nodes: dict, token: int) -> None:
        checkpoints = [c for c in self.store.checkpoints(record.id) if Path(c["path"], CHECKPOINT_META).exists()]
        resume = checkpoints[-1] if checkpoints else None
        number = record.attempts + 1
        run_dir = self._attempt_dir(record.id, number)
        emulated = any(nodes[a.node_id].emulated for a in placement.assignments if a.node_id in nodes)
        spec = record.spec
        if spec.get("_kind") == "features":
            launch = LaunchSpec(job_id=record.id, attempt=number, run_dir=str(run_dir), kind="features",
                                loop_config={k: spec[k] for k in FEATURE_KEYS}, cluster=placement.cluster)
        else:
            loop_config = {k: spec.get(k) for k in LOOP_KEYS}
            loop_config.update(spec.get("config") or {})
            loop_config["collective_backend"] = collective_backend(placement.kind, emulated)
            loop_config["device_kind"] = compute_kind(placement.kind, emulated)
            launch = LaunchSpec(job_id=record.id, attempt=number, run_dir=str(run_dir), loop_config=loop_config,
                                train_fn=record.train_fn, resume_path=resume["path"] if resume else None,
                                resume_sha256=resume["sha256"] if resume else None, cluster=placement.cluster)
        where = nodes.get(placement.assignments[0].node_id)
        site = f" on cluster {placement.cluster}" + (f" at {where.site} ({where.tier})" if where else "")
        data = spec.get("data_site")
        detail = (f"placed on {placement.kind}({placement.model}) x{sum(a.workers for a in placement.assignments)}"
                  f"{site}, node(s) {', '.join(sorted({a.node_id[:12] for a in placement.assignments}))}: predicted "
                  f"completion {placement.predicted_completion_s:.3g} s (transfer {placement.transfer_s:.3g} s + "
                  f"compute {placement.compute_s:.3g} s)" + (f"; data at {data}" if data else "")
                  + (f"; {placement.note}" if placement.note else "")
                  + (f"; resuming from epoch {resume['epoch']}" if resume else ""))
        previous = self.store.attempt(record.id, record.attempts) if record.attempts else None
        if previous is not None and previous.outcome in ("fenced", "fenced-stopped"):
            detail = f"{previous.error}; resumed on cluster {placement.cluster} " + (
                f"from epoch {resume['epoch']}" if resume else "from the start") + f" ({detail})"
        handle = self.backend.handle_for(launch, placement.cluster)  # stored before launching: a successor finds it
        if self.store.start_attempt(record.id, asdict(placement), self.backend.name_for(placement.cluster), token,
                                    detail, handle) != number:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.backend.launch(placement, launch)
        except Exception as exc:  # noqa: BLE001 - a launch the cluster refused goes back to the queue
            self.store.update_attempt(record.id, number, token, state="ended", outcome="lost", error=str(exc),
                                      ended=time.time())
            self.store.transition(record.id, JobState.QUEUED, fence=token, detail=f"launch failed: {exc}")
            return
        self.tracked[record.id] = _Tracked(number, handle, placement, time.time())
