"""Accounts: users and tokens."""

from __future__ import annotations

from fastapi import APIRouter

from runtime.server.auth import Identity
from runtime.server.deps import Caller, ServerDep, require
from runtime.server.domain import accounts
from runtime.server.schemas import NewToken, NewUser

router = APIRouter()


@router.post("/users", status_code=201)
def add_user(body: NewUser, server: ServerDep, identity: Identity = require("users:manage")) -> dict:
    """A new user with a first token (returned once)."""
    token, record = accounts.add_user(server, identity, body.name, body.role, body.tenant, body.expires_s)
    return {"name": body.name, "role": body.role, "tenant": body.tenant, "token": token, "token_id": record["id"]}


@router.get("/users")
def list_users(server: ServerDep, identity: Identity = require("users:manage")) -> list[dict]:
    return server.store.accounts.users()


@router.post("/users/{name}/revoke")
def revoke_user(name: str, server: ServerDep, identity: Identity = require("users:manage")) -> dict:
    """Disable a user and revoke their tokens (409 for yourself or the last admin)."""
    return {"name": name, "tokens_revoked": accounts.revoke_user(server, identity, name)}


@router.post("/tokens", status_code=201)
def create_token(body: NewToken, server: ServerDep, identity: Caller) -> dict:
    """A token for the caller, or (users:manage) for another user; returned once."""
    token, record = accounts.create_token(server, identity, body.user, body.expires_s, body.label)
    return {**record, "token": token}


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: str, server: ServerDep, identity: Caller) -> dict:
    accounts.revoke_token(server, identity, token_id)
    return {"id": token_id, "revoked": True}
