"""The caps set on tenants and users (`suanli quota set`): `tenant:<name>` or `user:<name>` ->
{device kind or "jobs": limit}."""

from __future__ import annotations

import json
import time

from sqlalchemy import insert, select

from runtime.store.database import Database
from runtime.store.schema import quotas


class QuotaStore:
    """Set and read the caps."""

    def __init__(self, db: Database):
        self.db = db

    def set(self, key: str, limits: dict | None, actor: str) -> None:
        """Set (or with None, remove) the caps of `tenant:<name>` or `user:<name>`."""
        with self.db.engine.begin() as conn:
            conn.execute(quotas.delete().where(quotas.c.key == key))
            if limits:
                conn.execute(insert(quotas).values(key=key, limits=json.dumps(limits), updated=time.time(),
                                                   updated_by=actor))

    def all(self) -> dict[str, dict]:
        """Every cap: {key: {kind or "jobs": limit}}."""
        with self.db.reader.connect() as conn:
            return {r.key: json.loads(r.limits) for r in conn.execute(select(quotas.c.key, quotas.c.limits))}
