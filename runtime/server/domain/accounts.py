"""Accounts: users and their tokens, who may create or revoke which, and the rule that an
installation always keeps an admin. Every change is audited here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.server.domain.errors import Conflict, Forbidden, Invalid, NotFound

if TYPE_CHECKING:
    from runtime.server.auth import Identity
    from runtime.server.service import Server


def add_user(server: Server, identity: Identity, name: str, role: str, tenant: str,
             expires_s: float) -> tuple[str, dict]:
    """A new user with a first token: (the token, shown once; its record)."""
    try:
        server.accounts.add_user(name, role, tenant, created_by=identity.name)
        token, record = server.accounts.create_token(name, expires_s, label="first token")
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    server.events.user_added(identity.name, name, role, tenant)
    server.events.token_created(identity.name, name, record["id"], record["expires_at"])
    return token, record


def revoke_user(server: Server, identity: Identity, name: str) -> int:
    """Disable `name` and revoke their tokens; how many tokens. Conflict for the caller themself
    or the last admin (an installation without an admin is locked), NotFound for no such user."""
    admins = [u["name"] for u in server.store.accounts.users() if u["role"] == "admin" and not u["revoked"]]
    if name == identity.name or admins == [name]:
        raise Conflict(f"name: {name!r} is {'you' if name == identity.name else 'the last admin'}; "
                       "another admin must revoke it (an installation without an admin is locked)")
    try:
        revoked = server.store.accounts.revoke_user(name)
    except KeyError as exc:
        raise NotFound(exc.args[0]) from None
    server.forget_identities()
    server.events.user_revoked(identity.name, name, revoked)
    return revoked


def create_token(server: Server, identity: Identity, user: str | None, expires_s: float,
                 label: str) -> tuple[str, dict]:
    """A token for the caller, or (users:manage) for another user: (the token, shown once; its record)."""
    try:
        user = server.accounts.token_owner(identity, user)
    except PermissionError as exc:
        raise Forbidden(str(exc)) from None
    try:
        token, record = server.accounts.create_token(user, expires_s, label)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    except KeyError as exc:
        raise NotFound(exc.args[0]) from None
    server.events.token_created(identity.name, user, record["id"], record["expires_at"])
    return token, record


def revoke_token(server: Server, identity: Identity, token_id: str) -> None:
    """Revoke one of the caller's tokens, or (users:manage) anyone's."""
    own = any(t["id"] == token_id for t in server.store.accounts.tokens_of(identity.name))
    if not own and not identity.may("users:manage"):
        raise Forbidden.refused(identity, f"revoke token {token_id}")
    try:
        owner = server.store.accounts.revoke_token(token_id)
    except KeyError as exc:
        raise NotFound(exc.args[0]) from None
    server.forget_identities()
    server.events.token_revoked(identity.name, owner, token_id)
