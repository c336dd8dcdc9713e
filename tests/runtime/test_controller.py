"""The controller's decisions over a real store and lease, with a scripted backend standing in for
the cluster (the Ray backend itself is exercised in test_control_plane.py): preemption does not
consume the retry budget, failures do, a new lease holder adopts running attempts instead of
relaunching them, a stale holder's writes are refused, and production requests carry measured
progress so `hetero` re-ranks running jobs."""

import threading
import time
from dataclasses import replace

import pytest

from runtime.backends.base import AttemptStatus
from runtime.controller.controller import JobController
from runtime.controller.lease_keeper import LeaseKeeper
from runtime.controller.requests import job_request, progress_from_epochs
from runtime.specs import JobState
from runtime.store import FencedOut, open_store
from schedulers.engine import RunningJob, SchedulerConfig, schedule
from schedulers.policies import make_policy
from schedulers.throughput import ThroughputModel
from schedulers.types import ClusterState, Device, Node, Placement
from tests.schedulers.helpers import cpu, node, state

CORES = 2


class ScriptedCluster:
    """One node with CORES cores; attempts hold their cores until their phase ends."""

    name = "scripted"

    def __init__(self):
        self.phase, self.placements, self.launched, self.stops, self.errors = {}, {}, [], [], {}
        self.nodes = {"n1": CORES}
        self.hold_start = False  # launched attempts stay "starting" (their workers never come up)

    def handle_for(self, spec):
        return {"actor": f"{spec.job_id}.{spec.attempt}", "run_dir": spec.run_dir}

    def launch(self, placement, spec):
        actor = f"{spec.job_id}.{spec.attempt}"
        self.launched.append(actor)
        self.placements[actor] = placement
        self.phase[actor] = "starting" if self.hold_start else "running"

    def poll(self, handle):
        actor = handle["actor"]
        phase = self.phase.get(actor, "lost")
        placement = self.placements.get(actor)
        workers = tuple({"rank": i, "node_id": a.node_id} for i, a in enumerate(placement.assignments)) if placement else ()
        if phase == "starting":
            workers = ()
        return AttemptStatus(phase, error=self.errors.get(actor), workers=workers)

    def stop(self, handle, force=False):
        self.stops.append((handle["actor"], force))
        self.phase[handle["actor"]] = "stopped"

    def release(self, handle):
        self.phase.pop(handle["actor"], None)

    def snapshot(self):
        used = {name: 0 for name in self.nodes}
        for actor, phase in self.phase.items():
            if phase in ("running", "starting"):
                for a in self.placements[actor].assignments:
                    used[a.node_id] = used.get(a.node_id, 0) + a.workers
        return ClusterState(nodes=tuple(Node(name, "c1", "center", "dc1", (Device("cpu", "Xeon", cores,
                                                                                  in_use=used[name]),))
                                        for name, cores in self.nodes.items()), taken_at=time.time())


@pytest.fixture
def setup(tmp_path):
    store = open_store(tmp_path / "state")
    cluster = ScriptedCluster()

    def controller(holder, ttl=8.0):
        keeper = LeaseKeeper(store.leases, holder=holder, ttl_s=ttl, renew_s=min(2.0, ttl / 3))
        keeper.renew()
        return JobController(store, cluster, keeper, tmp_path / "runs", policy="hetero",
                             config=SchedulerConfig(min_run_before_preempt_s=0.0), snapshot=cluster.snapshot)

    yield store, cluster, controller
    store.close()


def submit(store, name, priority=0, workers=2, max_failures=1):
    spec = {"epochs": 5, "priority": priority, "workers": workers, "latency": "batch", "preemptible": True,
            "max_failures": max_failures, "_device_kinds": ["cpu"], "_device_model": None, "_algorithm": "generic",
            "config": {}}
    return store.jobs.add(name, "risk", "alice", spec, b"user code bytes")


def step_until(ctl, done, steps: int = 100) -> None:
    """Step `ctl` until `done()` (forced stops of failing attempts run off the step), at most `steps`."""
    for _ in range(steps):
        if done():
            return
        ctl.step()
        time.sleep(0.02)
    assert done(), f"not done after {steps} steps"


def states(store, job_id):
    return [e["kind"] for e in store.jobs.events(job_id) if e["kind"].isupper()]


def test_preemption_is_free_failures_spend_the_budget(setup):
    store, cluster, make = setup
    ctl = make("a")
    low = submit(store, "low", priority=0)
    ctl.step()
    assert store.jobs.get(low).state == JobState.STARTING and cluster.launched == [f"{low}.1"]
    ctl.step()
    assert store.jobs.get(low).state == JobState.RUNNING
    high = submit(store, "high", priority=50)
    ctl.step()  # the higher priority preempts: low is asked to stop (by force: user code)
    assert store.jobs.get(low).state == JobState.STOPPING and cluster.stops == [(f"{low}.1", True)]
    ctl.step()  # low's attempt ended and released its cores: back to the queue, no failure counted
    assert store.jobs.get(low).state == JobState.QUEUED and store.jobs.get(low).failures == 0
    ctl.step()
    assert store.jobs.get(high).state in (JobState.STARTING, JobState.RUNNING)
    cluster.phase[f"{high}.1"] = "succeeded"
    for _ in range(3):
        ctl.step()
    assert store.jobs.get(high).state == JobState.SUCCEEDED
    assert store.jobs.get(low).state in (JobState.STARTING, JobState.RUNNING) and store.jobs.get(low).attempts == 2
    cluster.errors[f"{low}.2"] = "RuntimeError: worker died"
    cluster.phase[f"{low}.2"] = "failed"
    ctl.step()  # the one failure policy: retry (1 of 1), on a new placement
    record = store.jobs.get(low)
    assert record.failures == 1 and record.state in (JobState.QUEUED, JobState.STARTING)
    for _ in range(2):
        ctl.step()
    cluster.errors[f"{low}.3"] = "ValueError: feature store unreachable"
    cluster.phase[f"{low}.3"] = "failed"
    ctl.step()
    record = store.jobs.get(low)
    assert record.state == JobState.FAILED and "ValueError: feature store unreachable" in record.error
    assert "retry budget of 1 spent" in record.error
    assert states(store, low) == ["STARTING", "RUNNING", "STOPPING", "QUEUED", "STARTING", "RUNNING", "STOPPING",
                                  "QUEUED", "STARTING", "RUNNING", "FAILED"]


def test_a_new_holder_adopts_running_attempts_and_fences_the_old_one(setup):
    store, cluster, make = setup
    old = make("old", ttl=3.0)  # long enough for two steps on a loaded machine
    running = submit(store, "running", workers=1)
    gone = submit(store, "gone", workers=1)
    old.step()
    old.step()
    assert {store.jobs.get(running).state, store.jobs.get(gone).state} == {JobState.RUNNING}
    time.sleep(3.1)  # the old holder stops renewing (it was killed, or stalled)
    cluster.phase.pop(f"{gone}.1")  # this attempt died with the old holder's node: really gone
    new = make("new")
    assert new.lease.token() == 2
    new.step()
    assert cluster.launched.count(f"{running}.1") == 1 and f"{running}.2" not in cluster.launched  # adopted
    assert store.jobs.get(running).state == JobState.RUNNING
    assert store.jobs.get(gone).failures == 1 and store.jobs.get(gone).attempts == 2  # requeued through the policy, relaunched
    assert "adopted attempt 1: running" in store.logs.text(running)
    old.lease._lease = replace(old.lease._lease, token=1)  # the stalled old holder wakes up believing it leads
    old.lease._act_until = time.monotonic() + 60
    before = store.jobs.events(running)
    with pytest.raises(FencedOut):
        cluster.phase[f"{running}.1"] = "succeeded"
        old.step()
    assert store.jobs.events(running) == before  # nothing the old holder wrote landed
    new.step()
    new.step()
    assert store.jobs.get(running).state == JobState.SUCCEEDED
    assert states(store, running).count("SUCCEEDED") == 1


def test_remaining_work_shrinks_and_hetero_reranks_running_jobs(setup):
    store, _, _ = setup
    spec = {"epochs": 10, "priority": 0, "workers": 1, "latency": "batch", "preemptible": True, "max_failures": 0,
            "_device_kinds": ["cpu"], "_device_model": None, "_algorithm": "mlp", "config": {},
            "_dataset": {"rows": 100_000, "bytes": 10_000_000}}
    first = store.jobs.add("first", "risk", "a", spec, None)
    second = store.jobs.add("second", "risk", "a", {**spec, "epochs": 4}, None)
    cluster = state(node("n1", cpu(count=1, in_use=1)), taken_at=0.0)
    model = ThroughputModel()
    fresh = job_request(store.jobs.get(first), model, cluster)
    assert fresh.work == 1_000_000 and fresh.throughputs is None
    running_placement = Placement.from_dict({
        "job_id": first, "cluster": "c1", "kind": "cpu", "model": "Xeon-8380", "queue_s": 0.0, "transfer_s": 0.0,
        "compute_s": 20.0, "assignments": [{"node_id": "n1", "kind": "cpu", "model": "Xeon-8380", "workers": 1,
                                            "devices_per_worker": 1}]})
    lines = [{"epoch": e, "epoch_seconds": 2.0, "attempt": 1} for e in range(8)]
    store.jobs.set_progress(first, progress_from_epochs(lines, running_placement), fence=None)
    measured = job_request(store.jobs.get(first), model, cluster)
    assert measured.work == 200_000  # 2 of 10 epochs left
    assert dict(measured.throughputs)["Xeon-8380"] == pytest.approx(50_000)  # 100k rows per 2 s, measured
    assert measured.attained_service_s == pytest.approx(16.0)
    assert Placement.from_dict(running_placement.to_dict()) == running_placement
    queued = job_request(store.jobs.get(second), model, cluster)  # 400k rows of work left
    policy = make_policy("hetero")
    config = SchedulerConfig(min_run_before_preempt_s=0.0)
    before = schedule([queued], cluster, 100.0, policy, [RunningJob(fresh, running_placement, 0.0, 20.0)], config)
    after = schedule([queued], cluster, 100.0, policy, [RunningJob(measured, running_placement, 0.0, 20.0)], config)
    assert before.preemptions == (first,)  # 1M left > 400k: the shorter queued job takes the core
    assert after.preemptions == () and [w.job_id for w in after.waiting] == [second]  # 200k left: first keeps it


def test_an_attempt_whose_node_is_lost_before_its_workers_start_is_replaced(setup):
    store, cluster, make = setup
    cluster.nodes = {"n1": 1, "n2": 1}
    cluster.hold_start = True
    ctl = make("a")
    job = submit(store, "pinned", workers=1)
    ctl.step()
    assert store.jobs.get(job).state == JobState.STARTING
    [placed] = [a.node_id for a in cluster.placements[f"{job}.1"].assignments]
    del cluster.nodes[placed]  # the node dies before the workers come up: they never can, there
    cluster.hold_start = False
    ctl.step()  # the controller sees the node gone in this step's snapshot...
    ctl.step()  # ...and gives up the attempt in the next
    record = store.jobs.get(job)
    assert record.failures == 1 and "were lost before its workers started" in store.logs.text(job)
    assert (f"{job}.1", True) in cluster.stops
    ctl.step()
    record = store.jobs.get(job)
    assert record.attempts == 2 and record.state == JobState.RUNNING
    assert [a["node_id"] for a in record.placement["assignments"]] == [n for n in cluster.nodes]


def test_a_hostile_run_directory_fails_only_its_job_and_never_the_loop(setup, tmp_path):
    """A user's code can write its attempt's directory: a checkpoint meta without sha256, a
    progress line without epoch, a progress file linked to /dev/zero. Each fails that job with the
    file and field named; the other job runs on and succeeds; the loop never counts a failure."""
    store, cluster, make = setup
    ctl = make("a")
    runs = tmp_path / "runs"
    bad, good = submit(store, "bad", workers=1), submit(store, "good", workers=1)
    ctl.step()
    ctl.step()
    assert {store.jobs.get(bad).state, store.jobs.get(good).state} == {JobState.RUNNING}
    (runs / bad / "attempt-1" / "checkpoint_000000").mkdir(parents=True)
    (runs / bad / "attempt-1" / "checkpoint_000000" / "meta.json").write_text('{"epoch": 0}')
    (runs / good / "attempt-1").mkdir(parents=True, exist_ok=True)
    (runs / good / "attempt-1" / "progress.jsonl").write_text('{"epoch": 0, "epoch_seconds": 1.5}\n')
    victim = tmp_path / "victim.json"
    victim.write_text("precious")
    (runs / good / "provenance.json").symlink_to(victim)  # the server's own write must not follow it
    ctl.step()  # the bad attempt is stopped by force off the step...
    step_until(ctl, lambda: store.jobs.get(bad).state == JobState.FAILED)  # ...and the job fails once it is
    record = store.jobs.get(bad)
    assert f"{bad}/attempt-1/checkpoint_000000/meta.json: missing field 'sha256'" in record.error
    assert (f"{bad}.1", True) in cluster.stops and store.attempts.get(bad, 1).outcome == "failed"
    assert store.jobs.get(good).state == JobState.RUNNING and ctl.step_failures == 0
    no_epoch, linked = submit(store, "no-epoch", workers=1), submit(store, "linked", workers=1)
    cluster.phase[f"{good}.1"] = "succeeded"
    ctl.step()
    ctl.step()
    assert store.jobs.get(good).state == JobState.SUCCEEDED and victim.read_text() == "precious"
    assert not (runs / good / "provenance.json").is_symlink()
    ctl.step()
    assert {store.jobs.get(no_epoch).state, store.jobs.get(linked).state} == {JobState.RUNNING}
    (runs / no_epoch / "attempt-1" / "progress.jsonl").write_text('{"epoch": 0, "epoch_seconds": 1}\n{"loss": 0.5}\n')
    (runs / linked / "attempt-1").mkdir(parents=True, exist_ok=True)
    (runs / linked / "attempt-1" / "progress.jsonl").symlink_to("/dev/zero")
    ctl.step()
    step_until(ctl, lambda: {store.jobs.get(no_epoch).state, store.jobs.get(linked).state} == {JobState.FAILED})
    assert f"{no_epoch}/attempt-1/progress.jsonl: line 2: missing field 'epoch', 'epoch_seconds'" in store.jobs.get(no_epoch).error
    assert "symbolic link" in store.jobs.get(linked).error and store.jobs.get(linked).state == JobState.FAILED
    assert ctl.step_failures == 0


def test_a_forced_stop_that_hangs_never_holds_up_the_controller(setup, tmp_path):
    """Failing a job stops its attempt by force, which can take Ray seconds: it runs off the step.
    While the stop hangs the attempt stays open (a crash now leaves it for the next holder to
    adopt), the job is not yet FAILED, and the loop goes on scheduling; once the stop returns the
    attempt ends and the job fails, in one write."""
    store, cluster, make = setup
    cluster.nodes = {"n1": 2}
    ctl = make("a")
    bad = submit(store, "bad", workers=1)
    ctl.step()
    ctl.step()
    assert store.jobs.get(bad).state == JobState.RUNNING
    released = threading.Event()
    plain_stop = cluster.stop

    def hanging_stop(handle, force=False):
        released.wait(60)
        plain_stop(handle, force)

    cluster.stop = hanging_stop
    meta = tmp_path / "runs" / bad / "attempt-1" / "checkpoint_000000" / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text('{"epoch": 0}')
    ctl.step()  # fails the attempt: the forced stop starts, and hangs
    later = submit(store, "later", workers=1)
    for _ in range(3):
        ctl.step()  # each step returns while the stop hangs, and schedules
    assert store.jobs.get(later).state == JobState.RUNNING
    assert store.jobs.get(bad).state == JobState.RUNNING and store.attempts.get(bad, 1).state == "stopping"
    assert "stopping it by force" in store.logs.text(bad)
    released.set()
    step_until(ctl, lambda: store.jobs.get(bad).state == JobState.FAILED)
    assert store.attempts.get(bad, 1).outcome == "failed" and (f"{bad}.1", True) in cluster.stops
    assert ctl.step_failures == 0
    ctl.stop()


def test_an_active_job_whose_attempt_ended_is_repaired_on_adoption(setup):
    """A crash between an attempt's end and its job's move (two writes in older versions) left a
    RUNNING job with an ended attempt; the next holder requeues and relaunches it."""
    store, cluster, make = setup
    old = make("old", ttl=3.0)  # long enough for two steps on a loaded machine
    orphan = submit(store, "orphan", workers=1)
    old.step()
    old.step()
    assert store.jobs.get(orphan).state == JobState.RUNNING
    store.attempts.update(orphan, 1, old.lease.token(), state="ended", outcome="succeeded", ended=time.time())
    time.sleep(3.1)
    new = make("new")
    new.step()
    assert store.jobs.get(orphan).attempts == 2 and store.jobs.get(orphan).state in (JobState.STARTING, JobState.RUNNING)
    assert states(store, orphan)[-3:] == ["STOPPING", "QUEUED", "STARTING"]
    assert "repaired on adoption" in " ".join(e["detail"] for e in store.jobs.events(orphan))


def test_the_queue_is_read_incrementally_and_misses_nothing(setup, monkeypatch):
    """Each round reads only what changed since the last; a submission, a cancellation and a
    write stamped by a clock far behind (another server's) are all seen, the last by the full
    read every FULL_SYNC_S."""
    from sqlalchemy import update

    from runtime.controller import controller as module
    from runtime.store.schema import jobs

    store, cluster, make = setup
    ctl = make("a")
    cluster.nodes = {}  # nothing can start: every job stays queued
    first, second = submit(store, "first"), submit(store, "second")
    assert [r.id for r in ctl._queued()] == [first, second]
    third = submit(store, "third")
    store.jobs.request_cancel(first, "alice")
    assert [r.id for r in ctl._queued()] == [second, third]
    with store.db.engine.begin() as conn:  # a write by a server whose clock is an hour behind
        conn.execute(update(jobs).where(jobs.c.id == second).values(spec='{"epochs": 9}', updated=time.time() - 3600))
    assert ctl._queued()[0].spec.get("priority") == 0  # not seen yet: older than the margin
    monkeypatch.setattr(module, "FULL_SYNC_S", 0.0)
    assert ctl._queued()[0].spec == {"epochs": 9}  # the full read finds it


def test_a_stored_job_this_version_cannot_read_fails_alone(setup):
    """A job stored by another version without a field the scheduler needs fails with the reason;
    the job behind it is scheduled in the same round."""
    store, cluster, make = setup
    ctl = make("a")
    broken = store.jobs.add("broken", "risk", "alice", {"epochs": 5, "workers": 1}, None)
    fine = submit(store, "fine", workers=1)
    ctl.step()
    record = store.jobs.get(broken)
    assert record.state == JobState.FAILED and "cannot be scheduled: KeyError" in record.error
    assert store.jobs.get(fine).state == JobState.STARTING and ctl.step_failures == 0
