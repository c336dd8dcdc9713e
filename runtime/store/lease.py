"""The controller's lease, as in Kubernetes leader election: one holder at a time, renewed before
it expires; each new holder gets a larger fencing token, which every controller write carries.

Expiry uses the servers' wall clocks: servers sharing a store must keep their clocks within a
small fraction of the TTL of each other (NTP), as Kubernetes' leases assume too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from runtime.store.database import Database
from runtime.store.schema import leases

CONTROLLER_LEASE = "controller"


class FencedOut(RuntimeError):
    """A controller write carried a lease token that is no longer the lease's: it was refused."""


def check_fence(conn: Connection, fence: int | None) -> None:
    """Inside a write transaction: FencedOut unless `fence` is the controller lease's current
    token (None: a write that is not the controller's, never refused). On PostgreSQL the lease's
    row stays share-locked until the transaction ends, so a takeover waits for this write."""
    if fence is None:
        return
    query = select(leases.c.token).where(leases.c.name == CONTROLLER_LEASE)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True)  # a takeover waits until this write commits
    token = conn.execute(query).scalar()
    if token != fence:
        raise FencedOut(f"write refused: lease token {fence} is stale (the lease's token is {token})")


@dataclass(frozen=True)
class Lease:
    """The lease as stored: who holds it, its fencing token, and until when."""

    holder: str
    token: int
    acquired_at: float
    renewed_at: float
    expires_at: float

    def as_dict(self, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        return {"holder": self.holder, "token": self.token, "acquired_at": self.acquired_at,
                "renewed_at": self.renewed_at, "expires_at": self.expires_at,
                "expires_in_s": round(self.expires_at - now, 3)}


class LeaseStore:
    """Acquire, renew and release the controller lease in the store's database."""

    def __init__(self, db: Database, name: str = CONTROLLER_LEASE):
        self.db = db
        self.name = name

    def current(self) -> Lease | None:
        """The lease as stored now (None before anyone took it)."""
        with self.db.engine.connect() as conn:
            row = conn.execute(select(leases).where(leases.c.name == self.name)).mappings().first()
        return None if row is None else Lease(row["holder"], row["token"], row["acquired_at"], row["renewed_at"],
                                              row["expires_at"])

    def try_acquire(self, holder: str, ttl_s: float) -> Lease | None:
        """Take or renew the lease for `holder`: free, expired, or already `holder`'s. The lease as
        held now (a new token when it changed hands), or None while another holder's is live."""
        now = time.time()
        with self.db.engine.begin() as conn:
            query = select(leases).where(leases.c.name == self.name)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).mappings().first()
            if row is None:
                conn.execute(insert(leases).values(name=self.name, holder=holder, token=1, acquired_at=now,
                                                   renewed_at=now, expires_at=now + ttl_s))
                return Lease(holder, 1, now, now, now + ttl_s)
            if row["holder"] == holder and row["expires_at"] > now:
                conn.execute(update(leases).where(leases.c.name == self.name)
                             .values(renewed_at=now, expires_at=now + ttl_s))
                return Lease(holder, row["token"], row["acquired_at"], now, now + ttl_s)
            if row["expires_at"] > now:
                return None
            token = row["token"] + 1  # changes hands (or the same holder after expiry): a new token
            conn.execute(update(leases).where(leases.c.name == self.name).values(
                holder=holder, token=token, acquired_at=now, renewed_at=now, expires_at=now + ttl_s))
            return Lease(holder, token, now, now, now + ttl_s)

    def release(self, holder: str, token: int) -> bool:
        """Give the lease up at once (a clean shutdown), so a standby takes over without waiting."""
        with self.db.engine.begin() as conn:
            done = conn.execute(update(leases).where(leases.c.name == self.name, leases.c.holder == holder,
                                                     leases.c.token == token).values(expires_at=0.0))
            return done.rowcount == 1
