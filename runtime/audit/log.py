"""The audit log (JR/T 0263 10.8): one append-only log of every state change, refused request and
login, under `state_dir/audit/`.

- Each record is one line of canonical JSON (sorted keys, no spaces): `seq`, `time` (UTC ISO),
  `type`, `source` ({component, host}), `actor`, `level`, `detail`, `prev` (the previous record's
  hash) and `hash` = sha256 of the line without `hash`. A line that is not exactly its own
  canonical form is a bad record, so no byte can change unnoticed.
- Segments rotate by size or day (`audit-YYYYMMDD-<first seq>.jsonl`); the chain runs across them.
- A checkpoint (last seq, its hash, time, the previous checkpoint's hash) is signed with the log's
  ECDSA P-256 key at least every `checkpoint_s` seconds and on close (`checkpoints.jsonl`), as
  CloudTrail signs its digests: rewriting records and their hashes cannot forge the signature.
- Several processes may append (servers sharing a state directory): appends hold a file lock and
  continue the chain from the file's tail.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import socket
import threading
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from runtime.private_files import write_private_file

LEVELS = ("debug", "info", "notice", "warning", "error", "critical")
GENESIS = "0" * 64
KEY_FILE = "audit-key.pem"
PUBLIC_KEY_FILE = "audit-key.pub.pem"
CHECKPOINTS = "checkpoints.jsonl"


def segments(directory: str | Path) -> list[Path]:
    """The log's segment files in chain order."""
    return sorted(Path(directory).glob("audit-*.jsonl"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def canonical(record: dict) -> str:
    """The one byte form of a record (or checkpoint) that is hashed, signed and stored."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def record_hash(record: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"}).encode()).hexdigest()


def write_private_key(path: Path) -> None:
    """A new ECDSA P-256 key in `path`, created with O_EXCL and mode 0600 (never overwritten), and
    its public half beside it."""
    key = ec.generate_private_key(ec.SECP256R1())
    write_private_file(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path.with_name(PUBLIC_KEY_FILE).write_bytes(public)


def sign(key, payload: str) -> str:
    return base64.b64encode(key.sign(payload.encode(), ec.ECDSA(hashes.SHA256()))).decode()


class AuditLog:
    """Appends records and signs checkpoints in `directory`. Thread- and process-safe."""

    def __init__(self, directory: str | Path, component: str = "server", max_segment_bytes: int = 64 * 2**20,
                 checkpoint_s: float = 60.0):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        self.source = {"component": component, "host": socket.gethostname()}
        self.max_segment_bytes = max_segment_bytes
        self.checkpoint_s = checkpoint_s
        key_path = self.directory / KEY_FILE
        with self._file_lock():
            if not key_path.exists():
                write_private_key(key_path)
        self._key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        self._lock = threading.Lock()
        self._tail: tuple[Path, int, int, str] | None = None  # (segment, its size, last seq, last hash)
        self._signed_seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- locking and the tail ----------------------------------------------------------------
    def _file_lock(self):
        class _Lock:
            def __init__(self, path):
                self.path = path

            def __enter__(self):
                self.f = open(self.path, "a")  # noqa: SIM115 - held for the block
                fcntl.flock(self.f, fcntl.LOCK_EX)

            def __exit__(self, *exc):
                fcntl.flock(self.f, fcntl.LOCK_UN)
                self.f.close()

        return _Lock(self.directory / ".lock")

    def segments(self) -> list[Path]:
        """The segments in chain order."""
        return segments(self.directory)

    def _read_tail(self) -> tuple[Path | None, int, int, str]:
        """(current segment, its size, last seq, last hash) from the files, cached while no other
        process appended."""
        found = self.segments()
        if not found:
            return None, 0, 0, GENESIS
        segment = found[-1]
        size = segment.stat().st_size
        if self._tail and self._tail[0] == segment and self._tail[1] == size:
            return self._tail
        seq, digest = 0, GENESIS
        with segment.open("rb") as f:
            if size:
                f.seek(max(0, size - 65536))
                lines = [line for line in f.read().splitlines() if line.strip()]
                if lines:
                    last = json.loads(lines[-1])
                    seq, digest = last["seq"], last["hash"]
        if seq == 0 and len(found) > 1:  # an empty new segment: the chain ends in the previous one
            seq, digest = self._read_last(found[-2])
        self._tail = (segment, size, seq, digest)
        return self._tail

    @staticmethod
    def _read_last(segment: Path) -> tuple[int, str]:
        lines = [line for line in segment.read_bytes().splitlines() if line.strip()]
        if not lines:
            return 0, GENESIS
        last = json.loads(lines[-1])
        return last["seq"], last["hash"]

    def _segment_for(self, current: Path | None, size: int, seq: int, now: datetime) -> Path:
        day = now.strftime("%Y%m%d")
        if current is not None and size < self.max_segment_bytes and current.stem.split("-")[1] == day:
            return current
        return self.directory / f"audit-{day}-{seq + 1:012d}.jsonl"

    # ---- appending -------------------------------------------------------------------------
    def append(self, type: str, actor: str, detail: dict | str = "", level: str = "info",  # noqa: A002
               component: str | None = None) -> dict:
        """Append one record; the record as written (with its seq and hash)."""
        if level not in LEVELS:
            raise ValueError(f"level: {level!r} is not one of {', '.join(LEVELS)}")
        now = datetime.now(timezone.utc)
        with self._lock, self._file_lock():
            current, size, seq, prev = self._read_tail()
            record = {"seq": seq + 1, "time": now.isoformat(timespec="microseconds"), "type": type,
                      "source": {**self.source, **({"component": component} if component else {})}, "actor": actor,
                      "level": level, "detail": detail, "prev": prev}
            record["hash"] = record_hash(record)
            segment = self._segment_for(current, size, seq, now)
            line = (canonical(record) + "\n").encode()
            fd = os.open(segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
            self._tail = (segment, (size if segment == current else 0) + len(line), record["seq"], record["hash"])
        return record

    # ---- checkpoints -----------------------------------------------------------------------
    def checkpoint(self) -> dict | None:
        """Sign (last seq, its hash, time, previous checkpoint) when records were added since the
        last one; the checkpoint, or None when there was nothing new. Segments are fsynced first."""
        with self._lock, self._file_lock():
            current, _, seq, digest = self._read_tail()
            path = self.directory / CHECKPOINTS
            previous = self._last_checkpoint(path)
            if seq == 0 or (previous and previous["seq"] >= seq):
                return None
            for segment in self.segments()[-2:]:
                fd = os.open(segment, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            body = {"seq": seq, "hash": digest, "time": datetime.now(timezone.utc).isoformat(),
                    "segment": current.name if current else None,
                    "prev": hashlib.sha256(canonical(previous).encode()).hexdigest() if previous else GENESIS}
            body["signature"] = sign(self._key, canonical(body))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, (canonical(body) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            return body

    @staticmethod
    def _last_checkpoint(path: Path) -> dict | None:
        if not path.exists():
            return None
        lines = [line for line in path.read_bytes().splitlines() if line.strip()]
        return json.loads(lines[-1]) if lines else None

    def start(self) -> None:
        """Sign a checkpoint every `checkpoint_s` seconds in a thread."""
        def loop():
            while not self._stop.wait(self.checkpoint_s):
                self.checkpoint()

        self._thread = threading.Thread(target=loop, name="suanli-audit-checkpoints", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the checkpoint thread and sign a final checkpoint."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        self.checkpoint()

    @staticmethod
    def read_tail(directory: str | Path, count: int = 20) -> list[dict]:
        """The last `count` records of the log in `directory`, oldest first (no key needed)."""
        out: list[dict] = []
        for segment in reversed(segments(directory)):
            lines = [json.loads(line) for line in segment.read_bytes().splitlines() if line.strip()]
            out = lines + out
            if len(out) >= count:
                break
        return out[-count:]

