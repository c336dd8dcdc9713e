"""Quotas: each cap with its use, and setting one."""

from __future__ import annotations

from fastapi import APIRouter

from runtime.server.auth import Identity
from runtime.server.deps import ServerDep, require
from runtime.server.domain import quotas
from runtime.server.schemas import QuotaLimits

router = APIRouter()


@router.get("/quotas")
def list_quotas(server: ServerDep, identity: Identity = require("capacity:read")) -> list[dict]:
    """Every cap with what is in use against it now."""
    return quotas.quota_report(server.store)


@router.put("/quotas/{scope}/{name}")
def set_quota(scope: str, name: str, body: QuotaLimits, server: ServerDep,
              identity: Identity = require("users:manage")) -> dict:
    """Cap a tenant's or a user's devices per kind and concurrent jobs (an empty body removes it)."""
    limits = body.model_dump(exclude_none=True)
    return {"key": quotas.set_quota(server, identity, scope, name, limits), "limits": limits}
