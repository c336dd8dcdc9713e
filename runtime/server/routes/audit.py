"""The audit log: its tail, its verification, and artifact events the SDK reports."""

from __future__ import annotations

from fastapi import APIRouter

from runtime.server.auth import Identity
from runtime.server.deps import Caller, ServerDep, require
from runtime.server.domain import reports
from runtime.server.schemas import ArtifactEvent

router = APIRouter()


@router.get("/audit/tail")
def audit_tail(server: ServerDep, n: int = 50, identity: Identity = require("audit:read")) -> list[dict]:
    from runtime.audit.log import AuditLog

    return AuditLog.read_tail(server.audit.directory, max(1, min(n, 10_000)))


@router.post("/audit/events", status_code=201)
def report_event(body: ArtifactEvent, server: ServerDep, identity: Caller) -> dict:
    """Record an artifact event that the SDK carried out in the caller's process (export and
    signing, verification failures, compression, registry changes, deployment). The caller's
    role must allow the action; the actor is the caller."""
    return {"seq": reports.report(server, identity, body.type, body.detail)}


@router.get("/audit/verify")
def audit_verify(server: ServerDep, identity: Identity = require("audit:read")) -> dict:
    verdict = server.verify_audit()
    return {"ok": verdict.ok, "records": verdict.records, "checkpoints": verdict.checkpoints,
            "first_bad_seq": verdict.first_bad_seq, "reason": verdict.reason}
