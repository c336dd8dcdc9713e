"""Users and their tokens. Only the sha256 of a token's secret is stored; the rules (roles, names,
lifetimes, the hash itself) are `runtime.server.auth`'s."""

from __future__ import annotations

import time

from sqlalchemy import insert, select, update

from runtime.store.database import Database
from runtime.store.schema import tokens, users


class AccountStore:
    """Add, list and revoke users and tokens; find a token with its user for authentication."""

    def __init__(self, db: Database):
        self.db = db

    def add_user(self, name: str, role: str, tenant: str, created_by: str) -> None:
        """A new active user; ValueError naming the field when the name is taken."""
        with self.db.engine.begin() as conn:
            if conn.execute(select(users.c.name).where(users.c.name == name)).first():
                raise ValueError(f"name: user {name!r} exists already")
            conn.execute(insert(users).values(name=name, role=role, tenant=tenant, created=time.time(),
                                              created_by=created_by, revoked=False))

    def users(self) -> list[dict]:
        """Every user (name, role, tenant, created, created_by, revoked), by name."""
        with self.db.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(users).order_by(users.c.name)).mappings()]

    def revoke_user(self, name: str) -> int:
        """Disable a user and revoke all their tokens, in one transaction; how many tokens were
        revoked. KeyError when there is no such user."""
        with self.db.engine.begin() as conn:
            if conn.execute(update(users).where(users.c.name == name).values(revoked=True)).rowcount != 1:
                raise KeyError(f"user: no user {name!r}")
            return conn.execute(update(tokens).where(tokens.c.user == name, tokens.c.revoked_at.is_(None))
                                .values(revoked_at=time.time())).rowcount

    def add_token(self, token_id: str, user: str, sha256: str, created: float, expires_at: float, label: str) -> None:
        """Store a token (the hash of its secret) for an active user; KeyError when the user does
        not exist or was revoked (nothing stored)."""
        with self.db.engine.begin() as conn:
            row = conn.execute(select(users.c.revoked).where(users.c.name == user)).first()
            if row is None or row.revoked:
                raise KeyError(f"user: no active user {user!r}")
            conn.execute(insert(tokens).values(id=token_id, user=user, sha256=sha256, created=created,
                                               expires_at=expires_at, label=label))

    def revoke_token(self, token_id: str) -> str:
        """Revoke one token; the user it belonged to. KeyError when there is no such token."""
        with self.db.engine.begin() as conn:
            row = conn.execute(select(tokens.c.user).where(tokens.c.id == token_id)).first()
            if row is None:
                raise KeyError(f"token: no token {token_id!r}")
            conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=time.time()))
            return row.user

    def tokens_of(self, user: str) -> list[dict]:
        """The user's tokens without their hashes: id, user, created, expires_at, revoked_at, label."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(tokens.c.id, tokens.c.user, tokens.c.created, tokens.c.expires_at,
                                       tokens.c.revoked_at, tokens.c.label).where(tokens.c.user == user))
            return [dict(r) for r in rows.mappings()]

    def token_with_user(self, token_id: str):
        """The token's row joined with its user's role, tenant and revoked flag (None when unknown)."""
        with self.db.engine.connect() as conn:
            return conn.execute(select(tokens, users.c.role, users.c.tenant, users.c.revoked)
                                .join(users, users.c.name == tokens.c.user).where(tokens.c.id == token_id)).first()

    def token_expiry(self, token_id: str) -> float | None:
        """When the token expires (unix time; None when unknown)."""
        with self.db.engine.connect() as conn:
            return conn.execute(select(tokens.c.expires_at).where(tokens.c.id == token_id)).scalar()
