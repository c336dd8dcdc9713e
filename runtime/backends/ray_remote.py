"""The remote backend: runs attempts on a registered Ray cluster through Ray's job-submission REST
API, one Ray job per attempt. Every call has a hard deadline for the whole request (Ray's
`JobSubmissionClient` sets none, so a cluster that stalls or trickles its answer would hold the
controller for every job).

The submission id is the job id and attempt (`<job>.attempt-<n>`), and Ray refuses a second
submission with the same id: a retried or repeated launch never starts a second run. The Ray job's
entrypoint (`python -m runtime.backends.remote_entry`) reads the attempt's launch file from the
shared runs directory, runs the same `AttemptRunner` as the local backend inside that cluster and
writes the attempt's status beside its checkpoints; the controller reads files from the shared
directory and asks Ray only for the job's state.

Storage: the server's runs directory must be reachable from the cluster's nodes (a shared
filesystem); the registry's `storage` is the path at which they see it (the same path when empty).

Fencing: `fence(handle)` writes FENCED and STOP into the attempt's directory, so a run that comes
back after its cluster was given up stops at its next epoch boundary and reports nothing; the
controller also stops its Ray job once the cluster answers again.
"""

from __future__ import annotations

import base64
import logging
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import httpx

from cluster.federation import (
    ClusterEntry,
    ProbeFailed,
    ProbeRefused,
    dashboard_request,
    ending_with_exception,
    failure_reason,
    run_blocking,
)
from runtime.backends.base import AttemptStatus, LaunchSpec, attempt_name
from runtime.rundir import AttemptDir, RunFileError
from schedulers.types import Placement

STATUS_TIMEOUT_S = 2.0
SUBMIT_TIMEOUT_S = 20.0  # a submission starts the job's supervisor actor: seconds on a busy head
log = logging.getLogger(__name__)


class RemoteRayBackend:
    """Carries out placements on one registered cluster. `health()` says whether the federation
    currently sees the cluster (a lost cluster's attempts are reported lost without asking it);
    `token` is its Ray auth token (from the server's secrets store)."""

    def __init__(self, entry: ClusterEntry, runs_dir: str | Path, health=lambda: "healthy", token: str | None = None):
        self.entry = entry
        self.token = token
        self.name = f"ray-remote:{entry.name}"
        self.runs_dir = Path(runs_dir).resolve()
        self.health = health

    # ---- paths ---------------------------------------------------------------------------
    def cluster_path(self, path: str | None) -> str | None:
        """`path` (under the server's runs directory) as the cluster's nodes see it."""
        if path is None or not self.entry.storage:
            return path
        relative = Path(path).resolve().relative_to(self.runs_dir)
        return str(Path(self.entry.storage) / relative)

    def _call(self, method: str, path: str, timeout_s: float, body: dict | None = None) -> tuple[int, object]:
        return run_blocking(dashboard_request(method, self.entry.address, path, self.token, timeout_s, body))

    # ---- the interface -------------------------------------------------------------------
    def handle_for(self, spec: LaunchSpec) -> dict:
        return {"cluster": self.entry.name, "submission_id": attempt_name(spec.job_id, spec.attempt),
                "run_dir": spec.run_dir}

    def launch(self, placement: Placement, spec: LaunchSpec) -> None:
        attempt_dir = AttemptDir.at(spec.run_dir)
        attempt_dir.create()
        remote = {**asdict(spec), "run_dir": self.cluster_path(spec.run_dir),
                  "resume_path": self.cluster_path(spec.resume_path),
                  "train_fn": base64.b64encode(spec.train_fn).decode() if spec.train_fn else None}
        launch_file = attempt_dir.write_launch({"spec": remote, "placement": placement.to_dict()})
        sid = attempt_name(spec.job_id, spec.attempt)
        entrypoint = remote_entrypoint(self.cluster_path(str(launch_file)))
        try:
            status, _ = self._call("POST", "/api/jobs/", SUBMIT_TIMEOUT_S, {
                "entrypoint": entrypoint, "submission_id": sid,
                "metadata": {"suanli_job": spec.job_id, "suanli_attempt": str(spec.attempt)}})
            if status >= 400 and self._ray_job(sid) is None:  # refused for another reason than the id being taken
                raise ProbeRefused(status)
        except (TimeoutError, httpx.HTTPError, ProbeFailed) as exc:
            raise RuntimeError(f"cluster {self.entry.name}: submitting {sid} failed ({failure_reason(exc)})") from None
        if status >= 400:
            log.info("%s was already submitted to %s: not submitted again", sid, self.entry.name)

    def _ray_job(self, sid: str) -> dict | None:
        """Ray's record of the job (None when the cluster does not know it); raises when the
        cluster does not answer within STATUS_TIMEOUT_S."""
        status, job = self._call("GET", f"/api/jobs/{sid}", STATUS_TIMEOUT_S)
        if status == 404:
            return None
        if status >= 400 or not isinstance(job, dict):
            raise ProbeRefused(status)
        return job

    def poll(self, handle: dict) -> AttemptStatus:
        attempt_dir = AttemptDir.at(handle["run_dir"])
        try:
            workers = tuple((attempt_dir.worker_group() or {}).get("workers", ()))
        except RunFileError:
            workers = ()
        if self.health() == "lost":
            return AttemptStatus("lost", error=f"cluster {self.entry.name} was lost", workers=workers)
        written = attempt_dir.status()
        if written and written["phase"] in ("succeeded", "failed", "stopped"):
            return AttemptStatus(written["phase"], error=written.get("error"), traceback=written.get("traceback"),
                                 checkpoint=written.get("checkpoint"), metrics=written.get("metrics") or {},
                                 workers=workers)
        try:
            job = self._ray_job(handle["submission_id"])
        except (TimeoutError, httpx.HTTPError, ProbeFailed):
            return AttemptStatus("running" if written else "starting", workers=workers)  # slow is not lost
        if job is None:
            return AttemptStatus("lost", error=f"cluster {self.entry.name} has no Ray job "
                                               f"{handle['submission_id']}", workers=workers)
        if job["status"] in ("FAILED", "STOPPED", "SUCCEEDED"):
            written = attempt_dir.status()  # it may have ended between the two reads
            if written and written["phase"] in ("succeeded", "failed", "stopped"):
                return self.poll(handle)
            return AttemptStatus("failed" if job["status"] != "STOPPED" else "stopped", workers=workers,
                                 error=f"the Ray job {handle['submission_id']} on {self.entry.name} ended "
                                       f"{job['status']}: {ending_with_exception(job.get('message') or '')}")
        return AttemptStatus("running" if written and written["phase"] == "running" else "starting", workers=workers)

    def stop(self, handle: dict, force: bool = False) -> None:
        AttemptDir.at(handle["run_dir"]).request_stop()
        if force and self.health() != "lost":
            try:
                self._call("POST", f"/api/jobs/{handle['submission_id']}/stop", STATUS_TIMEOUT_S)
            except (TimeoutError, httpx.HTTPError, ProbeFailed) as exc:  # logged: its STOP file stops it too
                log.info("stopping %s on %s: %s", handle["submission_id"], self.entry.name, failure_reason(exc))

    def fence(self, handle: dict) -> None:
        """Mark the attempt fenced in its directory: its run stops and reports nothing."""
        AttemptDir.at(handle["run_dir"]).mark_fenced()

    def release(self, handle: dict) -> None:
        """Nothing to free: the Ray job ended with its driver, and Ray keeps its record."""


def remote_entrypoint(launch_path: str) -> str:
    """The shell command line of an attempt's Ray job. Ray runs an entrypoint with `/bin/sh -c`, so
    every word is quoted: a registered `storage` path with spaces, quotes or `;` stays one argument
    and is never run as shell code."""
    return shlex.join([sys.executable, "-m", "runtime.backends.remote_entry", launch_path])
