"""Where the audit log's newest signed checkpoint is kept outside the log, and the server's log
wired to them.

- The store (`runtime.store.audit_heads.AuditHeadStore`): always, for a server.
- A witness file (`SUANLI_AUDIT_WITNESS`): append-only JSONL of checkpoints, one line each,
  tagged with the log's id, at a path the operator chooses outside the state directory (ideally
  on storage the server can append to but not rewrite: `chattr +a`, a WORM bucket's mount).
- The pinned public key (`SUANLI_AUDIT_VERIFY_KEY`): a PEM file outside the log directory that
  the log's key must match, or the server refuses to open the log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from runtime.audit.log import AuditLog, Witness, canonical, lines_backwards
from runtime.store.audit_heads import AuditHeadStore
from runtime.store.database import Database

VERIFY_KEY_ENV = "SUANLI_AUDIT_VERIFY_KEY"
WITNESS_ENV = "SUANLI_AUDIT_WITNESS"


class FileWitness:
    """An append-only JSONL file of checkpoints (`{"log": log id, ...checkpoint}` per line); the
    newest line of a log is its head."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def name(self) -> str:
        return f"witness file {self.path}"

    def record(self, log_id: str, checkpoint: dict) -> bool:
        """Append `checkpoint` as `log_id`'s newest head (fsynced)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (canonical({"log": log_id, **checkpoint}) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def newest(self, log_id: str) -> dict | None:
        """`log_id`'s newest checkpoint in the file, or None (no file, or none of this log's);
        ValueError naming the file when a line is not a checkpoint."""
        if not self.path.exists():
            return None
        for line in lines_backwards(self.path):
            try:
                entry = json.loads(line)
                if entry["log"] != log_id:
                    continue
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{self.name}: a line that is not a witnessed checkpoint (edited?)") from None
            del entry["log"]
            return entry
        return None


def outside(path: Path, directory: Path, field: str) -> Path:
    """`path`, refused (ValueError naming `field`) when it resolves inside `directory`."""
    if path.expanduser().resolve().is_relative_to(directory.expanduser().resolve()):
        raise ValueError(f"{field}: {path} is inside the audit directory {directory}; keep it where whoever can "
                         "rewrite the log cannot")
    return path.expanduser()


def configured_witnesses(db: Database | None, directory: Path,
                         environ: Mapping[str, str] = os.environ) -> list[Witness]:
    """The store's heads (when a store is given) and the witness file named by `SUANLI_AUDIT_WITNESS`."""
    found: list[Witness] = [AuditHeadStore(db)] if db is not None else []
    if environ.get(WITNESS_ENV):
        found.append(FileWitness(outside(Path(environ[WITNESS_ENV]), directory, WITNESS_ENV)))
    return found


def open_server_log(directory: str | Path, db: Database, component: str = "server",
                    environ: Mapping[str, str] = os.environ) -> AuditLog:
    """The server's audit log: witnessed by the store and the configured witness file, its key
    checked against `SUANLI_AUDIT_VERIFY_KEY` when set (ValueError naming the setting)."""
    directory = Path(directory)
    pinned = environ.get(VERIFY_KEY_ENV)
    if pinned:
        pinned = outside(Path(pinned), directory, VERIFY_KEY_ENV)
    return AuditLog(directory, component=component, witnesses=configured_witnesses(db, directory, environ),
                    pinned_key=pinned or None)
