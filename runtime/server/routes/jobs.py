"""Jobs: submit, list, read (state, events, logs, provenance, checkpoints, placement), cancel."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from runtime.server.auth import Identity
from runtime.server.deps import Caller, ServerDep, job_for, require
from runtime.server.domain import jobs
from runtime.server.schemas import Submission, job_view
from runtime.store import JobRecord

router = APIRouter()


@router.post("/jobs", status_code=201)
def submit(body: Submission, server: ServerDep, identity: Identity = require("jobs:submit")) -> dict:
    """Validate and store a job (QUEUED, or REJECTED with the reason when it can never fit).
    Its user is the caller; its tenant the caller's (admins may name another)."""
    record = jobs.submit(server, identity, body.kind, body.spec, body.train_fn(), body.train_fn_name,
                         body.train_fn_source)
    return job_view(record)


@router.get("/jobs")
def list_jobs(server: ServerDep, identity: Caller, tenant: str | None = None, state: str | None = None) -> list[dict]:
    """The jobs the caller may read: all, their tenant's, or their own, by role."""
    return [job_view(r) for r in jobs.visible_jobs(server, identity, tenant, state)]


@router.get("/jobs/{job_id}")
def get_job(record: JobRecord = job_for("read")) -> dict:
    return job_view(record)


@router.get("/jobs/{job_id}/events")
def job_events(server: ServerDep, record: JobRecord = job_for("read")) -> list[dict]:
    """The job's state transitions and requests, in order, with time, actor and detail."""
    return server.store.jobs.events(record.id)


@router.get("/jobs/{job_id}/logs", response_class=PlainTextResponse)
def job_logs(server: ServerDep, record: JobRecord = job_for("read")) -> str:
    return server.store.logs.text(record.id)


@router.get("/jobs/{job_id}/provenance")
def job_provenance(server: ServerDep, record: JobRecord = job_for("read")) -> dict:
    """The provenance record of a SUCCEEDED job (JR/T 0221 6.4)."""
    return jobs.provenance(server, record)


@router.get("/jobs/{job_id}/checkpoints")
def job_checkpoints(server: ServerDep, record: JobRecord = job_for("read")) -> list[dict]:
    """The job's checkpoints with the sha256 recorded when each was written."""
    return server.store.checkpoints.of(record.id)


@router.get("/jobs/{job_id}/placement")
def placement(server: ServerDep, record: JobRecord = job_for("read")) -> dict:
    """The job's placement and its attempts (where each was placed, how it ended)."""
    return {"placement": record.placement, "attempts": [asdict(a) for a in server.store.attempts.of(record.id)]}


@router.post("/jobs/{job_id}/cancel")
def cancel(server: ServerDep, identity: Caller, record: JobRecord = job_for("cancel")) -> dict:
    """Cancel a job; the actor recorded is the caller."""
    state = jobs.cancel(server, identity, record)
    return {"id": record.id, "state": state.value, "cancel_requested": True}
