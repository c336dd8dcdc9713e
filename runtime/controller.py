"""The job controller: drives the stored queue through `schedulers` and runs placements on Ray.

One `step()`:
1. on the first step after a (re)start, jobs the store says are RUNNING but this process has no
   handle for go back to QUEUED, to restart from their latest checkpoint;
2. honours cancellations;
3. collects finished trainings: evaluates built-in models on the test split, writes the
   provenance, stores SUCCEEDED or FAILED (with the traceback in the job's log);
4. snapshots the cluster, calls `schedulers.schedule` with the queue and running jobs, and acts:
   REJECTED for jobs that can never fit, preemption (cancel, back to QUEUED, resume later) for
   the jobs the policy preempts, and a Ray Train launch for each placement. Every state change is
   stored before it is acted on.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cloudpickle
import numpy as np
import ray
import torch

import cluster
from runtime.datasets import prepare_splits
from runtime.metrics import binary_metrics
from runtime.placement_to_ray import NODE_ID_LABEL
from runtime.provenance import build_provenance, read_progress, read_workers
from runtime.specs import JobState
from runtime.store import JobRecord, JobStore
from runtime.training.launch import latest_checkpoint, pool_selector, run_training
from runtime.training.loop import CANCEL_FILE, build_model
from schedulers.engine import RunningJob, SchedulerConfig, schedule
from schedulers.policies import make_policy
from schedulers.types import JobRequest, Placement, WorkerAssignment

LOOP_KEYS = ("model", "dataset", "label", "categorical", "validation_fraction", "test_fraction", "seed", "hidden",
             "learning_rate", "class_weight", "batch_size", "epochs", "checkpoint_every")


@dataclass
class _Running:
    ref: ray.ObjectRef
    placement: Placement
    request: JobRequest
    started: float


def placement_from_dict(data: dict) -> Placement:
    return Placement(**{**data, "assignments": tuple(WorkerAssignment(**a) for a in data["assignments"])})


class JobController:
    """Owns the queue's progress. `start()` runs `step()` every `poll_s` in a thread."""

    def __init__(self, store: JobStore, policy: str = "hetero", storage_path: str | Path | None = None,
                 poll_s: float = 0.5, config: SchedulerConfig | None = None):
        self.store = store
        self.policy = make_policy(policy)
        self.storage_path = str(Path(storage_path or store.state_dir / "runs").resolve())
        Path(self.storage_path).mkdir(parents=True, exist_ok=True)
        self.poll_s = poll_s
        self.config = config or SchedulerConfig(min_run_before_preempt_s=120.0)
        self.running: dict[str, _Running] = {}
        self._recovered = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_reason: dict[str, str] = {}
        self._node_labels: dict[str, dict] = {}

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="suanli-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - the loop must survive one bad step
                print(f"suanli controller: step failed: {type(exc).__name__}: {exc}")
            self._stop.wait(self.poll_s)

    # ---- one step ------------------------------------------------------------------------
    def step(self) -> None:
        if not self._recovered:
            self._recover()
        self._cancel_requested()
        self._collect()
        self._schedule()

    def _recover(self) -> None:
        for record in self.store.list(state=JobState.RUNNING):
            if record.id not in self.running:
                self.store.transition(record.id, JobState.QUEUED, detail="controller restarted; the job resumes "
                                      "from its latest checkpoint", expect=(JobState.RUNNING,))
        self._recovered = True

    def _cancel_requested(self) -> None:
        for record in self.store.cancellations_pending():
            if record.id in self.running:
                self._stop_run(record, self.running.pop(record.id))
            self.store.transition(record.id, JobState.CANCELLED, actor=record.user, detail="cancelled on request")

    def _stop_run(self, record: JobRecord, running: _Running) -> None:
        """Stop a job's training. Built-in jobs stop cleanly at their next epoch (so Ray Train
        releases their devices); a user train_fn's launcher is force-cancelled."""
        if record.train_fn is None:
            run_dir = Path(self.storage_path) / record.id
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / CANCEL_FILE).touch()
        else:
            ray.cancel(running.ref, force=True)

    def _collect(self) -> None:
        if not self.running:
            return
        refs = {r.ref: job_id for job_id, r in self.running.items()}
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for ref in done:
            job_id = refs[ref]
            running = self.running.pop(job_id)
            record = self.store.get(job_id)
            try:
                outcome = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the launching task died with its node or its owner
                if record.attempts <= record.spec["max_failures"]:
                    self.store.transition(job_id, JobState.QUEUED, expect=(JobState.RUNNING,),
                                          detail=f"training task lost ({type(exc).__name__}); resumes from its "
                                                 "latest checkpoint")
                    continue
                outcome = {"error": f"{type(exc).__name__}: {exc}", "checkpoint": None, "metrics": {}}
            if outcome["error"]:
                self.store.log(job_id, "training failed:\n" + outcome["error"])
                self.store.transition(job_id, JobState.FAILED, detail="training failed (traceback in the logs)",
                                      error=outcome["error"][-4000:])
                continue
            try:
                result = self._finish(record, running, outcome)
            except Exception as exc:  # noqa: BLE001 - evaluation failure fails the job, not the controller
                import traceback

                self.store.log(job_id, "evaluation failed:\n" + traceback.format_exc())
                self.store.transition(job_id, JobState.FAILED, detail=f"evaluation failed: {exc}", error=str(exc))
                continue
            self.store.transition(job_id, JobState.SUCCEEDED, detail=f"test AUC {result['metrics'].get('auc', 'n/a')}",
                                  result=result)

    def _finish(self, record: JobRecord, running: _Running, outcome: dict) -> dict:
        spec = record.spec
        metrics = dict(outcome["metrics"])
        test = None
        if spec.get("model") and outcome["checkpoint"]:
            state = torch.load(Path(outcome["checkpoint"]) / "state.pt", weights_only=False)
            splits = prepare_splits(spec["dataset"], spec["label"], spec["categorical"], spec["validation_fraction"],
                                    spec["test_fraction"], spec["seed"])
            model = build_model(state["model_name"], len(state["features"]), state["hidden"])
            model.load_state_dict(state["model"])
            model.eval()
            with torch.no_grad():
                scores = torch.sigmoid(model(torch.from_numpy(splits.x_test))).numpy()
            test = binary_metrics(splits.y_test, scores, funds_related=spec["funds_related"])
            metrics.update(test)
        progress = read_progress(Path(self.storage_path) / record.id / "progress.jsonl")
        train_fn = cloudpickle.loads(record.train_fn) if record.train_fn else None
        nodes = read_workers(Path(self.storage_path) / record.id / "workers.jsonl")
        provenance = build_provenance(
            job={"id": record.id, "name": record.name}, spec=spec, dataset=spec.get("_dataset"),
            placement=asdict(running.placement), nodes=nodes, train_fn=train_fn, progress=progress,
            started=running.started, ended=time.time(), attempts=record.attempts, checkpoint=outcome["checkpoint"],
            test_metrics=test)
        path = Path(self.storage_path) / record.id / "provenance.json"
        path.write_text(json.dumps(provenance, indent=2, default=str))
        return {"metrics": _jsonable(metrics), "checkpoint": outcome["checkpoint"], "provenance_path": str(path)}

    # ---- scheduling ----------------------------------------------------------------------
    def _request(self, record: JobRecord) -> JobRequest:
        spec = record.spec
        kinds, model = spec["_device_kinds"], spec["_device_model"]
        dataset = spec.get("_dataset") or {}
        return JobRequest(
            id=record.id, tenant=record.tenant, priority=spec["priority"], workers=spec["workers"],
            devices_per_worker=1, algorithm=spec["_algorithm"], work=float(dataset.get("rows", 1000) * spec["epochs"]),
            data_bytes=int(dataset.get("bytes", 0)), data_site=spec.get("data_site"), latency=spec["latency"],
            allowed_kinds=tuple(kinds), device_model=model, preemptible=spec["preemptible"],
            submitted_at=record.created)

    def _schedule(self) -> None:
        queued = [r for r in self.store.list(state=JobState.QUEUED) if not r.cancel_requested]
        if not queued:
            return
        requests = {r.id: self._request(r) for r in queued}
        running = [RunningJob(r.request, r.placement, r.started, r.started + r.placement.predicted_completion_s)
                   for r in self.running.values()]
        state = cluster.snapshot(include_local_telemetry=False)
        self._node_labels = {n.id: dict(n.labels) for n in state.nodes}
        decisions = schedule(list(requests.values()), state, time.time(), self.policy, running, self.config)
        for rejection in decisions.rejected:
            self.store.transition(rejection.job_id, JobState.REJECTED, detail=rejection.reason, error=rejection.reason,
                                  expect=(JobState.QUEUED,))
        for job_id in decisions.preemptions:
            victim = self.running.pop(job_id, None)
            if victim is not None:
                record = self.store.get(job_id)
                self.store.transition(job_id, JobState.QUEUED, detail="preempted; resumes from its latest checkpoint",
                                      attempts=record.attempts + 1, expect=(JobState.RUNNING,))
                self._stop_run(record, victim)
        for waiting in decisions.waiting:
            if self._last_reason.get(waiting.job_id) != waiting.reason:
                self._last_reason[waiting.job_id] = waiting.reason
                self.store.log(waiting.job_id, waiting.reason)
        for placement in decisions.placements:
            self._launch(self.store.get(placement.job_id), requests[placement.job_id], placement)

    def _launch(self, record: JobRecord, request: JobRequest, placement: Placement) -> None:
        resume = latest_checkpoint(self.storage_path, record.id)
        (Path(self.storage_path) / record.id / CANCEL_FILE).unlink(missing_ok=True)  # a preempted job runs again
        placement_dict = asdict(placement)
        if not self.store.transition(record.id, JobState.RUNNING, expect=(JobState.QUEUED,), placement=placement_dict,
                                     attempts=record.attempts + 1,
                                     detail=f"on {placement.kind}({placement.model}) x{len(placement.assignments)} node(s)"
                                            + (f", resuming from {Path(resume).name}" if resume else "")):
            return
        spec = record.spec
        loop_config = {k: spec.get(k) for k in LOOP_KEYS}
        loop_config.update(spec.get("config") or {})
        train_fn = cloudpickle.loads(record.train_fn) if record.train_fn else None
        here = {NODE_ID_LABEL: ray.get_runtime_context().get_node_id()}  # the launcher stays beside the controller
        node_labels = self._node_labels.get(placement.assignments[0].node_id, {})
        ref = run_training.options(label_selector=here).remote(
            record.id, loop_config, train_fn, placement_dict, pool_selector(placement.kind, node_labels),
            self.storage_path, spec["max_failures"], resume)
        self.running[record.id] = _Running(ref, placement, request, time.time())


def _jsonable(values: dict) -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out
