"""The Python SDK: `Client` submits and lists jobs; `JobHandle` follows one.

    from runtime import Client, TrainingJob
    with Client() as client:                       # embedded default; Client(address=...) joins a cluster
        job = client.submit(TrainingJob(name="fraud-mlp", dataset="tx.csv", label="is_fraud", workers=2))
        job.wait(timeout=600)
        print(job.result().metrics["auc"])
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cloudpickle

import cluster
from runtime.controller import JobController
from runtime.datasets import inspect_table
from runtime.specs import JobState, TrainingJob
from runtime.store import JobStore
from schedulers.engine import check_submission
from schedulers.types import JobRequest


@dataclass(frozen=True)
class TrainingResult:
    """What a finished job produced: test metrics, the provenance record, the final checkpoint."""

    metrics: dict
    provenance: dict
    checkpoint: str | None
    provenance_path: str


class JobHandle:
    """One job in the store."""

    def __init__(self, store: JobStore, job_id: str):
        self.store = store
        self.id = job_id

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r}, {self.status().value})"

    def status(self) -> JobState:
        return self.store.get(self.id).state

    def wait(self, timeout: float = 600.0, poll_s: float = 0.5) -> JobState:
        """Block until the job finishes; its final state. TimeoutError naming the job otherwise."""
        deadline = time.time() + timeout
        while True:
            state = self.status()
            if state.finished:
                return state
            if time.time() > deadline:
                raise TimeoutError(f"job {self.id}: still {state.value} after {timeout:g} s")
            time.sleep(poll_s)

    def result(self) -> TrainingResult:
        """The result of a SUCCEEDED job; RuntimeError with the job's error otherwise."""
        record = self.store.get(self.id)
        if record.state != JobState.SUCCEEDED:
            raise RuntimeError(f"job {self.id} is {record.state.value}" + (f": {record.error.splitlines()[-1]}"
                                                                            if record.error else ""))
        result = record.result
        provenance = json.loads(Path(result["provenance_path"]).read_text())
        return TrainingResult(result["metrics"], provenance, result["checkpoint"], result["provenance_path"])

    def logs(self) -> str:
        path = self.store.log_path(self.id)
        return path.read_text() if path.exists() else ""

    def cancel(self, actor: str = "user") -> None:
        self.store.request_cancel(self.id, actor)


class Client:
    """Connects to Ray (embedded default, or `address`), opens the job store in the state
    directory, and (unless `run_controller=False`) runs the job controller in this process."""

    def __init__(self, address: str | None = None, state_dir: str | Path | None = None, policy: str = "hetero",
                 run_controller: bool = True, connect: bool = True):
        config = cluster.load_config()
        if address:
            config = config.model_copy(update={"ray_address": address})
        self.config = config
        self.connection = cluster.connect(config) if connect else None
        self.store = JobStore(state_dir or config.state_path)
        self.controller = JobController(self.store, policy=policy) if run_controller else None
        if self.controller:
            self.controller.start()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the controller (running trainings are not cancelled) and close the store."""
        if self.controller:
            self.controller.stop()
        self.store.close()

    def submit(self, job: TrainingJob) -> JobHandle:
        """Validate and store the job as QUEUED (or REJECTED, with the reason, when it can never
        fit this cluster). A missing dataset, a label or feature column that cannot be used,
        raises ValueError naming it, before anything is stored or started."""
        if not isinstance(job, TrainingJob):
            raise TypeError("job: pass a runtime.TrainingJob")
        spec = job.model_dump()
        if job.dataset:
            spec["_dataset"] = asdict(inspect_table(job.dataset, job.label, job.categorical)) if job.label else None
        kinds, model = job.device_kinds()
        spec.update(_device_kinds=list(kinds), _device_model=model, _algorithm=job.algorithm)
        fn = cloudpickle.dumps(job.train_fn) if job.train_fn else None
        job_id = self.store.add(job.name, job.tenant, job.user, spec, fn)
        request = JobRequest(id=job_id, tenant=job.tenant, workers=job.workers, allowed_kinds=kinds, device_model=model)
        if self.connection is not None:
            rejection = check_submission(request, cluster.snapshot(include_local_telemetry=False))
            if rejection:
                self.store.transition(job_id, JobState.REJECTED, actor="scheduler", detail=rejection.reason,
                                      error=rejection.reason)
        return JobHandle(self.store, job_id)

    def jobs(self, tenant: str | None = None, state: JobState | str | None = None) -> list[JobHandle]:
        chosen = JobState(state) if isinstance(state, str) else state
        return [JobHandle(self.store, r.id) for r in self.store.list(tenant=tenant, state=chosen)]

    def export(self, job: JobHandle, out_dir: str | Path, private_key: str | Path | None = None) -> Path:
        """Write the signed artifact of a SUCCEEDED built-in-model job (ONNX, metrics, provenance)."""
        from runtime.artifacts.artifact import build_artifact

        result = job.result()
        if not result.checkpoint:
            raise ValueError(f"job {job.id}: has no checkpoint to export")
        return build_artifact(result.checkpoint, result.metrics, result.provenance, out_dir, job.id, private_key)

    def compress(self, artifact: str | Path, out_root: str | Path, methods=None, private_key=None, public_key=None,
                 auc_tolerance: float = 0.005) -> dict:
        """Compress a signed artifact into signed candidates and choose one (see runtime.compression)."""
        from runtime.compression.pipeline import METHODS, compress

        return compress(artifact, out_root, methods or METHODS, private_key, public_key, auc_tolerance)

    def deploy(self, artifact: str | Path, replicas: int = 2, latency: str = "realtime", site: str | None = None,
               public_key: str | None = None, thresholds: dict | None = None):
        """Serve a signed artifact from replicas placed by the scheduler (see runtime.inference)."""
        from runtime.inference.endpoint import deploy

        return deploy(artifact, replicas=replicas, latency=latency, site=site, public_key=public_key,
                      thresholds=thresholds)

    def job(self, job_id: str) -> JobHandle:
        self.store.get(job_id)  # KeyError naming the job when unknown
        return JobHandle(self.store, job_id)
