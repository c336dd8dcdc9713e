"""Each job's log: timestamped lines (state changes, tracebacks, waiting reasons), each capped at
MAX_LOG_LINE characters (the tail is kept)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from runtime.store.database import Database
from runtime.store.schema import log_lines

MAX_LOG_LINE = 64 * 1024


def append_line(conn: Connection, job_id: str, line: str, at: float | None = None) -> None:
    """Append `line` to the job's log inside the caller's transaction."""
    conn.execute(insert(log_lines).values(job_id=job_id, at=time.time() if at is None else at,
                                          line=line[-MAX_LOG_LINE:]))


def append_lines(conn: Connection, lines: Iterable[tuple[str, str]], at: float) -> None:
    """Append (job id, line) pairs, all stamped `at`, in one statement inside the caller's
    transaction."""
    conn.execute(insert(log_lines), [{"job_id": job_id, "at": at, "line": line[-MAX_LOG_LINE:]}
                                     for job_id, line in lines])


class LogStore:
    """Append to and read the jobs' logs."""

    def __init__(self, db: Database):
        self.db = db

    def append(self, job_id: str, line: str) -> None:
        """Append a line (a traceback, a warning) to the job's log, in its own transaction."""
        with self.db.engine.begin() as conn:
            append_line(conn, job_id, line)

    def text(self, job_id: str) -> str:
        """The job's log as text, one timestamped line per entry."""
        with self.db.reader.connect() as conn:
            rows = conn.execute(select(log_lines.c.at, log_lines.c.line).where(log_lines.c.job_id == job_id)
                                .order_by(log_lines.c.id)).all()
        return "".join(f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(at))}Z {line}\n" for at, line in rows)
