"""What routes ask FastAPI for: the server, the caller's identity (set by the authenticating
middleware), a permission check (`require`) and a job the caller may act on (`job_for`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from runtime.server.auth import Identity
from runtime.server.domain.errors import Forbidden, Invalid
from runtime.server.domain.jobs import visible_job
from runtime.server.service import Server
from runtime.store import JobRecord


def server_of(request: Request) -> Server:
    """The server this app serves."""
    return request.app.state.server


def caller_of(request: Request) -> Identity:
    """The authenticated caller (None only on public paths)."""
    return getattr(request.state, "identity", None)


ServerDep = Annotated[Server, Depends(server_of)]
Caller = Annotated[Identity, Depends(caller_of)]


def require(permission: str):
    """A dependency giving the caller when their role has `permission`; Forbidden otherwise."""
    def check(identity: Caller) -> Identity:
        if not identity.may(permission):
            raise Forbidden.refused(identity, permission)
        return identity
    return Depends(check)


def job_for(action: str):
    """A dependency giving the path's job when the caller may `action` it (jobs:`action`:own|tenant|all)."""
    def check(job_id: str, server: ServerDep, identity: Caller) -> JobRecord:
        return visible_job(server, identity, job_id, action)
    return Depends(check)


def may_change_stage(action: str, identity: Caller) -> Identity:
    """The caller, when their role allows the registry change `action` (the path's): checked before
    the body is read."""
    from runtime.artifacts.registry import STAGE_CHANGES

    if action not in STAGE_CHANGES:
        raise Invalid(f"action: {action!r} is not a registry change ({', '.join(STAGE_CHANGES)})")
    if not identity.may(STAGE_CHANGES[action]):
        raise Forbidden.refused(identity, STAGE_CHANGES[action])
    return identity
