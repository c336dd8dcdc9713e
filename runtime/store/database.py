"""The store's database: one SQLAlchemy engine (SQLite in WAL mode by default, PostgreSQL for
several servers), its schema created or checked on open, and the write transaction every table's
store uses. The per-table stores (`jobs`, `attempts`, `checkpoints`, `logs`, `quotas`, `waiting`,
`accounts`, `lease`, `clusters`, `audit_heads`) each take a `Database`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError, OperationalError

from runtime.store import schema


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message names the file or URL and the check."""


class StoreConflict(RuntimeError):
    """Another writer changed the row between this transaction's read and its write (nothing
    was written; the caller may retry)."""


def to_json(value: Any) -> str | None:
    """A column's JSON text (None stays NULL)."""
    return None if value is None else json.dumps(value, default=str)


def from_json(value: str | None) -> Any:
    """A JSON column's value (NULL is None)."""
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
            # one writer at a time, across processes; reads (Database.reader) take no write lock
            read_only = connection.get_execution_options().get("suanli_read_only", False)
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql"):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    raise StoreError(f"store: unsupported URL {url.split(':', 1)[0]!r}; use sqlite:///PATH or "
                     "postgresql+psycopg://USER@HOST:PORT/DB")


class Database:
    """The engine behind every table's store, with the schema created (or its version checked).
    Thread-safe; several processes may share it (SQLite: one writer at a time)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _engine(url)
        self.reader = self.engine.execution_options(suanli_read_only=True)  # for reads: no write lock
        self.listeners: list = []  # called with each published event after its transaction commits (the audit log)
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
        """Close every pooled connection."""
        self.engine.dispose()

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; the events `publish`ed inside it reach the listeners once it
        committed (none when it rolled back)."""
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

    def publish(self, item: dict) -> None:
        """Hand `item` to the listeners when the current `write` transaction commits."""
        if hasattr(self._pending, "events"):
            self._pending.events.append(item)
