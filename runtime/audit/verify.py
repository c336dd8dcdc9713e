"""Verifying the audit log: the chain of records and the signed checkpoints. Any edited, deleted,
inserted, reordered or truncated record, and any forged checkpoint, is reported with the first bad
sequence number. (Records after the last signed checkpoint are covered by the chain alone until
the next checkpoint, at most `checkpoint_s` later, or the one written on shutdown.)"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from runtime.audit.log import CHECKPOINTS, GENESIS, PUBLIC_KEY_FILE, canonical, record_hash, segments


@dataclass(frozen=True)
class Verdict:
    """The outcome: `ok`, how many records and checkpoints were checked, and for a failure the
    first bad sequence number and what is wrong there."""

    ok: bool
    records: int
    checkpoints: int
    first_bad_seq: int | None = None
    reason: str = ""

    def line(self) -> str:
        if self.ok:
            return f"audit log OK: {self.records} records, {self.checkpoints} signed checkpoints"
        return f"audit log FAILED at record {self.first_bad_seq}: {self.reason}"


def verify_log(directory: str | Path, public_key: str | Path | None = None, since: datetime | None = None) -> Verdict:
    """Check every record's form, sequence, chain link and hash, and every checkpoint's signature
    and that it matches the record it names. `since` reports only on records from that time on
    (the chain is still checked from the start: that is what makes it a chain)."""
    directory = Path(directory)
    key = serialization.load_pem_public_key(Path(public_key or directory / PUBLIC_KEY_FILE).read_bytes())
    hashes_by_seq: dict[int, str] = {}
    expected, prev, count = 1, GENESIS, 0
    for segment in segments(directory):
        for raw in segment.read_bytes().splitlines():
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                seq = record["seq"]
            except (ValueError, KeyError, TypeError):
                return Verdict(False, count, 0, expected, f"{segment.name}: a line that is not a record")
            if not isinstance(seq, int) or seq != expected:
                why = (f"record {expected} is missing (found {seq} next)" if isinstance(seq, int) and seq > expected
                       else f"found record {seq} where {expected} belongs (inserted or reordered)")
                return Verdict(False, count, 0, expected, why)
            if raw.decode("utf-8", "replace") != canonical(record):
                return Verdict(False, count, 0, seq, "not in canonical form: its bytes were changed")
            if record.get("prev") != prev:
                return Verdict(False, count, 0, seq, "its link to the previous record is broken")
            if record.get("hash") != record_hash(record):
                return Verdict(False, count, 0, seq, "its hash does not match its content")
            if since is None or datetime.fromisoformat(record["time"]) >= since:
                count += 1
            hashes_by_seq[seq] = record["hash"]
            prev, expected = record["hash"], expected + 1
    last_seq = expected - 1
    checkpoints = 0
    path = directory / CHECKPOINTS
    previous = None
    for raw in (path.read_bytes().splitlines() if path.exists() else []):
        if not raw.strip():
            continue
        try:
            body = json.loads(raw)
            signature = base64.b64decode(body.pop("signature"))
            key.verify(signature, canonical(body).encode(), ec.ECDSA(hashes.SHA256()))
        except (ValueError, KeyError, TypeError, InvalidSignature):
            seq = body.get("seq") if isinstance(body, dict) else None
            return Verdict(False, count, checkpoints, seq if isinstance(seq, int) else last_seq + 1,
                           f"checkpoint {checkpoints + 1} has no valid signature (forged or altered)")
        want_prev = hashlib.sha256(canonical({**body, "signature": base64.b64encode(signature).decode()})
                                   .encode()).hexdigest()
        if body["prev"] != (previous or GENESIS):
            return Verdict(False, count, checkpoints, body["seq"], f"checkpoint {checkpoints + 1} does not follow "
                           "the previous checkpoint (one was removed or reordered)")
        if body["seq"] > last_seq:
            return Verdict(False, count, checkpoints, last_seq + 1, f"records {last_seq + 1}-{body['seq']} are "
                           f"missing: a signed checkpoint covers up to {body['seq']} (truncated)")
        if hashes_by_seq.get(body["seq"]) != body["hash"]:
            # the records were rewritten with recomputed hashes: one signed hash proves the chain bad
            # up to here, not which record was changed first
            return Verdict(False, count, checkpoints, body["seq"],
                           f"the chain up to {body['seq']} differs from the one signed at {body['time']}")
        previous = want_prev
        checkpoints += 1
    return Verdict(True, count, checkpoints)

