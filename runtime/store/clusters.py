"""The federation's registry of clusters, in the server's store (so every server sharing the
store sees the same clusters), with each cluster's Ray auth token in the server's secrets store
under `cluster/<name>/ray-token`."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from cluster.federation import ClusterEntry, Link
from runtime.store.database import Database
from runtime.store.schema import clusters
from runtime.store.secrets import SecretStore


def token_secret(name: str) -> str:
    """The name of the secret holding cluster `name`'s Ray auth token."""
    return f"cluster/{name}/ray-token"


class ClusterStore:
    """Add, list and remove registered clusters and their tokens."""

    def __init__(self, db: Database, secrets: SecretStore):
        self.db = db
        self.secrets = secrets

    def add(self, entry: ClusterEntry, token: str | None, actor: str) -> ClusterEntry:
        """Register `entry` with its Ray auth token (ValueError naming the field when the name is
        taken; then nothing, the other cluster's token included, is touched). Without a token,
        any token left under the name is removed."""
        row = {"name": entry.name, "address": entry.address, "site": entry.site, "tier": entry.tier,
               "storage": entry.storage, "links": json.dumps({k: asdict(v) for k, v in entry.links.items()}),
               "added_at": time.time(), "added_by": actor}
        try:
            with self.db.engine.begin() as conn:
                conn.execute(insert(clusters).values(**row))
        except IntegrityError:
            raise ValueError(f"name: a cluster named {entry.name!r} is already registered; remove it first "
                             f"(suanli clusters remove {entry.name})") from None
        try:
            if token is None:
                self.secrets.delete(token_secret(entry.name))
            else:
                self.secrets.put(token_secret(entry.name), token)
        except BaseException:
            self._delete_row(entry.name)
            raise
        return self.get(entry.name)

    def remove(self, name: str) -> bool:
        """Forget a cluster and its token (False when it was not registered)."""
        removed = self._delete_row(name)
        self.secrets.delete(token_secret(name))
        return removed

    def _delete_row(self, name: str) -> bool:
        with self.db.engine.begin() as conn:
            return conn.execute(delete(clusters).where(clusters.c.name == name)).rowcount > 0

    def token(self, name: str) -> str | None:
        """Cluster `name`'s Ray auth token (None without one); SecretError when it cannot be read."""
        return self.secrets.get(token_secret(name))

    def get(self, name: str) -> ClusterEntry | None:
        """The registered cluster `name` (None when there is none)."""
        return next((e for e in self.list() if e.name == name), None)

    def list(self) -> list[ClusterEntry]:
        """Every registered cluster, by name, with the name of its token's secret when it has one."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(clusters).order_by(clusters.c.name)).mappings().all()
        entries = [ClusterEntry(name=r["name"], address=r["address"], site=r["site"], tier=r["tier"],
                                storage=r["storage"], links={k: Link(**v) for k, v in json.loads(r["links"]).items()},
                                added_at=r["added_at"], added_by=r["added_by"]) for r in rows]
        return [replace(e, token_secret=token_secret(e.name)) if self.secrets.exists(token_secret(e.name)) else e
                for e in entries]
