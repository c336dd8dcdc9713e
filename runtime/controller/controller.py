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

Failures are per job: a file of a run directory that cannot be trusted (a user's code can write
there) fails that job with a `RunFileError` naming the file; any other error while following one
job is counted against that job, which fails after MAX_JOB_STEP_ERRORS in a row, and never stops
the other jobs or the loop. An attempt's end and its job's move are one store transaction.

Logging: whatever is done for one job runs inside `log_ids(job=..., attempt=..., cluster=...)`
(runtime.log_context), so every line logged meanwhile names them, the store's job events included
(one line per move, written by the server's `log_job_event` listener). The controller itself logs,
at WARNING, what the events do not say: a failed or lost attempt's error, a failover, a launch the
cluster refused, a forced stop, a checkpoint or worker placement that does not match, a failed
evaluation, and each unexpected error (with its traceback); at INFO, an adopted attempt.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import cluster
from runtime.backends.base import AttemptStatus, ClusterBackend, LaunchSpec
from runtime.backends.federated import FederatedBackend
from runtime.controller.failure_policy import FailurePolicy
from runtime.controller.finish import finish_job
from runtime.controller.lease_keeper import LeaseKeeper
from runtime.controller.requests import job_request, progress_from_epochs
from runtime.log_context import log_ids
from runtime.rundir import CHECKPOINT_META, RunFileError, RunsDir
from runtime.specs import FEATURE_LOOP_FIELDS, LOOP_FIELDS, JobState
from runtime.store import FencedOut, JobRecord, Move, Store
from runtime.training.checkpoints import checkpoint_digest
from runtime.training.devices import collective_backend, compute_kind
from schedulers.engine import RunningJob, SchedulerConfig, schedule
from schedulers.policies import make_policy
from schedulers.types import ClusterState, Placement, Waiting

log = logging.getLogger(__name__)

MAX_JOB_STEP_ERRORS = 3  # unexpected errors in a row while following one job before it fails
FULL_SYNC_S = 10.0  # the queue's ids and versions are all read again this often
CLOCK_MARGIN_S = 5.0  # writes are read again this long after their writer's clock says they happened
RESCHEDULE_UNCHANGED_S = 10.0  # an unchanged queue and cluster is still rescheduled this often (ageing)


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
    failing: tuple[str, Future] | None = None  # (why it fails, its forced stop running off the step)


class JobController:
    """Owns the queue's progress while `lease` is held. `start()` runs `step()` every `poll_s`."""

    def __init__(self, store: Store, backend: ClusterBackend, lease: LeaseKeeper, runs_dir: str | Path,
                 policy: str = "hetero", config: SchedulerConfig | None = None, poll_s: float = 0.5,
                 stop_grace_s: float = 30.0, snapshot=None, federation=None):
        self.store = store
        self.backend = backend if isinstance(backend, FederatedBackend) else FederatedBackend(backend)
        self.federation = federation
        self.lease = lease
        self.runs_dir = Path(runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.runs = RunsDir(self.runs_dir)
        self._job_errors: dict[str, int] = {}  # unexpected errors in a row, per job
        self.round_stages_s: dict[str, float] = {}  # the last scheduling round's time, by stage
        self._queued_cache: dict[str, tuple[float, JobRecord]] = {}  # job id: (updated, record)
        self._queue_synced_at = 0.0  # when the whole queue's ids and versions were last read
        self._queue_seen_until = 0.0  # the newest `updated` read so far
        self._request_cache: dict[str, tuple[float, object]] = {}  # job id: (updated, JobRequest)
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
        self.slowest_step: dict = {"seconds": 0.0}  # the longest step so far, and where its time went
        self._token: int | None = None
        self._last_reason: dict[str, str] = {}
        self._last_round: tuple = ()
        self._last_round_at = 0.0
        self._stale_checked_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # forced stops of failing attempts (Ray calls of seconds each) run here, never in a step
        self._stopper = ThreadPoolExecutor(max_workers=4, thread_name_prefix="suanli-stop")

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="suanli-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=60)
        self._stopper.shutdown(wait=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except FencedOut as exc:
                log.warning("controller fenced out: %s", exc)
                self.lease.lost()
                self._forget()
            except Exception as exc:  # one bad step is counted, shown and logged; the loop goes on
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
        started = clock = time.perf_counter()
        stages: dict[str, float] = {}
        if token != self._token:
            self._forget()
            self._adopt(token)
            self._token = token
            stages["adopt"], clock = time.perf_counter() - clock, time.perf_counter()
        for stage, run in (("follow", self._follow), ("stale runs", self._stop_stale_runs),
                           ("cancellations", self._cancel_requested), ("schedule", self._schedule)):
            run(token)
            stages[stage], clock = time.perf_counter() - clock, time.perf_counter()
        self.last_step_at = time.time()
        took = time.perf_counter() - started
        if took > self.slowest_step["seconds"]:
            self.slowest_step = {"seconds": round(took, 3), "at": self.last_step_at,
                                 "stages_s": {k: round(v, 3) for k, v in stages.items()},
                                 "schedule_stages_s": {k: round(v, 3) for k, v in self.round_stages_s.items()}}

    def _adopt(self, token: int) -> None:
        """Follow every open attempt the store knows (launched by us before a restart, or by a
        holder that lost the lease); requeue or fail only those the cluster no longer has."""
        for attempt in self.store.attempts.open():
            with log_ids(job=attempt.job_id, attempt=attempt.number, cluster=(attempt.placement or {}).get("cluster")):
                try:
                    self._adopt_one(attempt, token)
                except FencedOut:
                    raise
                except Exception as exc:  # noqa: BLE001 - one job's failure is that job's (logged with its ids), never the loop's
                    self._job_error(attempt.job_id, token, exc)
        self._repair_orphans(token)

    def _repair_orphans(self, token: int) -> None:
        """An active job whose latest attempt has ended (a crash between two writes of an older
        version) is moved on as its attempt's end would have moved it: requeued, or cancelled."""
        for record in self.store.jobs.list(states=(JobState.STARTING, JobState.RUNNING, JobState.STOPPING)):
            if record.id in self.tracked:
                continue
            latest = self.store.attempts.get(record.id, record.attempts) if record.attempts else None
            if latest is not None and latest.state != "ended":
                continue
            detail = (f"attempt {record.attempts} had ended while the job was still {record.state.value}; "
                      "repaired on adoption")
            moves = [] if record.state == JobState.STOPPING else [Move(JobState.STOPPING, detail)]
            moves.append(Move(JobState.CANCELLED, detail) if record.cancel_requested
                         else Move(JobState.QUEUED, f"{detail}: resumes from its latest checkpoint"))
            with log_ids(job=record.id, attempt=record.attempts or None):
                log.warning("repairing on adoption: %s", detail)
                self.store.jobs.move(record.id, moves, fence=token, expect=(record.state,), attempt=record.attempts or None)

    def _adopt_one(self, attempt, token: int) -> None:
        record = self.store.jobs.get(attempt.job_id)
        placement = Placement.from_dict(attempt.placement)
        tracked = _Tracked(attempt.number, attempt.handle, placement, attempt.started)
        self.tracked[record.id] = tracked
        if attempt.number != record.attempts or not record.state.active:
            self._settle(record, tracked, AttemptStatus("stopped"), token, stale=True)
            return
        status = self.backend.poll(attempt.handle)
        log.info("adopted the open attempt: %s in the cluster", status.phase)
        self.store.logs.append(record.id, f"controller (lease token {token}) adopted attempt {attempt.number}: "
                                  f"{status.phase} in the cluster")
        if record.state == JobState.STOPPING:
            self._ask_stop(record, tracked)  # the old holder may have died before asking

    def _follow(self, token: int) -> None:
        for job_id, tracked in list(self.tracked.items()):
            with log_ids(job=job_id, attempt=tracked.attempt, cluster=tracked.placement.cluster):
                try:
                    if tracked.failing is not None:
                        self._end_failing(job_id, tracked, token)
                        continue
                    self._follow_one(job_id, tracked, token)
                    self._job_errors.pop(job_id, None)
                except FencedOut:
                    raise
                except RunFileError as exc:
                    self._fail(job_id, tracked, token, f"run directory: {exc}")
                except Exception as exc:  # noqa: BLE001 - one job's failure is that job's (logged with its ids), never the loop's
                    self._job_error(job_id, token, exc)

    def _job_error(self, job_id: str, token: int, exc: Exception) -> None:
        """An unexpected error while handling one job: logged and counted; the job fails once
        MAX_JOB_STEP_ERRORS happened in a row (the others go on either way)."""
        self.step_failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.exception("controller step failed for this job")
        errors = self._job_errors[job_id] = self._job_errors.get(job_id, 0) + 1
        if errors >= MAX_JOB_STEP_ERRORS:
            self._job_errors.pop(job_id, None)
            self._fail(job_id, self.tracked.get(job_id), token,
                       f"the controller failed {errors} times in a row following it: {type(exc).__name__}: {exc}")

    def _fail(self, job_id: str, tracked: _Tracked | None, token: int, reason: str) -> None:
        """Fail one job. Without an attempt it fails now; with one, the attempt is marked stopping
        (a fenced write, first) and stopped by force off the controller's step, and a later step
        ends it with the job in one write (`_end_failing`): a crash in between leaves an open
        attempt that the next holder adopts, never a running attempt of an ended job."""
        if tracked is not None and tracked.failing is not None:
            return  # already being stopped
        record = self.store.jobs.get(job_id)
        if record.state.finished:
            self.tracked.pop(job_id, None)
            return
        if tracked is None:
            moves = [Move(JobState.FAILED, reason, fields={"error": reason, "failures": record.failures + 1})]
            self.store.jobs.move(job_id, moves, fence=token)
            return
        self.store.attempts.update(job_id, tracked.attempt, token, state="stopping")  # fenced, first
        self.store.logs.append(job_id, f"attempt {tracked.attempt} fails ({reason}); stopping it by force")
        log.warning("attempt fails (%s); stopping it by force", reason)
        tracked.failing = (reason, self._stopper.submit(self._stop_and_release, tracked.handle))

    def _stop_and_release(self, handle: dict) -> None:
        """Off the step: stop an attempt by force and release its devices."""
        try:
            self.backend.stop(handle, force=True)
        finally:
            self.backend.release(handle)

    def _end_failing(self, job_id: str, tracked: _Tracked, token: int) -> None:
        """Once a failing attempt's forced stop is over, end it and fail its job in one write."""
        reason, stopping = tracked.failing
        if not stopping.done():
            return
        if stopping.exception() is not None:
            log.warning("stopping the attempt by force raised %s", stopping.exception())
        record = self.store.jobs.get(job_id)
        moves = [] if record.state.finished else [
            Move(JobState.FAILED, reason, fields={"error": reason, "failures": record.failures + 1})]
        self.store.attempts.end(job_id, tracked.attempt, token, outcome="failed", error=reason, moves=moves)
        self.tracked.pop(job_id, None)

    def _follow_one(self, job_id: str, tracked: _Tracked, token: int) -> None:
        record = self.store.jobs.get(job_id)
        lost_since = self.backend.lost_since(tracked.placement.cluster)
        if lost_since is not None:
            self._fence(record, tracked, lost_since, token)
            return
        status = self.backend.poll(tracked.handle)
        self._record_checkpoints(record, tracked, token)
        if status.workers and record.state == JobState.STARTING:
            self._check_workers(record, tracked, status)
            self.store.jobs.transition(job_id, JobState.RUNNING, detail=self._workers_detail(tracked, status),
                                  expect=(JobState.STARTING,), fence=token, attempt=tracked.attempt)
            self.store.attempts.update(job_id, tracked.attempt, token, state="running")
        if record.state in (JobState.STARTING, JobState.RUNNING):
            self._record_progress(record, tracked, token)
        lost = self._placed_nodes_lost(tracked) if record.state == JobState.STARTING and not status.ended else None
        if lost:  # its workers can never start where they were placed: stop it, let the policy decide
            self.store.attempts.update(job_id, tracked.attempt, token, state="stopping")  # fenced, first
            self.backend.stop(tracked.handle, force=True)
            status = AttemptStatus("lost", error=f"node(s) {', '.join(lost)} of the placement were lost before "
                                                 "its workers started")
        if status.ended:
            self._settle(self.store.jobs.get(job_id), tracked, status, token)
        elif (record.state == JobState.STOPPING and tracked.stop_asked_at and not tracked.forced
              and time.time() - tracked.stop_asked_at > self.stop_grace_s):
            self.store.attempts.update(job_id, tracked.attempt, token, state="stopping")  # fenced, first
            self.store.logs.append(job_id, f"attempt {tracked.attempt} did not stop within {self.stop_grace_s:g} s; "
                                   "stopping it by force")
            log.warning("the attempt did not stop within %g s; stopping it by force", self.stop_grace_s)
            self.backend.stop(tracked.handle, force=True)
            tracked.forced = True

    def _settle(self, record: JobRecord, tracked: _Tracked, status: AttemptStatus, token: int,
                stale: bool = False) -> None:
        """An attempt ended: record how (a fenced write first: a holder that lost the lease must
        not touch the cluster either), release it, and move the job on."""
        self._record_checkpoints(record, tracked, token)
        # a fenced write first: a holder that lost the lease must not touch the cluster either
        self.store.attempts.update(record.id, tracked.attempt, token, state="stopping")
        if stale:
            self.backend.stop(tracked.handle, force=True)
        self.backend.release(tracked.handle)
        if status.traceback and not stale:
            self.store.logs.append(record.id, f"attempt {tracked.attempt} {status.phase}:\n{status.traceback}")
        moves = [] if stale else self._moves_after(record, tracked, status, token)
        if status.phase in ("failed", "lost"):
            log.warning("attempt %s: %s", status.phase, status.error or "no error given")
        self.store.attempts.end(record.id, tracked.attempt, token, outcome=status.phase, error=status.error, moves=moves)
        self.tracked.pop(record.id, None)

    def _moves_after(self, record: JobRecord, tracked: _Tracked, status: AttemptStatus, token: int) -> list[Move]:
        """Where the job goes now that its attempt ended as `status` (written with the attempt's end)."""
        state = record.state
        if state == JobState.STOPPING and not (status.phase == "succeeded" and not record.cancel_requested):
            if record.cancel_requested:
                return [Move(JobState.CANCELLED, f"attempt {tracked.attempt} stopped and released its devices")]
            return [Move(JobState.QUEUED, f"attempt {tracked.attempt} stopped and released its devices; the job "
                                          "waits to resume from its latest checkpoint")]
        if status.phase == "succeeded":
            moves = [Move(JobState.RUNNING, self._workers_detail(tracked, status))] if state == JobState.STARTING else []
            return moves + [self._success(record, tracked, status)]
        decision = self.failure_policy.decide(record, status)
        if decision.action == "retry":
            return [Move(JobState.STOPPING, decision.reason),
                    Move(JobState.QUEUED, "resumes from its latest checkpoint on a new placement",
                         fields={"failures": record.failures + 1})]
        return [Move(JobState.FAILED, decision.reason, fields={"error": decision.reason, "failures": record.failures + 1})]

    def _fence(self, record: JobRecord, tracked: _Tracked, lost_since: float, token: int) -> None:
        """The attempt's cluster was lost: end the attempt as fenced (a fenced write, first), mark
        its directory so the run stops and reports nothing, and requeue the job (no retry used)."""
        cluster_name = tracked.placement.cluster
        at = time.strftime("%H:%M:%S", time.localtime(lost_since))
        latest = self.store.checkpoints.of(record.id)
        resume = f"from epoch {latest[-1]['epoch']}" if latest else "from the start (no checkpoint yet)"
        reason = f"cluster {cluster_name} lost {at}; attempt {tracked.attempt} fenced"
        moves = [Move(JobState.STOPPING, reason)] if record.state in (JobState.STARTING, JobState.RUNNING) else []
        moves.append(Move(JobState.CANCELLED, f"{reason}; cancelled as requested") if record.cancel_requested
                     else Move(JobState.QUEUED, f"{reason}; resumes {resume} on another cluster"))
        log.warning("failover: %s; the job moves to %s", reason, moves[-1].state.value)
        self.store.attempts.end(record.id, tracked.attempt, token, outcome="fenced",
                               error=f"cluster {cluster_name} lost {at}", moves=moves)
        self.tracked.pop(record.id, None)
        self.backend.fence(tracked.handle)

    def _stop_stale_runs(self, token: int) -> None:
        """Stop the Ray job of each fenced attempt whose cluster answers again (every 2 s)."""
        if self.federation is None or time.time() - self._stale_checked_at < 2.0:
            return
        self._stale_checked_at = time.time()
        for attempt in self.store.attempts.fenced():
            cluster_name = attempt.handle.get("cluster") if attempt.handle else None
            if cluster_name is None or self.federation.health(cluster_name) != "healthy":
                continue
            with log_ids(job=attempt.job_id, attempt=attempt.number, cluster=cluster_name):
                self.backend.stop(attempt.handle, force=True)
                self.store.attempts.update(attempt.job_id, attempt.number, token, outcome="fenced-stopped")
                self.store.jobs.note(attempt.job_id, f"cluster {cluster_name} answers again; the stale run of attempt "
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

    def _success(self, record: JobRecord, tracked: _Tracked, status: AttemptStatus) -> Move:
        """SUCCEEDED with the job's result (its evaluation checked and its provenance written), or
        FAILED when the evaluation cannot be trusted."""
        if record.spec.get("_kind") == "features":
            result = {"kind": "features", **status.metrics, "placement": tracked.placement.to_dict()}
            return Move(JobState.SUCCEEDED, f"{status.metrics.get('rows')} rows of features in "
                                            f"{status.metrics.get('seconds')} s on {status.metrics.get('device')}",
                        fields={"result": result})
        try:
            result = finish_job(self.store, record, tracked.placement, status, self.runs.job(record.id), tracked.started)
        except Exception as exc:  # noqa: BLE001 - an evaluation failure (whatever it is) fails the job, not the controller
            import traceback

            log.warning("evaluation failed: %s (the traceback is in the job's log)", type(exc).__name__)
            self.store.logs.append(record.id, "evaluation failed:\n" + traceback.format_exc())
            return Move(JobState.FAILED, f"evaluation failed: {exc}",
                        fields={"error": f"evaluation failed: {type(exc).__name__}: {exc}"})
        auc = result["metrics"].get("auc")
        return Move(JobState.SUCCEEDED, f"test AUC {auc:.4f}" if isinstance(auc, float) else "finished",
                    fields={"result": result})

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
            log.warning("workers ran on %s, the placement named %s", ran, placed)
            self.store.logs.append(record.id, f"WARNING: workers ran on {ran}, the placement named {placed}")

    @staticmethod
    def _workers_detail(tracked: _Tracked, status: AttemptStatus) -> str:
        nodes = sorted({w["node_id"][:12] for w in status.workers})
        p = tracked.placement
        return (f"attempt {tracked.attempt}: {len(status.workers)} worker(s) on {p.kind}({p.model}), node(s) "
                f"{', '.join(nodes)} as placed")

    def _record_checkpoints(self, record: JobRecord, tracked: _Tracked, token: int) -> None:
        """Record each checkpoint the attempt persisted, once, with the sha256 its writer
        computed. One whose files do not (yet) match it is looked at again next step (Ray Train
        may still be copying it into place) and left out, logged once, while they differ."""
        for directory, info in self.runs.attempt(record.id, tracked.attempt).checkpoints(skip=tracked.checkpoints_seen):
            path = str(directory)
            try:
                digest = checkpoint_digest(directory)
            except ValueError as exc:  # a link or a device planted inside it
                raise RunFileError(str(exc)) from None
            if digest != info["sha256"]:
                if path not in tracked.checkpoints_suspect:
                    tracked.checkpoints_suspect.add(path)
                    log.warning("checkpoint %s does not match the sha256 its writer recorded (yet)", directory.name)
                    self.store.logs.append(record.id, f"checkpoint {path} does not match the sha256 its writer recorded "
                                              "(yet); not recorded while it differs")
                continue
            tracked.checkpoints_seen.add(path)
            self.store.checkpoints.record(record.id, tracked.attempt, int(info["epoch"]), path, info["sha256"], token)

    def _record_progress(self, record: JobRecord, tracked: _Tracked, token: int) -> None:
        """The job's measured progress from every attempt's progress lines (RunFileError naming the
        file and line when one cannot be trusted)."""
        size = self.runs.attempt(record.id, tracked.attempt).progress_size()
        if size == tracked.progress_size:
            return  # no new epoch since the last step (earlier attempts' files no longer change)
        tracked.progress_size = size
        lines = []
        for attempt in range(1, tracked.attempt + 1):
            lines += [{**line, "attempt": attempt} for line in self.runs.attempt(record.id, attempt).progress()]
        progress = progress_from_epochs(lines, tracked.placement)
        if progress and progress != record.progress:
            self.store.jobs.set_progress(record.id, progress, token)

    # ---- cancellations ---------------------------------------------------------------------
    def _cancel_requested(self, token: int) -> None:
        for record in self.store.jobs.list(states=(JobState.STARTING, JobState.RUNNING), cancel_requested=True):
            tracked = self.tracked.get(record.id)
            if tracked is None or tracked.failing is not None:
                continue
            with log_ids(job=record.id, attempt=tracked.attempt, cluster=tracked.placement.cluster):
                self.store.jobs.transition(record.id, JobState.STOPPING, detail="cancel requested; stopping the attempt",
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
        """One scheduling round; `round_stages_s` says where its time went (read: the store and
        the snapshot; requests: the scheduler's view of each job; decide: the policy; write: the
        decisions stored and carried out)."""
        clock = time.perf_counter()
        stages = self.round_stages_s = {"read": 0.0, "requests": 0.0, "decide": 0.0, "write": 0.0}
        queued = self._queued()
        state = self.take_snapshot()
        if self.federation is not None:
            state = self.federation.merged_state(state, self.held_devices())
        self.last_state = state
        if not queued:
            return
        active = self.store.jobs.list(states=(JobState.STARTING, JobState.RUNNING))  # one query, not one per job
        limits = self.store.quotas.all()  # caps as set now (suanli quota set)
        stages["read"], clock = time.perf_counter() - clock, time.perf_counter()
        throughput = self.config.throughput
        requests = {}
        for record in queued:
            try:
                requests[record.id] = self._request(record, state)
            except (KeyError, TypeError, ValueError) as exc:  # a stored spec this version cannot read
                self._fail(record.id, None, token, f"the stored job cannot be scheduled: {type(exc).__name__}: {exc}")
        running = []
        for record in active:
            tracked = self.tracked.get(record.id)
            if tracked is not None:
                expected = tracked.started + tracked.placement.predicted_completion_s
                running.append(RunningJob(job_request(record, throughput, state), tracked.placement, tracked.started,
                                          expected))
        fingerprint = (tuple((r.id, r.updated, r.attempts) for r in queued), tuple((r.request.id, r.request.work)
                       for r in running), tuple((n.id, n.healthy, tuple(d.free for d in n.devices)) for n in state.nodes),
                       repr(sorted(limits.items())))
        if fingerprint == self._last_round and time.time() - self._last_round_at < RESCHEDULE_UNCHANGED_S:
            return  # nothing changed since the last round: the same decisions
        self._last_round, self._last_round_at = fingerprint, time.time()
        config = replace(self.config, limits=limits)
        stages["requests"], clock = time.perf_counter() - clock, time.perf_counter()
        decisions = schedule(list(requests.values()), state, time.time(), self.policy, running, config)
        stages["decide"], clock = time.perf_counter() - clock, time.perf_counter()
        lost = self.backend.lost_clusters()
        waiting = list(decisions.waiting)
        for rejection in decisions.rejected:
            if lost:  # the lost clusters' devices may be what it needs: it waits for them
                waiting.append(Waiting(rejection.job_id, f"waits: {rejection.reason.removeprefix('rejected: ')} "
                                                         f"while cluster(s) {', '.join(sorted(lost))} are lost"))
                continue
            self.store.jobs.transition(rejection.job_id, JobState.REJECTED, actor="scheduler", detail=rejection.reason,
                                  error=rejection.reason, expect=(JobState.QUEUED,), fence=token)
        for job_id in decisions.preemptions:
            tracked = self.tracked.get(job_id)
            if tracked is None or tracked.failing is not None:
                continue
            record = self.store.jobs.get(job_id)
            with log_ids(job=job_id, attempt=tracked.attempt, cluster=tracked.placement.cluster):
                if self.store.jobs.transition(job_id, JobState.STOPPING, fence=token, attempt=tracked.attempt,
                                         detail="preempted by the scheduler; resumes from its latest "
                                                "checkpoint once a placement frees up",
                                         expect=(JobState.STARTING, JobState.RUNNING)):
                    self._ask_stop(record, tracked)
        waiting = [self._pinned_to_lost(w, lost, requests[w.job_id]) for w in waiting]
        changed = [w for w in waiting if self._last_reason.get(w.job_id) != w.reason]
        self._last_reason.update((w.job_id, w.reason) for w in changed)
        # one transaction: the API's writes do not queue behind a round
        self.store.waiting.note([(w.job_id, w.reason, w.next_estimated_start) for w in changed])
        labels = {n.id: n for n in state.nodes}
        for placement in decisions.placements:
            with log_ids(job=placement.job_id, cluster=placement.cluster):
                try:
                    self._launch(self.store.jobs.get(placement.job_id), placement, labels, token)
                except FencedOut:
                    raise
                except Exception as exc:  # noqa: BLE001 - one job's failure is that job's (logged with its ids), never the round's
                    self._job_error(placement.job_id, token, exc)
        stages["write"] = time.perf_counter() - clock

    def _queued(self) -> list[JobRecord]:
        """The QUEUED jobs not being cancelled, in submission order, read incrementally: each round
        reads only the jobs written since the last one (less CLOCK_MARGIN_S, for writers whose
        clocks differ) and, in full, those that changed; every FULL_SYNC_S the whole list of ids
        and versions is read again, so a change missed by the margin waits at most that long."""
        cache = self._queued_cache
        now = time.time()
        if now - self._queue_synced_at > FULL_SYNC_S:
            rows = [(job_id, updated, JobState.QUEUED, False)
                    for job_id, updated in self.store.jobs.versions((JobState.QUEUED,), cancel_requested=False)]
            for job_id in set(cache) - {row[0] for row in rows}:
                del cache[job_id]
            self._queue_synced_at = now
        else:
            rows = self.store.jobs.changed_since(self._queue_seen_until - CLOCK_MARGIN_S)
        stale = []
        for job_id, updated, state, cancel_requested in rows:
            self._queue_seen_until = max(self._queue_seen_until, updated)
            if state != JobState.QUEUED or cancel_requested:
                cache.pop(job_id, None)
            elif cache.get(job_id, (None,))[0] != updated:
                stale.append(job_id)
        for job_id, record in self.store.jobs.records(stale).items():
            if record.state == JobState.QUEUED and not record.cancel_requested:
                cache[job_id] = (record.updated, record)
            else:
                cache.pop(job_id, None)
        for job_id in [k for k in self._request_cache if k not in cache]:
            del self._request_cache[job_id]
        return sorted((record for _, record in cache.values()), key=lambda r: r.created)

    def _request(self, record: JobRecord, state: ClusterState):
        """The scheduler's view of a queued job, kept while the job is unchanged (one with measured
        epoch times depends on the cluster's device models too: computed each round)."""
        if (record.progress or {}).get("seconds_per_epoch"):
            return job_request(record, self.config.throughput, state)
        cached = self._request_cache.get(record.id)
        if cached is None or cached[0] != record.updated:
            cached = self._request_cache[record.id] = (record.updated, job_request(record, self.config.throughput, state))
        return cached[1]

    @staticmethod
    def _pinned_to_lost(waiting: Waiting, lost: dict[str, float], request) -> Waiting:
        """A job restricted to clusters that are all lost says so."""
        if request.clusters and all(c in lost for c in request.clusters):
            since = ", ".join(f"{c} lost {time.strftime('%H:%M:%S', time.localtime(lost[c]))}"
                              for c in request.clusters)
            return Waiting(waiting.job_id, f"waits: the job may run only on {', '.join(request.clusters)}; {since}")
        return waiting

    def _launch(self, record: JobRecord, placement: Placement, nodes: dict, token: int) -> None:
        checkpoints = [c for c in self.store.checkpoints.of(record.id) if Path(c["path"], CHECKPOINT_META).exists()]
        resume = checkpoints[-1] if checkpoints else None
        number = record.attempts + 1
        attempt_dir = self.runs.attempt(record.id, number)
        run_dir = attempt_dir.path
        emulated = any(nodes[a.node_id].emulated for a in placement.assignments if a.node_id in nodes)
        spec = record.spec
        if spec.get("_kind") == "features":
            launch = LaunchSpec(job_id=record.id, attempt=number, run_dir=str(run_dir), kind="features",
                                loop_config={k: spec[k] for k in FEATURE_LOOP_FIELDS}, cluster=placement.cluster)
        else:
            loop_config = {k: spec.get(k) for k in LOOP_FIELDS}
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
        previous = self.store.attempts.get(record.id, record.attempts) if record.attempts else None
        if previous is not None and previous.outcome in ("fenced", "fenced-stopped"):
            detail = f"{previous.error}; resumed on cluster {placement.cluster} " + (
                f"from epoch {resume['epoch']}" if resume else "from the start") + f" ({detail})"
        handle = self.backend.handle_for(launch, placement.cluster)  # stored before launching: a successor finds it
        if self.store.attempts.start(record.id, placement.to_dict(), self.backend.name_for(placement.cluster), token,
                                    detail, handle) != number:
            return
        with log_ids(attempt=number):
            try:
                attempt_dir.create()
                self.backend.launch(placement, launch)
            except Exception as exc:  # noqa: BLE001 - whatever the cluster raised, the launch failed: logged, requeued
                log.warning("launch failed, the job goes back to the queue: %s: %s", type(exc).__name__, exc)
                self.store.attempts.end(record.id, number, token, outcome="lost", error=str(exc),
                                       moves=[Move(JobState.QUEUED, f"launch failed: {exc}")])
                return
        self.tracked[record.id] = _Tracked(number, handle, placement, time.time())
