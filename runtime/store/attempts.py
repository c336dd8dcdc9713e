"""Attempts: each launch of a job, where it was placed, the backend's handle and how it ended.

An attempt's start and its job's QUEUED -> STARTING, and an attempt's end and its job's moves,
are each ONE transaction (`start`, `end`): a crash or a lost lease between the two can never
leave a job without its attempt or an active job with an ended attempt. Every write here is the
controller's and carries its lease token (`fence`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from runtime.specs import JobState
from runtime.store.database import Database, from_json, to_json
from runtime.store.jobs import JobStore, Move, current_state
from runtime.store.lease import check_fence
from runtime.store.logs import append_line
from runtime.store.schema import attempts

ATTEMPT_FIELDS = ("state", "handle", "outcome", "error", "ended")  # what `update` may set
FENCED_OUTCOMES = ("fenced", "fenced-stopped")  # an attempt fenced off when its cluster was lost


@dataclass(frozen=True)
class AttemptRecord:
    """One launch of a job: where it was placed, the backend's handle, and how it ended."""

    job_id: str
    number: int
    state: str
    backend: str
    handle: dict | None
    placement: dict
    started: float
    ended: float | None
    outcome: str | None
    error: str | None
    fence: int


class AttemptStore:
    """Start, update, end and read attempts; the job moves that go with a start or an end are
    made through `jobs` in the same transaction."""

    def __init__(self, db: Database, jobs: JobStore):
        self.db = db
        self.jobs = jobs

    def start(self, job_id: str, placement: dict, backend: str, fence: int, detail: str,
              handle: dict) -> int | None:
        """QUEUED -> STARTING with a new attempt row (and the backend's handle for it), in one
        transaction; the attempt's number, or None when the job is no longer QUEUED."""
        with self.db.write() as conn:
            check_fence(conn, fence)
            now = time.time()
            number = self.jobs.claim_attempt(conn, job_id, placement, now)
            if number is None:
                return None
            conn.execute(insert(attempts).values(job_id=job_id, number=number, state="launching", backend=backend,
                                                 handle=to_json(handle), placement=to_json(placement), started=now,
                                                 fence=fence))
            self.jobs.event(conn, job_id, JobState.STARTING.value, "controller", detail, number, fence)
            append_line(conn, job_id, f"STARTING attempt {number}: {detail}")
        return number

    def update(self, job_id: str, number: int, fence: int, **fields: Any) -> None:
        """Set an attempt's state, handle, outcome, error or end time (a fenced write)."""
        for key in fields:
            if key not in ATTEMPT_FIELDS:
                raise ValueError(f"fields: {key!r} cannot be set on an attempt")
        values = {k: (to_json(v) if k == "handle" else v) for k, v in fields.items()}
        with self.db.engine.begin() as conn:
            check_fence(conn, fence)
            conn.execute(update(attempts).where(attempts.c.job_id == job_id, attempts.c.number == number).values(**values))

    def end(self, job_id: str, number: int, fence: int, outcome: str, error: str | None = None,
            moves: Iterable[Move] = (), expect: Iterable[JobState] | None = None) -> bool:
        """End an attempt (its outcome, error and end time) and move its job through `moves`, in
        ONE transaction: a crash or a lost lease between the two can never leave an active job
        with an ended attempt. False (nothing written) when the job is not in one of `expect`."""
        with self.db.write() as conn:
            check_fence(conn, fence)
            if expect is not None and current_state(conn, job_id) not in tuple(expect):
                return False
            conn.execute(update(attempts).where(attempts.c.job_id == job_id, attempts.c.number == number)
                         .values(state="ended", outcome=outcome, error=error, ended=time.time()))
            for move in moves:
                self.jobs.apply(conn, job_id, move, None, fence, number)
        return True

    def get(self, job_id: str, number: int) -> AttemptRecord | None:
        """Attempt `number` of the job (None when there is none)."""
        with self.db.reader.connect() as conn:
            row = conn.execute(select(attempts).where(attempts.c.job_id == job_id, attempts.c.number == number)
                               ).mappings().first()
        return None if row is None else _attempt(row)

    def of(self, job_id: str) -> list[AttemptRecord]:
        """The job's attempts, first first."""
        with self.db.reader.connect() as conn:
            rows = conn.execute(select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.number))
            return [_attempt(r) for r in rows.mappings()]

    def open(self) -> list[AttemptRecord]:
        """Attempts that have not ended: what a new lease holder must adopt or requeue."""
        with self.db.reader.connect() as conn:
            rows = conn.execute(select(attempts).where(attempts.c.state != "ended").order_by(attempts.c.started))
            return [_attempt(r) for r in rows.mappings()]

    def fenced(self) -> list[AttemptRecord]:
        """Attempts fenced off when their cluster was lost whose stale run has not been stopped
        yet (outcome "fenced"; "fenced-stopped" once it was)."""
        with self.db.reader.connect() as conn:
            rows = conn.execute(select(attempts).where(attempts.c.outcome == "fenced").order_by(attempts.c.started))
            return [_attempt(r) for r in rows.mappings()]


def _attempt(row) -> AttemptRecord:
    return AttemptRecord(
        job_id=row["job_id"], number=row["number"], state=row["state"], backend=row["backend"],
        handle=from_json(row["handle"]), placement=json.loads(row["placement"]), started=row["started"],
        ended=row["ended"], outcome=row["outcome"], error=row["error"], fence=row["fence"])
