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
- Each new checkpoint is also handed to the log's witnesses (`witness.py`: the store's
  `audit_heads` table, an operator's append-only file), which keep the newest one outside the log,
  as Certificate Transparency keeps signed tree heads: verification requires the log to reach it,
  so deleting the tail or rewriting the log is caught even with `checkpoints.jsonl` gone. A
  witness's head only moves forward, and only when the log still holds the record it names.
- A record's detail is at most `MAX_DETAIL_BYTES` as canonical JSON (`AuditDetailTooLarge`, or a
  digest of it when the caller asks), so no caller can write a record the tail reader chokes on.
- Several processes may append (servers sharing a state directory): appends hold a file lock and
  continue the chain from the file's tail.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from runtime.private_files import write_private_file

LEVELS = ("debug", "info", "notice", "warning", "error", "critical")
GENESIS = "0" * 64
KEY_FILE = "audit-key.pem"
PUBLIC_KEY_FILE = "audit-key.pub.pem"
CHECKPOINTS = "checkpoints.jsonl"
MAX_DETAIL_BYTES = 16 * 1024  # one record's detail, as canonical JSON
MAX_NAME_CHARS = 1024  # a record's type and actor (an OIDC subject is at most 255, plus its namespace)
DIGEST_PREFIX_CHARS = 2048  # what a digested oversize detail keeps of its start

log = logging.getLogger(__name__)


class AuditDetailTooLarge(ValueError):
    """A record's detail is over `MAX_DETAIL_BYTES`; nothing was written."""

    def __init__(self, size: int, limit: int = MAX_DETAIL_BYTES):
        self.field, self.size, self.limit = "detail", size, limit
        super().__init__(f"detail: {size:,} bytes as JSON is over the audit log's limit of {limit:,} bytes "
                         f"({limit // 1024} KiB) per record; send a digest or a reference to the content instead")


class Witness(Protocol):
    """Keeps each log's newest signed checkpoint where the log's writer cannot silently rewrite it."""

    @property
    def name(self) -> str: ...

    def record(self, log_id: str, checkpoint: dict) -> bool: ...

    def newest(self, log_id: str) -> dict | None: ...


def segments(directory: str | Path) -> list[Path]:
    """The log's segment files in chain order."""
    return sorted(Path(directory).glob("audit-*.jsonl"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def canonical(record: dict) -> str:
    """The one byte form of a record (or checkpoint) that is hashed, signed and stored."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def record_hash(record: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"}).encode()).hexdigest()


def log_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The log's identity: sha256 of its public key (DER), the key its witnesses keep heads under."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def load_public_key(path: str | Path) -> ec.EllipticCurvePublicKey:
    """The ECDSA P-256 public key in PEM file `path`; ValueError naming the file otherwise."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"public key: cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"public key: {path} is not a PEM public key (use a copy of audit-key.pub.pem)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError(f"public key: {path} is not an ECDSA key (use a copy of audit-key.pub.pem)")
    return key


def lines_backwards(path: Path, chunk: int = 65536) -> Iterator[bytes]:
    """The non-blank lines of `path`, newest first, read from the end in chunks (doubling, so a
    long line costs linear time): a line of any length is returned whole, and only as much of the
    file as needed is read."""
    with path.open("rb") as f:
        position = f.seek(0, os.SEEK_END)
        rest = b""
        while position > 0:
            step = min(chunk, position)
            position -= step
            chunk *= 2
            f.seek(position)
            rest = f.read(step) + rest
            lines = rest.split(b"\n")
            rest = lines[0]  # may continue in the part not read yet
            for line in reversed(lines[1:]):
                if line.strip():
                    yield line
        if rest.strip():
            yield rest


def last_line(path: Path) -> bytes | None:
    """The last non-blank line of `path`, however long, or None."""
    return next(lines_backwards(path), None) if path.exists() else None


def digest_detail(text: str) -> dict:
    """What a record keeps of an oversize detail: its size, sha256 and start."""
    return {"shortened": True, "bytes": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "start": text[:DIGEST_PREFIX_CHARS]}


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
    """Appends records and signs checkpoints in `directory`, handing each checkpoint to
    `witnesses`. Thread- and process-safe. `pinned_key` (a PEM public key kept outside the
    directory) must be the public half of the log's key, or the log refuses to open: a replaced
    key would sign checkpoints no pinned verifier accepts."""

    def __init__(self, directory: str | Path, component: str = "server", max_segment_bytes: int = 64 * 2**20,
                 checkpoint_s: float = 60.0, witnesses: Sequence[Witness] = (), pinned_key: str | Path | None = None):
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
        self.public_key = self._key.public_key()
        if pinned_key is not None and log_id(load_public_key(pinned_key)) != log_id(self.public_key):
            raise ValueError(f"audit key: {key_path} is not the key pinned by {pinned_key}: the key beside the log "
                             "was replaced, or the pin belongs to another log; restore the log's key or pin its "
                             f"public half ({PUBLIC_KEY_FILE})")
        self.log_id = log_id(self.public_key)
        self.witnesses = list(witnesses)
        self.witness_errors: dict[str, str] = {}  # witness name -> why its head is not the newest checkpoint
        self._witnessed: dict[int, dict] = {}  # witness index -> the checkpoint last recorded there
        self._lock = threading.Lock()
        self._witness_lock = threading.Lock()
        self._tail: tuple[Path, int, int, str] | None = None  # (segment, its size, last seq, last hash)
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
        process appended. The last record is read whole, however long (an older version wrote
        details of any size)."""
        found = self.segments()
        if not found:
            return None, 0, 0, GENESIS
        segment = found[-1]
        size = segment.stat().st_size
        if self._tail and self._tail[0] == segment and self._tail[1] == size:
            return self._tail
        seq, digest = self._read_last(segment)
        if seq == 0 and len(found) > 1:  # an empty new segment: the chain ends in the previous one
            seq, digest = self._read_last(found[-2])
        self._tail = (segment, size, seq, digest)
        return self._tail

    @staticmethod
    def _read_last(segment: Path) -> tuple[int, str]:
        line = last_line(segment)
        if line is None:
            return 0, GENESIS
        last = json.loads(line)
        return last["seq"], last["hash"]

    def _segment_for(self, current: Path | None, size: int, seq: int, now: datetime) -> Path:
        day = now.strftime("%Y%m%d")
        if current is not None and size < self.max_segment_bytes and current.stem.split("-")[1] == day:
            return current
        return self.directory / f"audit-{day}-{seq + 1:012d}.jsonl"

    # ---- appending -------------------------------------------------------------------------
    def append(self, type: str, actor: str, detail: dict | str = "", level: str = "info",  # noqa: A002
               component: str | None = None, oversize: Literal["refuse", "digest"] = "refuse") -> dict:
        """Append one record; the record as written (with its seq and hash). A detail over
        `MAX_DETAIL_BYTES` raises `AuditDetailTooLarge` and writes nothing, or with
        `oversize="digest"` (for events the server must not lose) is recorded as its size, sha256
        and first `DIGEST_PREFIX_CHARS` characters."""
        if level not in LEVELS:
            raise ValueError(f"level: {level!r} is not one of {', '.join(LEVELS)}")
        for field, value in (("type", type), ("actor", actor)):
            if len(value) > MAX_NAME_CHARS:
                raise ValueError(f"{field}: {len(value):,} characters is over the audit log's limit of {MAX_NAME_CHARS:,}")
        text = canonical(detail)
        if len(text) > MAX_DETAIL_BYTES:
            if oversize != "digest":
                raise AuditDetailTooLarge(len(text))
            detail = digest_detail(text)
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
        last one, then hand the newest checkpoint to each witness that does not hold it yet; the
        new checkpoint, or None when there was nothing new. Segments are fsynced first."""
        with self._lock, self._file_lock():
            current, _, seq, digest = self._read_tail()
            path = self.directory / CHECKPOINTS
            previous = self._last_checkpoint(path)
            body = None
            if seq and not (previous and previous["seq"] >= seq):
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
        newest = body or previous
        if newest is not None:
            self._witness(newest)  # outside the file lock: a slow witness never holds up appends
        return body

    def _witness(self, checkpoint: dict) -> None:
        """Record `checkpoint` with each witness whose head is older, after checking that the log
        still holds the record the witness's head names (otherwise the head stays where it is, so
        verification keeps failing until someone looks)."""
        with self._witness_lock:
            for index, witness in enumerate(self.witnesses):
                if self._witnessed.get(index, {}).get("seq", 0) >= checkpoint["seq"]:
                    continue
                try:
                    head = witness.newest(self.log_id)
                    if head is not None and head["seq"] >= checkpoint["seq"]:
                        continue  # another server sharing the log witnessed as far
                    if head is not None and head != self._witnessed.get(index):
                        if not self.holds(head["seq"], head["hash"]):
                            raise ValueError(f"the log no longer holds record {head['seq']} with the hash "
                                             f"{head['hash'][:16]}... witnessed at {head.get('time')}; not moving "
                                             "the head (run suanli audit verify)")
                    witness.record(self.log_id, checkpoint)
                    self._witnessed[index] = checkpoint
                    self.witness_errors.pop(witness.name, None)
                except Exception as exc:  # noqa: BLE001 - a witness's failure is reported, never fatal to appends
                    self.witness_errors[witness.name] = str(exc)
                    log.error("audit witness %s: %s", witness.name, exc)

    def holds(self, seq: int, digest: str) -> bool:
        """Whether the log's record `seq` has the hash `digest` (one segment is searched)."""
        candidates = [s for s in self.segments() if int(s.stem.rsplit("-", 1)[1]) <= seq]
        if not candidates:
            return False
        data, needle = candidates[-1].read_bytes(), f'"hash":"{digest}"'.encode()
        at = data.find(needle)
        while at >= 0:
            start, end = data.rfind(b"\n", 0, at) + 1, data.find(b"\n", at)
            record = json.loads(data[start:end if end >= 0 else len(data)])
            if record.get("seq") == seq and record.get("hash") == digest:
                return record_hash(record) == digest
            at = data.find(needle, at + 1)
        return False

    @staticmethod
    def _last_checkpoint(path: Path) -> dict | None:
        line = last_line(path)
        return json.loads(line) if line else None

    def verify(self, since: datetime | None = None):
        """Verify the log with the key it signs with (held since it opened) against its witnesses."""
        from runtime.audit.verify import verify_log

        return verify_log(self.directory, self.public_key, since, self.witnesses)

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
