"""Liveness, the caller's identity and the Prometheus metrics."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import Response

from runtime import __version__
from runtime.server import API_VERSION
from runtime.server.auth import PERMISSIONS
from runtime.server.deps import Caller, ServerDep
from runtime.server.domain.errors import Forbidden

router = APIRouter()


@router.get("/healthz")
def healthz(server: ServerDep) -> dict:
    """Liveness and role: `active` holds the controller lease, `standby` waits for it."""
    lease = server.store.leases.current()
    controller = server.controller
    return {"status": "ok", "role": server.lease.role, "pid": os.getpid(), "holder": server.lease.holder,
            "lease": lease.as_dict() if lease else None, "version": __version__, "api_version": API_VERSION,
            "ray_address": server.ray_address, "store": server.store.db.where, "audit_chain_ok": server.audit_ok,
            "controller": {"step_failures": controller.step_failures, "last_error": controller.last_error,
                           "last_step_at": controller.last_step_at, "attempts_followed": len(controller.tracked),
                           "slowest_step": controller.slowest_step}}


@router.get("/whoami")
def whoami(identity: Caller) -> dict:
    return {"name": identity.name, "role": identity.role, "tenant": identity.tenant, "token_id": identity.token_id,
            "permissions": sorted(PERMISSIONS[identity.role])}


@router.get("/metrics")
def metrics(server: ServerDep, identity: Caller) -> Response:
    """The server's Prometheus metrics (without a token when the server runs with --metrics-public)."""
    if identity is not None and not identity.may("metrics:read"):
        raise Forbidden.refused(identity, "metrics:read")
    return Response(server.metrics.exposition(), media_type="text/plain; version=0.0.4")
