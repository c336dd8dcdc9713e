"""The HTTP API (FastAPI): every server serves it; only the lease holder's controller acts on jobs.

Errors are JSON `{"detail": "field: what is wrong and the fix"}` with a 4xx status; the SDK and
CLI print that same line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, ValidationError

from runtime.server import API_VERSION
from runtime.specs import JobState, TrainingJob
from runtime.store import JobRecord

MAX_TRAIN_FN_BYTES = 16 * 2**20


class Submission(BaseModel):
    """The body of POST /jobs: a TrainingJob's fields, and a user function as cloudpickled bytes
    (base64) with its source for the provenance record. The server stores and hashes the bytes;
    only Ray workers load them."""

    spec: dict[str, Any]
    train_fn_b64: str | None = Field(default=None, max_length=MAX_TRAIN_FN_BYTES * 4 // 3 + 4)
    train_fn_source: str | None = Field(default=None, max_length=1_000_000)
    train_fn_name: str | None = Field(default=None, max_length=400)


class CancelRequest(BaseModel):
    actor: str = Field(default="api", min_length=1, max_length=128)


def job_view(record: JobRecord) -> dict:
    """A job as the API shows it (the user's code bytes are never sent back)."""
    return {"id": record.id, "name": record.name, "tenant": record.tenant, "user": record.user,
            "state": record.state.value, "attempts": record.attempts, "failures": record.failures,
            "created": record.created, "updated": record.updated, "placement": record.placement,
            "progress": record.progress, "result": record.result, "error": record.error,
            "cancel_requested": record.cancel_requested, "train_fn_sha256": record.train_fn_sha256}


def _one_line(err: ValidationError | RequestValidationError, prefix: str = "") -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body",))
    message = first.get("msg", "invalid").removeprefix("Value error, ")
    return f"{prefix}{where}: {message}" if where else f"{prefix}{message}"


def create_app(server) -> FastAPI:
    """The API of `server` (a `runtime.server.service.Server`)."""
    from runtime import __version__

    app = FastAPI(title="suanli", version=__version__,
                  description="One control plane for suanli: jobs, their events and logs, capacity.")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, err: RequestValidationError):
        return JSONResponse(status_code=422, content={"detail": _one_line(err)})

    def record_or_404(job_id: str) -> JobRecord:
        try:
            return server.store.get(job_id)
        except KeyError:
            raise HTTPException(404, f"job: no job {job_id!r}") from None

    @app.get("/healthz")
    def healthz() -> dict:
        """Liveness and role: `active` holds the controller lease, `standby` waits for it."""
        lease = server.leases.current()
        controller = server.controller
        return {"status": "ok", "role": server.lease.role, "pid": os.getpid(), "holder": server.lease.holder,
                "lease": lease.as_dict() if lease else None, "version": __version__, "api_version": API_VERSION,
                "ray_address": server.ray_address, "store": server.store.where,
                "controller": {"step_failures": controller.step_failures, "last_error": controller.last_error,
                               "last_step_at": controller.last_step_at, "attempts_followed": len(controller.tracked)}}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(server.metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.post("/jobs", status_code=201)
    def submit(body: Submission) -> dict:
        """Validate and store a job (QUEUED, or REJECTED with the reason when it can never fit)."""
        code = None
        if body.train_fn_b64 is not None:
            try:
                code = base64.b64decode(body.train_fn_b64, validate=True)
            except (binascii.Error, ValueError):
                raise HTTPException(422, "train_fn_b64: not base64; send cloudpickle.dumps(fn) base64-encoded") from None
        try:
            job = TrainingJob.model_validate(body.spec, context={"has_train_fn": code is not None})
        except ValidationError as err:
            raise HTTPException(422, _one_line(err, "spec.")) from None
        spec = server.admission.prepare(job)  # dataset checks: 4xx naming the field
        if code is not None:
            spec.update(_train_fn_name=body.train_fn_name, _train_fn_source=body.train_fn_source,
                        _train_fn_sha256=hashlib.sha256(code).hexdigest())
        rejection = server.admission.rejection(job, spec)
        state = JobState.REJECTED if rejection else JobState.QUEUED
        job_id = server.store.add(job.name, job.tenant, job.user, spec, code, state=state, detail=rejection or "")
        server.submissions.inc()
        return job_view(server.store.get(job_id))

    @app.get("/jobs")
    def list_jobs(tenant: str | None = None, state: str | None = None) -> list[dict]:
        states = None
        if state:
            try:
                states = (JobState(state.upper()),)
            except ValueError:
                raise HTTPException(422, f"state: {state!r} is not one of "
                                         f"{', '.join(s.value for s in JobState)}") from None
        return [job_view(r) for r in server.store.list(tenant=tenant, states=states)]

    @app.get("/jobs/{job_id}")
    def get_job(job_id: str) -> dict:
        return job_view(record_or_404(job_id))

    @app.get("/jobs/{job_id}/events")
    def job_events(job_id: str) -> list[dict]:
        """The job's state transitions and requests, in order, with time, actor and detail."""
        record_or_404(job_id)
        return server.store.events(job_id)

    @app.get("/jobs/{job_id}/logs", response_class=PlainTextResponse)
    def job_logs(job_id: str) -> str:
        record_or_404(job_id)
        return server.store.logs(job_id)

    @app.get("/jobs/{job_id}/provenance")
    def job_provenance(job_id: str) -> dict:
        """The provenance record of a SUCCEEDED job (JR/T 0221 6.4)."""
        record = record_or_404(job_id)
        if not record.result or not record.result.get("provenance_path"):
            raise HTTPException(409, f"job: {job_id} is {record.state.value}; provenance exists once it SUCCEEDED")
        return json.loads(Path(record.result["provenance_path"]).read_text())

    @app.get("/jobs/{job_id}/checkpoints")
    def job_checkpoints(job_id: str) -> list[dict]:
        """The job's checkpoints with the sha256 recorded when each was written."""
        record_or_404(job_id)
        return server.store.checkpoints(job_id)

    @app.post("/jobs/{job_id}/cancel")
    def cancel(job_id: str, body: CancelRequest) -> dict:
        record_or_404(job_id)
        try:
            state = server.store.request_cancel(job_id, body.actor)
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        return {"id": job_id, "state": state.value, "cancel_requested": True}

    @app.get("/capacity")
    def capacity() -> dict:
        """Capacity per cluster, tier and device kind from the newest snapshot."""
        from cluster.capacity import capacity_report

        state = server.current_snapshot()
        return {**capacity_report(state), "taken_at": state.taken_at, "age_s": round(time.time() - state.taken_at, 3)}

    @app.get("/jobs/{job_id}/placement")
    def placement(job_id: str) -> dict:
        """The job's placement and where its current attempt's workers really run."""
        record = record_or_404(job_id)
        attempts = server.store.attempts_of(job_id)
        return {"placement": record.placement, "attempts": [asdict(a) for a in attempts]}

    app.state.server = server
    return app


def resolve_dataset(path: str, allowed: list[Path]) -> Path:
    """An absolute dataset path the server may read: inside one of `allowed` (when any are set).
    HTTPException 422 naming `dataset` and the fix otherwise."""
    file = Path(path)
    if not file.is_absolute():
        raise HTTPException(422, f"dataset: {path!r} is relative; the server cannot know your working directory: "
                                 "give an absolute path (the SDK and CLI resolve relative paths for you)")
    resolved = file.resolve()
    if allowed and not any(resolved.is_relative_to(root) for root in allowed):
        raise HTTPException(403, f"dataset: {resolved} is outside what this server may read "
                                 f"({', '.join(map(str, allowed))}); move it there or start the server with "
                                 "--data-dir")
    if not resolved.is_file():
        raise HTTPException(422, f"dataset: {resolved} does not exist on the server (or is not a file)")
    if not os.access(resolved, os.R_OK):
        raise HTTPException(403, f"dataset: {resolved} is not readable by the server's user")
    return resolved
