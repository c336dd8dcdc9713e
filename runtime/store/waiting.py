"""Why each queued job waits: its newest reason and the scheduler's estimated start, noted once a
scheduling round, and the queue as the ops page shows it."""

from __future__ import annotations

import time

from sqlalchemy import delete, insert, select

from runtime.specs import JobState
from runtime.store.database import Database
from runtime.store.logs import MAX_LOG_LINE, append_lines
from runtime.store.schema import jobs, waiting


class WaitingStore:
    """Note the waiting reasons of a round; read the queue with them."""

    def __init__(self, db: Database):
        self.db = db

    def note(self, reasons: list[tuple[str, str, float | None]]) -> None:
        """Record a scheduling round's changed waiting reasons, (job id, reason, estimated start or
        None), in one transaction: each becomes a log line and the job's current reason."""
        if not reasons:
            return
        now = time.time()
        with self.db.engine.begin() as conn:  # three statements, each over every row (executemany)
            for start in range(0, len(reasons), 500):
                conn.execute(delete(waiting).where(waiting.c.job_id.in_([r[0] for r in reasons[start:start + 500]])))
            append_lines(conn, [(job_id, reason) for job_id, reason, _ in reasons], now)
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
        with self.db.reader.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
