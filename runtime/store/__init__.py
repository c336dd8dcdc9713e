"""The persistent store: jobs, their events, attempts, checkpoints and logs, and the controller's
lease, through SQLAlchemy Core. SQLite (WAL) under the state directory is the embedded default;
PostgreSQL is the store for several servers on several machines."""

from runtime.store.jobs import (
           AttemptRecord,
           FencedOut,
           JobRecord,
           JobStore,
           Move,
           StoreConflict,
           StoreError,
           open_store,
)
from runtime.store.lease import Lease, LeaseStore

__all__ = ["AttemptRecord", "FencedOut", "JobRecord", "JobStore", "Lease", "LeaseStore", "Move", "StoreConflict",
           "StoreError", "open_store"]
