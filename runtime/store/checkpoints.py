"""The checkpoints the controller recorded for each job: path, epoch, attempt and sha256, each
recorded once; a checkpoint of an attempt fenced off (its cluster was lost) is never recorded, so
a stale run's checkpoints are never resumed from."""

from __future__ import annotations

import time

from sqlalchemy import insert, select

from runtime.store.attempts import FENCED_OUTCOMES
from runtime.store.database import Database
from runtime.store.lease import check_fence
from runtime.store.schema import attempts, checkpoints


class CheckpointStore:
    """Record and read the jobs' checkpoints."""

    def __init__(self, db: Database):
        self.db = db

    def record(self, job_id: str, attempt: int, epoch: int, path: str, sha256: str, fence: int) -> bool:
        """Record a checkpoint's path and sha256 once (False when it was already recorded, or
        when its attempt was fenced off: a stale run's checkpoints are never resumed from)."""
        with self.db.engine.begin() as conn:
            check_fence(conn, fence)
            outcome = conn.execute(select(attempts.c.outcome).where(attempts.c.job_id == job_id,
                                                                    attempts.c.number == attempt)).scalar()
            if outcome in FENCED_OUTCOMES:
                return False
            known = conn.execute(select(checkpoints.c.id).where(checkpoints.c.job_id == job_id,
                                                                checkpoints.c.path == path)).first()
            if known:
                return False
            conn.execute(insert(checkpoints).values(job_id=job_id, attempt=attempt, epoch=epoch, path=path,
                                                    sha256=sha256, at=time.time()))
        return True

    def of(self, job_id: str) -> list[dict]:
        """The job's recorded checkpoints, oldest first."""
        with self.db.reader.connect() as conn:
            rows = conn.execute(select(checkpoints).where(checkpoints.c.job_id == job_id)
                                .order_by(checkpoints.c.epoch, checkpoints.c.id)).mappings()
            return [dict(r) for r in rows]
