"""The federation's registry of clusters, in the server's store (so every server sharing the
store sees the same clusters)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from cluster.federation import ClusterEntry, Link
from runtime.store.jobs import JobStore
from runtime.store.schema import clusters


class ClusterStore:
    """Add, list and remove registered clusters."""

    def __init__(self, store: JobStore):
        self.store = store

    def add(self, entry: ClusterEntry, actor: str) -> ClusterEntry:
        """Register `entry` (ValueError naming the field when the name is taken)."""
        row = {"name": entry.name, "address": entry.address, "site": entry.site, "tier": entry.tier,
               "storage": entry.storage, "token_file": entry.token_file,
               "links": json.dumps({k: asdict(v) for k, v in entry.links.items()}),
               "added_at": time.time(), "added_by": actor}
        try:
            with self.store.engine.begin() as conn:
                conn.execute(insert(clusters).values(**row))
        except IntegrityError:
            raise ValueError(f"name: a cluster named {entry.name!r} is already registered; remove it first "
                             f"(suanli clusters remove {entry.name})") from None
        return self.get(entry.name)

    def remove(self, name: str) -> bool:
        """Forget a cluster (False when it was not registered)."""
        with self.store.engine.begin() as conn:
            return conn.execute(delete(clusters).where(clusters.c.name == name)).rowcount > 0

    def get(self, name: str) -> ClusterEntry | None:
        return next((e for e in self.list() if e.name == name), None)

    def list(self) -> list[ClusterEntry]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(clusters).order_by(clusters.c.name)).mappings().all()
        return [ClusterEntry(name=r["name"], address=r["address"], site=r["site"], tier=r["tier"], storage=r["storage"],
                             token_file=r["token_file"],
                             links={k: Link(**v) for k, v in json.loads(r["links"]).items()},
                             added_at=r["added_at"], added_by=r["added_by"]) for r in rows]
