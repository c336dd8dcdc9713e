"""Jobs, their events, attempts, checkpoints and log lines.

Every state change goes through `transition`, which enforces `runtime.specs.TRANSITIONS` inside
the write transaction and records an event. Writes the controller makes carry its lease token
(`fence`); the store compares it with the lease's current token in the same transaction and
refuses (`FencedOut`) a write from a controller that has lost the lease.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError, OperationalError

from runtime.specs import JobState, check_transition
from runtime.store import schema
from runtime.store.schema import attempts, checkpoints, events, jobs, leases, log_lines, quotas, waiting
from schedulers.types import Placement

CONTROLLER_LEASE = "controller"
MAX_LOG_LINE = 64 * 1024


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message names the file or URL and the check."""


JOB_FIELDS = ("placement", "result", "error", "failures", "progress")  # what a state change may also set


class StoreConflict(RuntimeError):
    """Another writer changed the row between this transaction's read and its write (nothing
    was written; the caller may retry)."""


@dataclass(frozen=True)
class Move:
    """One state change of a job: to `state`, with the event's detail and actor, setting `fields`
    (any of JOB_FIELDS) in the same write."""

    state: JobState
    detail: str = ""
    actor: str = "controller"
    fields: dict = field(default_factory=dict)


class FencedOut(RuntimeError):
    """A controller write carried a lease token that is no longer the lease's: it was refused."""


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


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def sqlite_url(state_dir: str | Path) -> str:
    """The SQLite URL of the embedded store in `state_dir`."""
    return f"sqlite:///{Path(state_dir).expanduser().resolve() / 'jobs.db'}"


def _check_sqlite_file(path: Path) -> None:
    """Refuse a corrupt or unreadable SQLite file, naming it and the check that failed."""
    if not path.exists():
        return
    if not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(f"store: {path} is not readable and writable by this user (check its permissions)")
    try:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"store: {path} failed SQLite's quick_check: {exc}; restore it from a backup or move "
                         "it aside to start empty") from None
    if verdict != "ok":
        raise StoreError(f"store: {path} failed SQLite's quick_check: {verdict}")


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _check_sqlite_file(Path(url.split("///", 1)[1]))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=FULL")
            dbapi_connection.execute("PRAGMA busy_timeout=30000")

        @event.listens_for(engine, "begin")
        def _on_begin(connection):
            # one writer at a time, across processes; reads (JobStore.reader) take no write lock
            read_only = connection.get_execution_options().get("suanli_read_only", False)
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql"):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    raise StoreError(f"store: unsupported URL {url.split(':', 1)[0]!r}; use sqlite:///PATH or "
                     "postgresql+psycopg://USER@HOST:PORT/DB")


def open_store(state_dir: str | Path, url: str | None = None) -> JobStore:
    """The store for a server: `url` (PostgreSQL, say) or SQLite in `state_dir` (created 0700)."""
    directory = Path(state_dir).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    return JobStore(url or sqlite_url(directory))


class JobStore:
    """Jobs, events, attempts, checkpoints, log lines and the lease behind one SQLAlchemy engine.
    Thread-safe; several processes may share it (SQLite: one writer at a time)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _engine(url)
        self.reader = self.engine.execution_options(suanli_read_only=True)  # for reads: no write lock
        self.listeners: list = []  # called with each event dict after its transaction commits (the audit log)
        self._pending = threading.local()
        try:
            schema.metadata.create_all(self.engine)
            for index in schema.jobs.indexes:  # added to stores created before the index existed
                index.create(self.engine, checkfirst=True)
            with self.engine.begin() as conn:
                found = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
                if found is None:
                    conn.execute(insert(schema.meta).values(key="schema_version", value=str(schema.SCHEMA_VERSION)))
                elif int(found) != schema.SCHEMA_VERSION:
                    raise StoreError(f"store: {self.where} has schema version {found}; this suanli reads "
                                     f"{schema.SCHEMA_VERSION}")
        except (DatabaseError, OperationalError) as exc:
            raise StoreError(f"store: cannot open {self.where}: {exc.orig or exc}") from None

    @property
    def where(self) -> str:
        """The store's file or URL without credentials, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction; the events it recorded reach the listeners once it committed."""
        self._pending.events = []
        try:
            with self.engine.begin() as conn:
                yield conn
            events, self._pending.events = self._pending.events, []
        except BaseException:
            self._pending.events = []
            raise
        for item in events:
            for listener in self.listeners:
                listener(item)

    # ---- fencing ---------------------------------------------------------------------------
    def _check_fence(self, conn: Connection, fence: int | None) -> None:
        if fence is None:
            return
        query = select(leases.c.token).where(leases.c.name == CONTROLLER_LEASE)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(read=True)  # a takeover waits until this write commits
        token = conn.execute(query).scalar()
        if token != fence:
            raise FencedOut(f"write refused: lease token {fence} is stale (the lease's token is {token})")

    # ---- jobs ------------------------------------------------------------------------------
    def add(self, name: str, tenant: str, user: str, spec: dict, train_fn: bytes | None,
            state: JobState = JobState.QUEUED, detail: str = "") -> str:
        """Store a new job (QUEUED, or REJECTED with `detail` as its error); its id."""
        job_id = f"{name}-{uuid.uuid4().hex[:8]}"
        now = time.time()
        with self._write() as conn:
            conn.execute(insert(jobs).values(
                id=job_id, name=name, tenant=tenant, user=user, state=state.value, spec=json.dumps(spec),
                train_fn=train_fn, train_fn_sha256=hashlib.sha256(train_fn).hexdigest() if train_fn else None,
                created=now, updated=now, attempts=0, failures=0, cancel_requested=False,
                error=detail if state == JobState.REJECTED else None))
            self._event(conn, job_id, "submitted", user, f"tenant {tenant}")
            self._log(conn, job_id, f"submitted by {user} (tenant {tenant})")
            if state != JobState.QUEUED:
                self._event(conn, job_id, state.value, "scheduler", detail)
                self._log(conn, job_id, f"{state.value}: {detail}")
        return job_id

    def transition(self, job_id: str, state: JobState, actor: str = "controller", detail: str = "",
                   expect: Iterable[JobState] | None = None, fence: int | None = None, attempt: int | None = None,
                   **fields: Any) -> bool:
        """Move a job to `state`, updating `fields` (placement, result, error, failures, progress) in
        the same transaction, with an event. False when the job is not in one of `expect` (it moved
        meanwhile); ValueError when the table of transitions forbids the move; FencedOut when
        `fence` is not the lease's current token."""
        with self._write() as conn:
            self._check_fence(conn, fence)
            return self._move(conn, job_id, Move(state, detail, actor, fields), expect, fence, attempt)

    @staticmethod
    def _current_state(conn: Connection, job_id: str) -> JobState:
        """The job's state, its row locked until the transaction ends (PostgreSQL: FOR UPDATE;
        SQLite's BEGIN IMMEDIATE already holds the only write lock)."""
        query = select(jobs.c.state).where(jobs.c.id == job_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        current = conn.execute(query).scalar()
        if current is None:
            raise KeyError(f"job: no job {job_id!r}")
        return JobState(current)

    def _move(self, conn: Connection, job_id: str, move: Move, expect: Iterable[JobState] | None,
              fence: int | None, attempt: int | None) -> bool:
        """One state change inside the caller's transaction: a conditional update (`WHERE state =`
        the state read), so two writers can never both move the job from the same state."""
        for key in move.fields:
            if key not in JOB_FIELDS:
                raise ValueError(f"fields: {key!r} cannot be set on a job")
        values = {k: (_json(v) if k in ("placement", "result", "progress") else v) for k, v in move.fields.items()}
        current = self._current_state(conn, job_id)
        if expect is not None and current not in tuple(expect):
            return False
        check_transition(current, move.state)
        changed = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == current.value)
                               .values(state=move.state.value, updated=time.time(), **values)).rowcount
        if changed != 1:
            raise StoreConflict(f"job: {job_id} changed state while it was being moved to {move.state.value}; retry")
        self._event(conn, job_id, move.state.value, move.actor, move.detail, attempt, fence)
        self._log(conn, job_id, f"{move.state.value}{': ' + move.detail if move.detail else ''}")
        return True

    def move(self, job_id: str, moves: Iterable[Move], fence: int | None = None,
             expect: Iterable[JobState] | None = None, attempt: int | None = None) -> bool:
        """Move a job through `moves`, in order, in one transaction (False, nothing written, when
        it is not in one of `expect`)."""
        with self._write() as conn:
            self._check_fence(conn, fence)
            if expect is not None and self._current_state(conn, job_id) not in tuple(expect):
                return False
            for step in moves:
                self._move(conn, job_id, step, None, fence, attempt)
        return True

    def end_attempt(self, job_id: str, number: int, fence: int, outcome: str, error: str | None = None,
                    moves: Iterable[Move] = (), expect: Iterable[JobState] | None = None) -> bool:
        """End an attempt (its outcome, error and end time) and move its job through `moves`, in
        ONE transaction: a crash or a lost lease between the two can never leave an active job
        with an ended attempt. False (nothing written) when the job is not in one of `expect`."""
        with self._write() as conn:
            self._check_fence(conn, fence)
            if expect is not None and self._current_state(conn, job_id) not in tuple(expect):
                return False
            conn.execute(update(attempts).where(attempts.c.job_id == job_id, attempts.c.number == number)
                         .values(state="ended", outcome=outcome, error=error, ended=time.time()))
            for move in moves:
                self._move(conn, job_id, move, None, fence, number)
        return True

    def note(self, job_id: str, detail: str, fence: int | None, attempt: int | None = None,
             actor: str = "controller") -> None:
        """An event that changes no state (kind NOTE): something the job's story should tell."""
        with self._write() as conn:
            self._check_fence(conn, fence)
            self._event(conn, job_id, "NOTE", actor, detail, attempt, fence)
            self._log(conn, job_id, f"NOTE: {detail}")

    def set_progress(self, job_id: str, progress: dict, fence: int | None) -> None:
        """Record what the controller measured of a running job (epochs done, seconds per epoch)."""
        with self.engine.begin() as conn:
            self._check_fence(conn, fence)
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(progress=_json(progress)))

    def request_cancel(self, job_id: str, actor: str) -> JobState:
        """Ask for a job's cancellation. A QUEUED job is CANCELLED at once; a job with an attempt
        is marked, and the controller stops the attempt and records CANCELLED. The job's state
        after the call; ValueError when it has already finished."""
        with self._write() as conn:
            current = self._current_state(conn, job_id)
            if current.finished:
                raise ValueError(f"job: {job_id} has already finished ({current.value}); nothing to cancel")
            changed = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == current.value).values(
                cancel_requested=True, updated=time.time(),
                **({"state": JobState.CANCELLED.value} if current == JobState.QUEUED else {}))).rowcount
            if changed != 1:
                raise StoreConflict(f"job: {job_id} changed state during the cancellation; retry")
            self._event(conn, job_id, "cancel-requested", actor, "")
            if current == JobState.QUEUED:
                self._event(conn, job_id, JobState.CANCELLED.value, actor, "cancelled on request before it started")
                self._log(conn, job_id, "CANCELLED: cancelled on request before it started")
                return JobState.CANCELLED
            self._log(conn, job_id, f"cancellation requested by {actor}")
            return current

    def get(self, job_id: str) -> JobRecord:
        with self.reader.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        if row is None:
            raise KeyError(f"job: no job {job_id!r}")
        return self._record(row)

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
        with self.reader.connect() as conn:
            return [self._record(r) for r in conn.execute(query).mappings()]

    def versions(self, states: Iterable[JobState], cancel_requested: bool | None = None) -> list[tuple[str, float]]:
        """(id, updated) of the jobs in `states`, in submission order: a cheap read that tells a
        caller which of the records it holds changed (every write to a job sets `updated`)."""
        query = select(jobs.c.id, jobs.c.updated).where(jobs.c.state.in_([s.value for s in states])
                                                         ).order_by(jobs.c.created)
        if cancel_requested is not None:
            query = query.where(jobs.c.cancel_requested == cancel_requested)
        with self.reader.connect() as conn:
            return [(r.id, r.updated) for r in conn.execute(query)]

    def changed_since(self, since: float) -> list[tuple[str, float, JobState, bool]]:
        """(id, updated, state, cancel_requested) of every job written at or after `since` (by the
        writer's clock): what an incremental reader must look at again."""
        query = select(jobs.c.id, jobs.c.updated, jobs.c.state, jobs.c.cancel_requested).where(jobs.c.updated >= since)
        with self.reader.connect() as conn:
            return [(r.id, r.updated, JobState(r.state), bool(r.cancel_requested)) for r in conn.execute(query)]

    def records(self, ids: Iterable[str]) -> dict[str, JobRecord]:
        """The jobs of `ids` that exist, by id (read in chunks: one IN list per 500)."""
        ids = list(ids)
        found: dict[str, JobRecord] = {}
        with self.reader.connect() as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(select(jobs).where(jobs.c.id.in_(ids[start:start + 500]))).mappings()
                found.update((row["id"], self._record(row)) for row in rows)
        return found

    def events(self, job_id: str | None = None) -> list[dict]:
        query = select(events).order_by(events.c.seq)
        if job_id:
            query = query.where(events.c.job_id == job_id)
        with self.reader.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def _event(self, conn: Connection, job_id: str, kind: str, actor: str, detail: str, attempt: int | None = None,
               fence: int | None = None) -> None:
        values = dict(job_id=job_id, at=time.time(), kind=kind, actor=actor, detail=detail, attempt=attempt, fence=fence)
        conn.execute(insert(events).values(**values))
        if hasattr(self._pending, "events"):
            self._pending.events.append(values)

    # ---- attempts --------------------------------------------------------------------------
    def start_attempt(self, job_id: str, placement: dict, backend: str, fence: int, detail: str,
                      handle: dict) -> int | None:
        """QUEUED -> STARTING with a new attempt row (and the backend's handle for it), in one
        transaction; the attempt's number, or None when the job is no longer QUEUED."""
        with self._write() as conn:
            self._check_fence(conn, fence)
            query = select(jobs.c.state, jobs.c.attempts, jobs.c.cancel_requested).where(jobs.c.id == job_id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None or row.state != JobState.QUEUED.value or row.cancel_requested:
                return None
            number = row.attempts + 1
            now = time.time()
            changed = conn.execute(update(jobs).where(
                jobs.c.id == job_id, jobs.c.state == JobState.QUEUED.value, jobs.c.cancel_requested.is_(False),
                jobs.c.attempts == row.attempts).values(
                state=JobState.STARTING.value, attempts=number, placement=_json(placement), updated=now)).rowcount
            if changed != 1:
                return None
            conn.execute(insert(attempts).values(job_id=job_id, number=number, state="launching", backend=backend,
                                                 handle=_json(handle), placement=_json(placement), started=now,
                                                 fence=fence))
            self._event(conn, job_id, JobState.STARTING.value, "controller", detail, number, fence)
            self._log(conn, job_id, f"STARTING attempt {number}: {detail}")
        return number

    def update_attempt(self, job_id: str, number: int, fence: int, **fields: Any) -> None:
        """Set an attempt's state, handle, outcome, error or end time (a fenced write)."""
        for key in fields:
            if key not in ("state", "handle", "outcome", "error", "ended"):
                raise ValueError(f"fields: {key!r} cannot be set on an attempt")
        values = {k: (_json(v) if k == "handle" else v) for k, v in fields.items()}
        with self.engine.begin() as conn:
            self._check_fence(conn, fence)
            conn.execute(update(attempts).where(attempts.c.job_id == job_id, attempts.c.number == number).values(**values))

    def attempt(self, job_id: str, number: int) -> AttemptRecord | None:
        with self.reader.connect() as conn:
            row = conn.execute(select(attempts).where(attempts.c.job_id == job_id, attempts.c.number == number)
                               ).mappings().first()
        return None if row is None else self._attempt(row)

    def attempts_of(self, job_id: str) -> list[AttemptRecord]:
        with self.reader.connect() as conn:
            rows = conn.execute(select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.number))
            return [self._attempt(r) for r in rows.mappings()]

    def open_attempts(self) -> list[AttemptRecord]:
        """Attempts that have not ended: what a new lease holder must adopt or requeue."""
        with self.reader.connect() as conn:
            rows = conn.execute(select(attempts).where(attempts.c.state != "ended").order_by(attempts.c.started))
            return [self._attempt(r) for r in rows.mappings()]

    def fenced_attempts(self) -> list[AttemptRecord]:
        """Attempts fenced off when their cluster was lost whose stale run has not been stopped
        yet (outcome "fenced"; "fenced-stopped" once it was)."""
        with self.reader.connect() as conn:
            rows = conn.execute(select(attempts).where(attempts.c.outcome == "fenced").order_by(attempts.c.started))
            return [self._attempt(r) for r in rows.mappings()]

    # ---- checkpoints -----------------------------------------------------------------------
    def record_checkpoint(self, job_id: str, attempt: int, epoch: int, path: str, sha256: str, fence: int) -> bool:
        """Record a checkpoint's path and sha256 once (False when it was already recorded, or
        when its attempt was fenced off: a stale run's checkpoints are never resumed from)."""
        with self.engine.begin() as conn:
            self._check_fence(conn, fence)
            outcome = conn.execute(select(attempts.c.outcome).where(attempts.c.job_id == job_id,
                                                                    attempts.c.number == attempt)).scalar()
            if outcome in ("fenced", "fenced-stopped"):
                return False
            known = conn.execute(select(checkpoints.c.id).where(checkpoints.c.job_id == job_id,
                                                                checkpoints.c.path == path)).first()
            if known:
                return False
            conn.execute(insert(checkpoints).values(job_id=job_id, attempt=attempt, epoch=epoch, path=path,
                                                    sha256=sha256, at=time.time()))
        return True

    def checkpoints(self, job_id: str) -> list[dict]:
        """The job's recorded checkpoints, oldest first."""
        with self.reader.connect() as conn:
            rows = conn.execute(select(checkpoints).where(checkpoints.c.job_id == job_id)
                                .order_by(checkpoints.c.epoch, checkpoints.c.id)).mappings()
            return [dict(r) for r in rows]

    # ---- quotas ----------------------------------------------------------------------------
    def set_quota(self, key: str, limits: dict | None, actor: str) -> None:
        """Set (or with None, remove) the caps of `tenant:<name>` or `user:<name>`."""
        with self.engine.begin() as conn:
            conn.execute(quotas.delete().where(quotas.c.key == key))
            if limits:
                conn.execute(insert(quotas).values(key=key, limits=json.dumps(limits), updated=time.time(),
                                                   updated_by=actor))

    def quotas(self) -> dict[str, dict]:
        """Every cap: {key: {kind or "jobs": limit}}."""
        with self.reader.connect() as conn:
            return {r.key: json.loads(r.limits) for r in conn.execute(select(quotas.c.key, quotas.c.limits))}

    # ---- logs ------------------------------------------------------------------------------
    def log(self, job_id: str, line: str) -> None:
        """Append a line (a traceback, a waiting reason) to the job's log."""
        with self.engine.begin() as conn:
            self._log(conn, job_id, line)

    def note_waiting(self, reasons: list[tuple[str, str, float | None]]) -> None:
        """Record a scheduling round's changed waiting reasons, (job id, reason, estimated start or
        None), in one transaction: each becomes a log line and the job's current reason."""
        if not reasons:
            return
        now = time.time()
        with self.engine.begin() as conn:  # three statements, each over every row (executemany)
            for start in range(0, len(reasons), 500):
                conn.execute(delete(waiting).where(waiting.c.job_id.in_([r[0] for r in reasons[start:start + 500]])))
            conn.execute(insert(log_lines), [{"job_id": job_id, "at": now, "line": reason[-MAX_LOG_LINE:]}
                                             for job_id, reason, _ in reasons])
            conn.execute(insert(waiting), [{"job_id": job_id, "reason": reason[-MAX_LOG_LINE:],
                                            "estimated_start": estimated_start, "at": now}
                                           for job_id, reason, estimated_start in reasons])

    def queue(self) -> list[dict]:
        """The QUEUED jobs in submission order, each with its newest waiting reason, when the
        reason was given and the scheduler's estimated start (None where none was given yet)."""
        query = (select(jobs.c.id, jobs.c.name, jobs.c.tenant, jobs.c.user, jobs.c.created, waiting.c.reason,
                        waiting.c.estimated_start, waiting.c.at.label("reason_at"))
                 .select_from(jobs.outerjoin(waiting, waiting.c.job_id == jobs.c.id))
                 .where(jobs.c.state == JobState.QUEUED.value).order_by(jobs.c.created))
        with self.reader.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def _log(self, conn: Connection, job_id: str, line: str) -> None:
        conn.execute(insert(log_lines).values(job_id=job_id, at=time.time(), line=line[-MAX_LOG_LINE:]))

    def logs(self, job_id: str) -> str:
        """The job's log as text, one timestamped line per entry."""
        with self.reader.connect() as conn:
            rows = conn.execute(select(log_lines.c.at, log_lines.c.line).where(log_lines.c.job_id == job_id)
                                .order_by(log_lines.c.id)).all()
        return "".join(f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(at))}Z {line}\n" for at, line in rows)

    def count(self) -> int:
        with self.reader.connect() as conn:
            return conn.execute(select(func.count()).select_from(jobs)).scalar_one()

    # ---- rows ------------------------------------------------------------------------------
    @staticmethod
    def _record(row) -> JobRecord:
        return JobRecord(
            id=row["id"], name=row["name"], tenant=row["tenant"], user=row["user"], state=JobState(row["state"]),
            spec=json.loads(row["spec"]), train_fn=row["train_fn"], train_fn_sha256=row["train_fn_sha256"],
            created=row["created"], updated=row["updated"], attempts=row["attempts"], failures=row["failures"],
            placement=_loads(row["placement"]), progress=_loads(row["progress"]), result=_loads(row["result"]),
            error=row["error"], cancel_requested=bool(row["cancel_requested"]))

    @staticmethod
    def _attempt(row) -> AttemptRecord:
        return AttemptRecord(
            job_id=row["job_id"], number=row["number"], state=row["state"], backend=row["backend"],
            handle=_loads(row["handle"]), placement=json.loads(row["placement"]), started=row["started"],
            ended=row["ended"], outcome=row["outcome"], error=row["error"], fence=row["fence"])
