"""Verifying the audit log: the chain of records, the signed checkpoints, and the heads its
witnesses keep outside it. Any edited, deleted, inserted, reordered or truncated record, and any
forged checkpoint, is reported with the first bad sequence number; a log that no longer reaches
the newest witnessed head (its tail deleted together with the checkpoints covering it, or the
whole log rewritten with recomputed hashes and `checkpoints.jsonl` dropped) is reported naming the
missing records or the record whose hash differs. The public key is given by the caller: a key
kept beside the log proves nothing against whoever can rewrite the log's directory."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from runtime.audit.log import (
    CHECKPOINTS,
    GENESIS,
    Witness,
    canonical,
    load_public_key,
    log_id,
    record_hash,
    segments,
)


@dataclass(frozen=True)
class Verdict:
    """The outcome: `ok`, how many records and checkpoints were checked, the witnessed heads the
    log reaches, and for a failure the first bad sequence number and what is wrong there.
    `warnings` name witnesses that hold no head for this log yet (a log written before heads were
    kept, or a witness that was just configured)."""

    ok: bool
    records: int
    checkpoints: int
    first_bad_seq: int | None = None
    reason: str = ""
    heads: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def line(self) -> str:
        if not self.ok:
            return f"audit log FAILED at record {self.first_bad_seq}: {self.reason}"
        text = f"audit log OK: {self.records} records, {self.checkpoints} signed checkpoints"
        if self.heads:
            text += "; reaches the head witnessed by " + ", ".join(self.heads)
        return text + "".join(f"\nWARNING: {w}" for w in self.warnings)


def _valid(key: ec.EllipticCurvePublicKey, body: dict) -> bool:
    """Whether checkpoint `body` (with its `signature`) is signed by `key`."""
    try:
        unsigned = {k: v for k, v in body.items() if k != "signature"}
        key.verify(base64.b64decode(body["signature"]), canonical(unsigned).encode(), ec.ECDSA(hashes.SHA256()))
        return True
    except (ValueError, KeyError, TypeError, InvalidSignature):
        return False


def verify_log(directory: str | Path, public_key: str | Path | ec.EllipticCurvePublicKey,
               since: datetime | None = None, witnesses: Sequence[Witness] = ()) -> Verdict:
    """Check every record's form, sequence, chain link and hash; every checkpoint's signature by
    `public_key` (a PEM path or a key: pin one kept outside `directory`) and that it matches the
    record it names; and that the log reaches each witness's newest head: the head is signed by
    the key, the record it names is there with its hash, and `checkpoints.jsonl` holds it. `since`
    reports only on records from that time on (the chain is still checked from the start)."""
    directory = Path(directory)
    key = public_key if isinstance(public_key, ec.EllipticCurvePublicKey) else load_public_key(public_key)
    # read in the order they are written (records, checkpoints, then witnesses) reversed: whatever
    # is appended while verifying only extends what was read first, so a live log never fails
    heads: list[tuple[Witness, dict | None]] = []
    for witness in witnesses:
        try:
            heads.append((witness, witness.newest(log_id(key))))
        except Exception as exc:  # noqa: BLE001 - an unreadable witness is a failed verification, with why
            return Verdict(False, 0, 0, None, f"{witness.name} cannot be read: {exc}")
    path = directory / CHECKPOINTS
    checkpoint_lines = path.read_bytes().splitlines() if path.exists() else []
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
    previous = None
    signed: set[str] = set()  # the checkpoints as canonical JSON
    for raw in checkpoint_lines:
        if not raw.strip():
            continue
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not _valid(key, body):
            seq = body.get("seq") if isinstance(body, dict) else None
            return Verdict(False, count, checkpoints, seq if isinstance(seq, int) else last_seq + 1,
                           f"checkpoint {checkpoints + 1} has no valid signature by the pinned key (forged, altered, "
                           "or signed by another key)")
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
        previous = hashlib.sha256(canonical(body).encode()).hexdigest()
        signed.add(canonical(body))
        checkpoints += 1
    return _check_heads(key, heads, hashes_by_seq, last_seq, signed, Verdict(True, count, checkpoints))


def _check_heads(key: ec.EllipticCurvePublicKey, heads: list[tuple[Witness, dict | None]],
                 hashes_by_seq: dict[int, str], last_seq: int, signed: set[str], verdict: Verdict) -> Verdict:
    """`verdict`, failed when the log does not reach a witness's newest head for this key's log."""
    reached, warnings = [], []
    count, checkpoints = verdict.records, verdict.checkpoints
    for witness, head in heads:
        if head is None:
            warnings.append(f"{witness.name} holds no head for this log yet: a deleted tail is caught only from the "
                            "first checkpoint it witnesses")
            continue
        seq, when = head.get("seq"), head.get("time")
        if not isinstance(seq, int) or not _valid(key, head):
            return Verdict(False, count, checkpoints, last_seq + 1,
                           f"the head kept by {witness.name} has no valid signature by the pinned key")
        if seq > last_seq:
            return Verdict(False, count, checkpoints, last_seq + 1,
                           f"records {last_seq + 1}-{seq} are missing: {witness.name} holds a signed head at record "
                           f"{seq} from {when} (the log's tail was deleted)")
        if hashes_by_seq.get(seq) != head["hash"]:
            return Verdict(False, count, checkpoints, seq,
                           f"record {seq} has the hash {hashes_by_seq.get(seq, 'none')[:16]}... but {witness.name} holds "
                           f"{head['hash'][:16]}... signed at {when}: the log up to {seq} was rewritten")
        if canonical(head) not in signed:
            return Verdict(False, count, checkpoints, seq,
                           f"the checkpoint at record {seq} from {when}, held by {witness.name}, is missing from "
                           f"{CHECKPOINTS} (checkpoints removed or rewritten)")
        reached.append(f"{witness.name} (record {seq})")
    return Verdict(True, count, checkpoints, heads=tuple(reached), warnings=tuple(warnings))
