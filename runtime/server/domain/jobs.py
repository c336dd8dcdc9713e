"""Jobs: who may see and cancel which job, and what a submission becomes (QUEUED, or REJECTED
with the reason when it can never fit)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from pydantic import ValidationError

from runtime.server.domain.errors import Conflict, Forbidden, Invalid, NotFound, first_validation_error
from runtime.specs import FeatureJob, JobState, TrainingJob
from runtime.store import JobRecord

if TYPE_CHECKING:
    from runtime.server.auth import Identity
    from runtime.server.service import Server


def visible_job(server: Server, identity: Identity, job_id: str, action: str) -> JobRecord:
    """The job `job_id` if `identity` may `action` it (jobs:`action`:own|tenant|all); Forbidden
    when the role has no such permission or the job is outside its scope, NotFound when unknown."""
    if identity.job_scope(action) is None:
        raise Forbidden.refused(identity, f"jobs:{action}")
    try:
        record = server.store.jobs.get(job_id)
    except KeyError:
        raise NotFound(f"job: no job {job_id!r}") from None
    if not identity.can_touch(action, record.user, record.tenant):
        raise Forbidden.refused(identity, f"{action} job {job_id} of {record.user} (tenant {record.tenant})")
    return record


def visible_jobs(server: Server, identity: Identity, tenant: str | None, state: str | None) -> list[JobRecord]:
    """The jobs `identity` may read (all, their tenant's or their own, by role), optionally of
    one tenant (callers who may read all) and one state."""
    scope = identity.job_scope("read")
    if scope is None:
        raise Forbidden.refused(identity, "jobs:read")
    states = None
    if state:
        try:
            states = (JobState(state.upper()),)
        except ValueError:
            raise Invalid(f"state: {state!r} is not one of {', '.join(s.value for s in JobState)}") from None
    records = server.store.jobs.list(tenant=tenant if scope == "all" else identity.tenant, states=states)
    return [r for r in records if scope != "own" or r.user == identity.name]


def submit(server: Server, identity: Identity, kind: str, fields: dict, code: bytes | None,
           train_fn_name: str | None = None, train_fn_source: str | None = None) -> JobRecord:
    """Validate and store a job of `kind` ("training" or "features") from the spec `fields`. Its
    user is the caller; its tenant the caller's (admins may name another). Invalid naming the
    field for a bad spec; the stored record otherwise (REJECTED with the reason if it can never fit)."""
    fields = dict(fields)
    tenant = fields.get("tenant") or identity.tenant
    if tenant != identity.tenant and identity.role != "admin":
        raise Forbidden.refused(identity, f"submit for tenant {tenant!r} (yours is {identity.tenant!r})")
    fields.update(tenant=tenant, user=identity.name)
    if kind == "features":
        try:
            job = FeatureJob.model_validate(fields)
        except ValidationError as err:
            raise Invalid(first_validation_error(err, "spec.")) from None
        spec = server.admission.prepare_features(job)
        rejection = server.admission.rejection_for(job.tenant, 1, spec)
        code = None
    else:
        try:
            job = TrainingJob.model_validate(fields, context={"has_train_fn": code is not None})
        except ValidationError as err:
            raise Invalid(first_validation_error(err, "spec.")) from None
        spec = server.admission.prepare(job)
        if code is not None:
            spec.update(_train_fn_name=train_fn_name, _train_fn_source=train_fn_source,
                        _train_fn_sha256=hashlib.sha256(code).hexdigest())
        rejection = server.admission.rejection_for(job.tenant, job.workers, spec)
    state = JobState.REJECTED if rejection else JobState.QUEUED
    job_id = server.store.jobs.add(job.name, job.tenant, job.user, spec, code, state=state, detail=rejection or "")
    server.submissions.inc()
    return server.store.jobs.get(job_id)


def provenance(server: Server, record: JobRecord) -> dict:
    """The provenance record of a SUCCEEDED job (JR/T 0221 6.4), read from its run directory
    without following a link; Conflict before it succeeded."""
    from runtime.rundir import RunFileError, RunsDir

    if not record.result or not record.result.get("provenance_path"):
        raise Conflict(f"job: {record.id} is {record.state.value}; provenance exists once it SUCCEEDED")
    try:
        found = RunsDir(server.runs_dir).job(record.id).provenance()
    except RunFileError as exc:
        raise Conflict(f"provenance: {exc}") from None
    if found is None:
        raise NotFound(f"provenance: job {record.id}'s record is gone from the runs directory")
    return found


def cancel(server: Server, identity: Identity, record: JobRecord) -> JobState:
    """Ask for the job's cancellation as `identity`; its state after. Conflict once it finished."""
    try:
        return server.store.jobs.request_cancel(record.id, identity.name)
    except ValueError as exc:
        raise Conflict(str(exc)) from None
