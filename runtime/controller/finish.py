"""Finishing a successful job: take the test-split evaluation that rank 0 computed inside the
cluster from the final model (recorded in its attempt directory), check that the final checkpoint is the one whose
sha256 the store recorded, and write the provenance record. Nothing here reads the dataset."""

from __future__ import annotations

import time

import numpy as np

from runtime.backends.base import AttemptStatus
from runtime.provenance import build_provenance
from runtime.rundir import JobDir
from runtime.store import JobRecord, Store
from runtime.training.checkpoints import verify_checkpoint
from schedulers.types import Placement


def recorded_sha256(store: Store, job_id: str, path: str | None) -> str | None:
    """The sha256 the store recorded for checkpoint `path` of the job (None if not recorded)."""
    return next((c["sha256"] for c in store.checkpoints.of(job_id) if c["path"] == path), None)


def finish_job(store: Store, record: JobRecord, placement: Placement, status: AttemptStatus, job_dir: JobDir,
               started: float) -> dict:
    """The job's result: {metrics, checkpoint, checkpoint_sha256, provenance_path}. RunFileError
    (a ValueError naming the file) when a file of its run directory cannot be trusted."""
    spec = record.spec
    metrics = dict(status.metrics)
    test = None
    checkpoint_sha = recorded_sha256(store, record.id, status.checkpoint)
    if spec.get("model") and status.checkpoint:
        if checkpoint_sha is None:
            raise ValueError(f"checkpoint: {status.checkpoint} was never recorded with its sha256; not evaluated")
        verify_checkpoint(status.checkpoint, checkpoint_sha)
        test = job_dir.attempt(record.attempts).evaluation()
        if test is None:
            raise ValueError(f"evaluation: attempt {record.attempts} recorded none; the final epoch did not evaluate "
                             "the model")
        metrics = {k: v for k, v in metrics.items() if not k.startswith("test_")}
        metrics.update(test)
    progress, nodes = [], []
    for attempt_dir in job_dir.attempts():
        progress += [{**line, "attempt": attempt_dir.number} for line in attempt_dir.progress()]
        nodes += [{**line, "attempt": attempt_dir.number} for line in attempt_dir.workers()]
    if not nodes:  # a user train_fn writes no workers.jsonl: where Ray Train's recorder saw them
        nodes = [{**w, "attempt": record.attempts} for w in status.workers]
    user_code = None if record.train_fn is None else {
        "name": spec.get("_train_fn_name"), "source": spec.get("_train_fn_source"), "sha256": record.train_fn_sha256}
    provenance = build_provenance(
        job={"id": record.id, "name": record.name}, spec=spec, dataset=spec.get("_dataset"),
        placement=placement.to_dict(), nodes=nodes, user_code=user_code, progress=progress, started=started,
        ended=time.time(), attempts=record.attempts, checkpoint=status.checkpoint, test_metrics=test)
    placed = sorted(a.node_id for a in placement.assignments for _ in range(a.workers))
    provenance["modelling"]["environment"]["workers_on_placed_nodes"] = (
        sorted(w["node_id"] for w in status.workers) == placed if status.workers else None)
    path = job_dir.write_provenance(provenance)
    return {"metrics": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in metrics.items()},
            "checkpoint": status.checkpoint, "checkpoint_sha256": checkpoint_sha, "provenance_path": str(path)}
