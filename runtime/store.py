"""The persistent job store: SQLite in WAL mode under the state directory.

Every state change is written (and committed) before it is acted on, with an event row saying
who did what and when, so a controller killed at any moment restarts without losing a job.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.specs import JobState

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, tenant TEXT NOT NULL, user TEXT NOT NULL,
    state TEXT NOT NULL, spec TEXT NOT NULL, train_fn BLOB, created REAL NOT NULL, updated REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, placement TEXT, result TEXT, error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, at REAL NOT NULL, kind TEXT NOT NULL,
    actor TEXT NOT NULL, detail TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class JobRecord:
    """One stored job."""

    id: str
    name: str
    tenant: str
    user: str
    state: JobState
    spec: dict
    train_fn: bytes | None
    created: float
    updated: float
    attempts: int
    placement: dict | None
    result: dict | None
    error: str | None
    cancel_requested: bool


class JobStore:
    """Jobs and their events in `state_dir/jobs.db`; logs in `state_dir/logs/`. Thread-safe."""

    def __init__(self, state_dir: str | Path):
        self.state_dir = Path(state_dir).expanduser()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.state_dir / "jobs.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _event(self, job_id: str, kind: str, actor: str, detail: str) -> None:
        self._db.execute("INSERT INTO events(job_id, at, kind, actor, detail) VALUES (?,?,?,?,?)",
                         (job_id, time.time(), kind, actor, detail))

    def add(self, name: str, tenant: str, user: str, spec: dict, train_fn: bytes | None) -> str:
        """Store a new QUEUED job; its id."""
        job_id = f"{name}-{uuid.uuid4().hex[:8]}"
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO jobs(id, name, tenant, user, state, spec, train_fn, created, updated) VALUES (?,?,?,?,?,?,?,?,?)",
                (job_id, name, tenant, user, JobState.QUEUED.value, json.dumps(spec), train_fn, now, now))
            self._event(job_id, "submitted", user, f"tenant {tenant}")
            self._db.execute("COMMIT")
        self.log(job_id, f"submitted by {user} (tenant {tenant})")
        return job_id

    def transition(self, job_id: str, state: JobState, actor: str = "controller", detail: str = "",
                   expect: tuple[JobState, ...] | None = None, **fields: Any) -> bool:
        """Move a job to `state` (only from one of `expect`, when given), updating `fields`
        (placement, result, error, attempts) in the same transaction. False if not moved."""
        sets = ["state = ?", "updated = ?"]
        values: list[Any] = [state.value, time.time()]
        for key, value in fields.items():
            if key not in ("placement", "result", "error", "attempts"):
                raise ValueError(f"fields: {key!r} cannot be set on a job")
            sets.append(f"{key} = ?")
            values.append(json.dumps(value) if key in ("placement", "result") and value is not None else value)
        where = "id = ?"
        values.append(job_id)
        if expect:
            where += f" AND state IN ({','.join('?' * len(expect))})"
            values += [s.value for s in expect]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            moved = self._db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE {where}", values).rowcount == 1
            if moved:
                self._event(job_id, state.value, actor, detail)
            self._db.execute("COMMIT")
        if moved:
            self.log(job_id, f"{state.value}{': ' + detail if detail else ''}")
        return moved

    def request_cancel(self, job_id: str, actor: str) -> None:
        """Mark a job for cancellation (the controller stops it and records CANCELLED)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            if self._db.execute("UPDATE jobs SET cancel_requested = 1, updated = ? WHERE id = ?",
                                (time.time(), job_id)).rowcount != 1:
                self._db.execute("ROLLBACK")
                raise KeyError(f"job: no job {job_id!r}")
            self._event(job_id, "cancel-requested", actor, "")
            self._db.execute("COMMIT")

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(f"job: no job {job_id!r}")
        return self._record(row)

    def list(self, tenant: str | None = None, state: JobState | None = None) -> list[JobRecord]:
        query, args = "SELECT * FROM jobs WHERE 1=1", []
        if tenant:
            query += " AND tenant = ?"
            args.append(tenant)
        if state:
            query += " AND state = ?"
            args.append(state.value)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created", args).fetchall()
        return [self._record(r) for r in rows]

    def cancellations_pending(self) -> list[JobRecord]:
        """Jobs whose cancellation was asked for and that have not finished."""
        finished = [s.value for s in JobState if s.finished]
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE cancel_requested = 1 AND state NOT IN ({','.join('?' * len(finished))})",
                finished).fetchall()
        return [self._record(r) for r in rows]

    def events(self, job_id: str | None = None) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, job_id, at, kind, actor, detail FROM events" + (" WHERE job_id = ?" if job_id else "")
                + " ORDER BY seq", (job_id,) if job_id else ()).fetchall()
        return [dict(zip(("seq", "job_id", "at", "kind", "actor", "detail"), r, strict=True)) for r in rows]

    def log_path(self, job_id: str) -> Path:
        return self.state_dir / "logs" / f"{job_id}.log"

    def log(self, job_id: str, line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with self.log_path(job_id).open("a") as f:
            f.write(f"{stamp}Z {line}\n")

    @staticmethod
    def _record(row) -> JobRecord:
        (job_id, name, tenant, user, state, spec, fn, created, updated, attempts, placement, result, error,
         cancel) = row
        return JobRecord(job_id, name, tenant, user, JobState(state), json.loads(spec), fn, created, updated, attempts,
                         json.loads(placement) if placement else None, json.loads(result) if result else None, error,
                         bool(cancel))
