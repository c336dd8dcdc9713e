"""Jobs and their events.

Every state change goes through `transition` (or `move`, several in one transaction), which
enforces `runtime.specs.TRANSITIONS` inside the write transaction with a conditional update
(`WHERE state =` the state read) and records an event and a log line. Writes the controller makes
carry its lease token (`fence`), checked against the lease in the same transaction (`FencedOut`
when it is stale). The attempts' store moves a job in the same transaction as its attempt's start
or end, through `claim_attempt` and `apply`.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from runtime.specs import JobState, check_transition
from runtime.store.database import Database, StoreConflict, from_json, to_json
from runtime.store.lease import check_fence
from runtime.store.logs import append_line
from runtime.store.schema import events, jobs
from schedulers.types import Placement

JOB_FIELDS = ("placement", "result", "error", "failures", "progress")  # what a state change may also set


@dataclass(frozen=True)
class Move:
    """One state change of a job: to `state`, with the event's detail and actor, setting `fields`
    (any of JOB_FIELDS) in the same write."""

    state: JobState
    detail: str = ""
    actor: str = "controller"
    fields: dict = field(default_factory=dict)


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
    train_fn_sha256: str | None
    created: float
    updated: float
    attempts: int
    failures: int
    placement: dict | None
    progress: dict | None
    result: dict | None
    error: str | None
    cancel_requested: bool

    @property
    def placed(self) -> Placement | None:
        """The job's current placement, typed (None before its first)."""
        return Placement.from_dict(self.placement) if self.placement else None


def current_state(conn: Connection, job_id: str) -> JobState:
    """The job's state, its row locked until the transaction ends (PostgreSQL: FOR UPDATE;
    SQLite's BEGIN IMMEDIATE already holds the only write lock); KeyError when there is none."""
    query = select(jobs.c.state).where(jobs.c.id == job_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    current = conn.execute(query).scalar()
    if current is None:
        raise KeyError(f"job: no job {job_id!r}")
    return JobState(current)


class JobStore:
    """Add, move, cancel and read jobs; their events reach the database's listeners once each
    write commits."""

    def __init__(self, db: Database):
        self.db = db

    # ---- writes ----------------------------------------------------------------------------
    def add(self, name: str, tenant: str, user: str, spec: dict, train_fn: bytes | None,
            state: JobState = JobState.QUEUED, detail: str = "") -> str:
        """Store a new job (QUEUED, or REJECTED with `detail` as its error); its id."""
        job_id = f"{name}-{uuid.uuid4().hex[:8]}"
        now = time.time()
        with self.db.write() as conn:
            conn.execute(insert(jobs).values(
                id=job_id, name=name, tenant=tenant, user=user, state=state.value, spec=json.dumps(spec),
                train_fn=train_fn, train_fn_sha256=hashlib.sha256(train_fn).hexdigest() if train_fn else None,
                created=now, updated=now, attempts=0, failures=0, cancel_requested=False,
                error=detail if state == JobState.REJECTED else None))
            self.event(conn, job_id, "submitted", user, f"tenant {tenant}")
            append_line(conn, job_id, f"submitted by {user} (tenant {tenant})")
            if state != JobState.QUEUED:
                self.event(conn, job_id, state.value, "scheduler", detail)
                append_line(conn, job_id, f"{state.value}: {detail}")
        return job_id

    def transition(self, job_id: str, state: JobState, actor: str = "controller", detail: str = "",
                   expect: Iterable[JobState] | None = None, fence: int | None = None, attempt: int | None = None,
                   **fields: Any) -> bool:
        """Move a job to `state`, updating `fields` (placement, result, error, failures, progress) in
        the same transaction, with an event. False when the job is not in one of `expect` (it moved
        meanwhile); ValueError when the table of transitions forbids the move; FencedOut when
        `fence` is not the lease's current token."""
        with self.db.write() as conn:
            check_fence(conn, fence)
            return self.apply(conn, job_id, Move(state, detail, actor, fields), expect, fence, attempt)

    def apply(self, conn: Connection, job_id: str, move: Move, expect: Iterable[JobState] | None,
              fence: int | None, attempt: int | None) -> bool:
        """One state change inside the caller's transaction: a conditional update (`WHERE state =`
        the state read), so two writers can never both move the job from the same state
        (StoreConflict when the row changed under it). False when the job is not in `expect`."""
        for key in move.fields:
            if key not in JOB_FIELDS:
                raise ValueError(f"fields: {key!r} cannot be set on a job")
        values = {k: (to_json(v) if k in ("placement", "result", "progress") else v) for k, v in move.fields.items()}
        current = current_state(conn, job_id)
        if expect is not None and current not in tuple(expect):
            return False
        check_transition(current, move.state)
        changed = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == current.value)
                               .values(state=move.state.value, updated=time.time(), **values)).rowcount
        if changed != 1:
            raise StoreConflict(f"job: {job_id} changed state while it was being moved to {move.state.value}; retry")
        self.event(conn, job_id, move.state.value, move.actor, move.detail, attempt, fence)
        append_line(conn, job_id, f"{move.state.value}{': ' + move.detail if move.detail else ''}")
        return True

    def move(self, job_id: str, moves: Iterable[Move], fence: int | None = None,
             expect: Iterable[JobState] | None = None, attempt: int | None = None) -> bool:
        """Move a job through `moves`, in order, in one transaction (False, nothing written, when
        it is not in one of `expect`)."""
        with self.db.write() as conn:
            check_fence(conn, fence)
            if expect is not None and current_state(conn, job_id) not in tuple(expect):
                return False
            for step in moves:
                self.apply(conn, job_id, step, None, fence, attempt)
        return True

    def claim_attempt(self, conn: Connection, job_id: str, placement: dict, now: float) -> int | None:
        """Inside the caller's transaction: QUEUED -> STARTING with `placement` and the attempt
        count raised by one, as a conditional update; the new attempt's number, or None when the
        job is no longer QUEUED or its cancellation was asked for (nothing written)."""
        query = select(jobs.c.state, jobs.c.attempts, jobs.c.cancel_requested).where(jobs.c.id == job_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None or row.state != JobState.QUEUED.value or row.cancel_requested:
            return None
        number = row.attempts + 1
        changed = conn.execute(update(jobs).where(
            jobs.c.id == job_id, jobs.c.state == JobState.QUEUED.value, jobs.c.cancel_requested.is_(False),
            jobs.c.attempts == row.attempts).values(
            state=JobState.STARTING.value, attempts=number, placement=to_json(placement), updated=now)).rowcount
        return number if changed == 1 else None

    def note(self, job_id: str, detail: str, fence: int | None, attempt: int | None = None,
             actor: str = "controller") -> None:
        """An event that changes no state (kind NOTE): something the job's story should tell."""
        with self.db.write() as conn:
            check_fence(conn, fence)
            self.event(conn, job_id, "NOTE", actor, detail, attempt, fence)
            append_line(conn, job_id, f"NOTE: {detail}")

    def set_progress(self, job_id: str, progress: dict, fence: int | None) -> None:
        """Record what the controller measured of a running job (epochs done, seconds per epoch)."""
        with self.db.engine.begin() as conn:
            check_fence(conn, fence)
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(progress=to_json(progress)))

    def request_cancel(self, job_id: str, actor: str) -> JobState:
        """Ask for a job's cancellation. A QUEUED job is CANCELLED at once; a job with an attempt
        is marked, and the controller stops the attempt and records CANCELLED. The job's state
        after the call; ValueError when it has already finished."""
        with self.db.write() as conn:
            current = current_state(conn, job_id)
            if current.finished:
                raise ValueError(f"job: {job_id} has already finished ({current.value}); nothing to cancel")
            changed = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == current.value).values(
                cancel_requested=True, updated=time.time(),
                **({"state": JobState.CANCELLED.value} if current == JobState.QUEUED else {}))).rowcount
            if changed != 1:
                raise StoreConflict(f"job: {job_id} changed state during the cancellation; retry")
            self.event(conn, job_id, "cancel-requested", actor, "")
            if current == JobState.QUEUED:
                self.event(conn, job_id, JobState.CANCELLED.value, actor, "cancelled on request before it started")
                append_line(conn, job_id, "CANCELLED: cancelled on request before it started")
                return JobState.CANCELLED
            append_line(conn, job_id, f"cancellation requested by {actor}")
            return current

    def event(self, conn: Connection, job_id: str, kind: str, actor: str, detail: str, attempt: int | None = None,
              fence: int | None = None) -> None:
        """Record an event of the job inside the caller's transaction; the database's listeners
        get it once that transaction commits."""
        values = dict(job_id=job_id, at=time.time(), kind=kind, actor=actor, detail=detail, attempt=attempt, fence=fence)
        conn.execute(insert(events).values(**values))
        self.db.publish(values)

    # ---- reads -----------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord:
        """The job; KeyError naming it when there is none."""
        with self.db.reader.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        if row is None:
            raise KeyError(f"job: no job {job_id!r}")
        return _record(row)

    def list(self, tenant: str | None = None, states: Iterable[JobState] | None = None,
             cancel_requested: bool | None = None) -> list[JobRecord]:
        """Jobs in submission order, filtered by tenant, states and the cancellation flag."""
        query = select(jobs).order_by(jobs.c.created)
        if tenant:
            query = query.where(jobs.c.tenant == tenant)
        if states is not None:
            query = query.where(jobs.c.state.in_([s.value for s in states]))
        if cancel_requested is not None:
            query = query.where(jobs.c.cancel_requested == cancel_requested)
        with self.db.reader.connect() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]

    def versions(self, states: Iterable[JobState], cancel_requested: bool | None = None) -> list[tuple[str, float]]:
        """(id, updated) of the jobs in `states`, in submission order: a cheap read that tells a
        caller which of the records it holds changed (every write to a job sets `updated`)."""
        query = select(jobs.c.id, jobs.c.updated).where(jobs.c.state.in_([s.value for s in states])
                                                         ).order_by(jobs.c.created)
        if cancel_requested is not None:
            query = query.where(jobs.c.cancel_requested == cancel_requested)
        with self.db.reader.connect() as conn:
            return [(r.id, r.updated) for r in conn.execute(query)]

    def changed_since(self, since: float) -> list[tuple[str, float, JobState, bool]]:
        """(id, updated, state, cancel_requested) of every job written at or after `since` (by the
        writer's clock): what an incremental reader must look at again."""
        query = select(jobs.c.id, jobs.c.updated, jobs.c.state, jobs.c.cancel_requested).where(jobs.c.updated >= since)
        with self.db.reader.connect() as conn:
            return [(r.id, r.updated, JobState(r.state), bool(r.cancel_requested)) for r in conn.execute(query)]

    def records(self, ids: Iterable[str]) -> dict[str, JobRecord]:
        """The jobs of `ids` that exist, by id (read in chunks: one IN list per 500)."""
        ids = list(ids)
        found: dict[str, JobRecord] = {}
        with self.db.reader.connect() as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(select(jobs).where(jobs.c.id.in_(ids[start:start + 500]))).mappings()
                found.update((row["id"], _record(row)) for row in rows)
        return found

    def events(self, job_id: str | None = None) -> list[dict]:
        """The events of one job (or of every job), oldest first."""
        query = select(events).order_by(events.c.seq)
        if job_id:
            query = query.where(events.c.job_id == job_id)
        with self.db.reader.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def count(self) -> int:
        """How many jobs are stored."""
        with self.db.reader.connect() as conn:
            return conn.execute(select(func.count()).select_from(jobs)).scalar_one()


def _record(row) -> JobRecord:
    return JobRecord(
        id=row["id"], name=row["name"], tenant=row["tenant"], user=row["user"], state=JobState(row["state"]),
        spec=json.loads(row["spec"]), train_fn=row["train_fn"], train_fn_sha256=row["train_fn_sha256"],
        created=row["created"], updated=row["updated"], attempts=row["attempts"], failures=row["failures"],
        placement=from_json(row["placement"]), progress=from_json(row["progress"]), result=from_json(row["result"]),
        error=row["error"], cancel_requested=bool(row["cancel_requested"]))
