"""The store's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 3
metadata = MetaData()

meta = Table("suanli_meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))

jobs = Table(
    "jobs", metadata,
    Column("id", String(80), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("tenant", String(64), nullable=False, index=True),
    Column("user", String(64), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("spec", Text, nullable=False),
    Column("train_fn", LargeBinary),  # cloudpickled bytes, stored and hashed; only Ray workers load them
    Column("train_fn_sha256", String(64)),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False, index=True),  # the controller reads what changed since a time
    Column("attempts", Integer, nullable=False, default=0),
    Column("failures", Integer, nullable=False, default=0),  # attempts that failed: the retry budget's count
    Column("placement", Text),
    Column("progress", Text),  # epochs done, measured seconds per epoch, where: for the scheduler
    Column("result", Text),
    Column("error", Text),
    Column("cancel_requested", Boolean, nullable=False, default=False),
)

events = Table(
    "events", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(80), nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("detail", Text, nullable=False),
    Column("attempt", Integer),
    Column("fence", Integer),  # the lease token of the controller that wrote it (None: the API)
)

attempts = Table(
    "attempts", metadata,
    Column("job_id", String(80), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("state", String(16), nullable=False),  # launching, running, stopping, ended
    Column("backend", String(32), nullable=False),
    Column("handle", Text),
    Column("placement", Text, nullable=False),
    Column("started", Float, nullable=False),
    Column("ended", Float),
    Column("outcome", String(16)),  # succeeded, failed, lost, stopped
    Column("error", Text),
    Column("fence", Integer, nullable=False),
)

checkpoints = Table(
    "checkpoints", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(80), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("at", Float, nullable=False),
    UniqueConstraint("job_id", "path"),
)

log_lines = Table(
    "log_lines", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(80), nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("line", Text, nullable=False),
)

leases = Table(
    "leases", metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("token", Integer, nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("renewed_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

users = Table(
    "users", metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

tokens = Table(
    "tokens", metadata,
    Column("id", String(32), primary_key=True),
    Column("user", String(64), nullable=False, index=True),
    Column("sha256", String(64), nullable=False),  # only the hash of the secret is stored
    Column("created", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("label", String(128), nullable=False, default=""),
)

quotas = Table(
    "quotas", metadata,
    Column("key", String(80), primary_key=True),  # tenant:<name> or user:<name>
    Column("limits", Text, nullable=False),  # {"cpu": n, "gpu": n, "npu": n, "jobs": n}
    Column("updated", Float, nullable=False),
    Column("updated_by", String(64), nullable=False),
)

waiting = Table(
    "waiting", metadata,  # each queued job's newest waiting reason (added to older stores on open)
    Column("job_id", String(64), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("estimated_start", Float),  # the scheduler's next estimated start (unix time), when it has one
    Column("at", Float, nullable=False),
)

clusters = Table(
    "clusters", metadata,  # the federation's registry (added to older stores on open); tokens are in the
    # secrets store (cluster/<name>/ray-token), and the token_file column of older stores is never read
    Column("name", String(40), primary_key=True),
    Column("address", Text, nullable=False),  # Ray's job-submission (dashboard) address
    Column("site", String(64), nullable=False),
    Column("tier", String(16), nullable=False),
    Column("storage", Text, nullable=False),
    Column("links", Text, nullable=False),  # {site: {"bandwidth_bps", "latency_ms"}}
    Column("added_at", Float, nullable=False),
    Column("added_by", String(64), nullable=False),
)

audit_heads = Table(
    "audit_heads", metadata,  # each audit log's newest signed checkpoint, kept outside the log (added on open)
    Column("log_id", String(64), primary_key=True),  # sha256 of the log's public key (DER)
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("checkpoint", Text, nullable=False),  # the signed checkpoint as canonical JSON
    Column("updated_at", Float, nullable=False),
)
