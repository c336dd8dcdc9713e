"""The audit log's witnessed heads: each log's newest signed checkpoint, kept in the store, where
whoever can rewrite the log's files cannot silently rewrite it too (Certificate Transparency's
signed tree head kept outside the log). A head only moves forward: a checkpoint with a seq at or
below the stored one is ignored, so deleting the log's tail cannot pull the head back."""

from __future__ import annotations

import json
import time

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from runtime.store.database import Database
from runtime.store.schema import audit_heads


class AuditHeadStore:
    """Record and read the newest witnessed checkpoint of each audit log (keyed by its log id)."""

    def __init__(self, db: Database):
        self.db = db

    @property
    def name(self) -> str:
        """Where the heads are kept, for messages (no credentials)."""
        return f"the store ({self.db.where})"

    def record(self, log_id: str, checkpoint: dict) -> bool:
        """Keep `checkpoint` as the log's head when its seq is above the stored head's; True when
        it became the head. Atomic across processes and servers sharing the store."""
        values = {"seq": checkpoint["seq"], "hash": checkpoint["hash"], "updated_at": time.time(),
                  "checkpoint": json.dumps(checkpoint, sort_keys=True, separators=(",", ":"))}
        for _ in range(2):  # a second try when another server inserted the first head at the same time
            try:
                with self.db.engine.begin() as conn:
                    moved = conn.execute(update(audit_heads).where(audit_heads.c.log_id == log_id,
                                                                   audit_heads.c.seq < checkpoint["seq"])
                                         .values(**values)).rowcount
                    if moved:
                        return True
                    if conn.execute(select(audit_heads.c.seq).where(audit_heads.c.log_id == log_id)).first():
                        return False
                    conn.execute(insert(audit_heads).values(log_id=log_id, **values))
                    return True
            except IntegrityError:
                continue
        return False

    def newest(self, log_id: str) -> dict | None:
        """The log's head as recorded (the signed checkpoint), or None before its first."""
        with self.db.engine.connect() as conn:
            text = conn.execute(select(audit_heads.c.checkpoint).where(audit_heads.c.log_id == log_id)).scalar()
        return None if text is None else json.loads(text)
