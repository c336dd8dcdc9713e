"""The persistent store, through SQLAlchemy Core: SQLite (WAL) under the state directory is the
embedded default; PostgreSQL is the store for several servers on several machines.

One store per table, each owning its transactions: `jobs` (with their events), `attempts`,
`checkpoints`, `logs`, `quotas`, `waiting`, `accounts`, the controller's `leases`; the clusters'
registry (`clusters.ClusterStore`) and the audit log's heads (`audit_heads.AuditHeadStore`) take
the same `Database`. `Store` bundles them over one database."""

from __future__ import annotations

from pathlib import Path

from runtime.store.accounts import AccountStore
from runtime.store.attempts import AttemptRecord, AttemptStore
from runtime.store.checkpoints import CheckpointStore
from runtime.store.database import Database, StoreConflict, StoreError, sqlite_url
from runtime.store.jobs import JobRecord, JobStore, Move
from runtime.store.lease import FencedOut, Lease, LeaseStore
from runtime.store.logs import LogStore
from runtime.store.quotas import QuotaStore
from runtime.store.waiting import WaitingStore


class Store:
    """Every table's store over one database (`url`): `store.jobs.get(...)`,
    `store.attempts.end(...)`, ...; `db` is the database itself (its engine, `where`, the
    listeners of job events)."""

    def __init__(self, url: str):
        self.db = Database(url)
        self.jobs = JobStore(self.db)
        self.attempts = AttemptStore(self.db, self.jobs)
        self.checkpoints = CheckpointStore(self.db)
        self.logs = LogStore(self.db)
        self.quotas = QuotaStore(self.db)
        self.waiting = WaitingStore(self.db)
        self.accounts = AccountStore(self.db)
        self.leases = LeaseStore(self.db)

    def close(self) -> None:
        """Close the database's connections."""
        self.db.close()


def open_store(state_dir: str | Path, url: str | None = None) -> Store:
    """The store for a server: `url` (PostgreSQL, say) or SQLite in `state_dir` (created 0700)."""
    directory = Path(state_dir).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    return Store(url or sqlite_url(directory))


__all__ = ["AccountStore", "AttemptRecord", "AttemptStore", "CheckpointStore", "Database", "FencedOut", "JobRecord",
           "JobStore", "Lease", "LeaseStore", "LogStore", "Move", "QuotaStore", "Store", "StoreConflict", "StoreError",
           "WaitingStore", "open_store", "sqlite_url"]
