"""The audit log against an attacker who can rewrite its directory: the newest signed checkpoint
is also kept in the store (SQLite and PostgreSQL) and in a witness file, and verification with a
key pinned outside the directory names a deleted tail (with or without its checkpoints), a log
rewritten with recomputed hashes and `checkpoints.jsonl` dropped, and a key swapped beside the
log. Record details are capped: a 10 MB event writes nothing and stops nothing, and an oversize
record an older version wrote neither stops appends nor fails verification."""

import base64
import json
import os
import random
import shutil
import subprocess
import sys
import threading

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from runtime.audit.log import (
    CHECKPOINTS,
    KEY_FILE,
    MAX_DETAIL_BYTES,
    PUBLIC_KEY_FILE,
    AuditDetailTooLarge,
    AuditLog,
    canonical,
    lines_backwards,
    record_hash,
    segments,
)
from runtime.audit.verify import verify_log
from runtime.audit.witness import VERIFY_KEY_ENV, WITNESS_ENV, FileWitness, open_server_log
from runtime.store import Store, open_store
from runtime.store.audit_heads import AuditHeadStore
from tests.conftest import REPO

RECORDS = 40


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """A real store: SQLite in a state directory, or a throwaway PostgreSQL server."""
    if request.param == "sqlite":
        opened = open_store(tmp_path / "state")
    else:
        opened = Store(request.getfixturevalue("postgres_url"))
    yield opened
    opened.close()


def write_log(directory, store, records=RECORDS, every=10, environ=None):
    """A server's log of `records` records, a checkpoint every `every` (each witnessed by the
    store) and the pinned copy of its public key, kept outside the log's directory."""
    log = open_server_log(directory, store.db, environ=environ or {})
    for i in range(records):
        log.append("job-state", f"user{i % 3}", {"job": f"j{i}", "state": "RUNNING"})
        if i % every == every - 1:
            log.checkpoint()
    log.close()
    pinned = directory.parent / f"{directory.name}-pinned.pem"
    shutil.copy(directory / PUBLIC_KEY_FILE, pinned)
    return log, pinned


def all_lines(directory):
    return [(segment, line) for segment in segments(directory) for line in segment.read_bytes().splitlines()]


def delete_tail(directory, first_deleted, checkpoints_too=True):
    """Delete records `first_deleted`.. and (by default) every checkpoint covering them."""
    for segment in segments(directory):
        kept = [line for line in segment.read_bytes().splitlines() if json.loads(line)["seq"] < first_deleted]
        segment.write_bytes(b"".join(line + b"\n" for line in kept))
    if checkpoints_too:
        path = directory / CHECKPOINTS
        kept = [line for line in path.read_bytes().splitlines() if json.loads(line)["seq"] < first_deleted]
        path.write_bytes(b"".join(line + b"\n" for line in kept))


def rewrite(directory, seq, detail):
    """Change record `seq`'s detail and recompute every hash and link after it, as an attacker
    with write access to the directory would."""
    prev = None
    for segment in segments(directory):
        out = []
        for line in segment.read_bytes().splitlines():
            record = json.loads(line)
            if record["seq"] == seq:
                record["detail"] = detail
            if prev is not None:
                record["prev"] = prev
            record["hash"] = record_hash(record)
            prev = record["hash"]
            out.append(canonical(record).encode() + b"\n")
        segment.write_bytes(b"".join(out))


def sign_checkpoints(directory, key):
    """Re-sign the whole chain's checkpoints with `key` (one at the last record)."""
    last = json.loads(all_lines(directory)[-1][1])
    body = {"seq": last["seq"], "hash": last["hash"], "time": "2026-12-04T00:00:00+00:00",
            "segment": segments(directory)[-1].name, "prev": "0" * 64}
    body["signature"] = base64.b64encode(key.sign(canonical(body).encode(), ec.ECDSA(hashes.SHA256()))).decode()
    (directory / CHECKPOINTS).write_text(canonical(body) + "\n")


def test_an_untouched_log_reaches_the_stores_head(store, tmp_path):
    log, pinned = write_log(tmp_path / "audit", store)
    verdict = verify_log(log.directory, pinned, witnesses=[AuditHeadStore(store.db)])
    assert verdict.ok and verdict.records == RECORDS and verdict.checkpoints == 4, verdict.line()
    assert verdict.heads == (f"{AuditHeadStore(store.db).name} (record {RECORDS})",) and not verdict.warnings
    assert AuditHeadStore(store.db).newest(log.log_id)["seq"] == RECORDS


@pytest.mark.parametrize("checkpoints_too", [True, False], ids=["with-checkpoints", "records-only"])
def test_a_deleted_tail_is_named(store, tmp_path, checkpoints_too):
    log, pinned = write_log(tmp_path / "audit", store)
    delete_tail(log.directory, 26, checkpoints_too)
    verdict = verify_log(log.directory, pinned, witnesses=[AuditHeadStore(store.db)])
    assert not verdict.ok and verdict.first_bad_seq == 26, verdict.line()
    if checkpoints_too:  # the attack the log alone cannot see: its own checkpoints were cut with it
        assert verify_log(log.directory, pinned).ok
        assert "records 26-40 are missing" in verdict.reason and "the log's tail was deleted" in verdict.reason
        assert "the store" in verdict.reason
    else:  # the first checkpoint past the cut names it already
        assert "records 26-30 are missing: a signed checkpoint covers up to 30" in verdict.reason


def test_a_rewrite_with_recomputed_hashes_and_no_checkpoints_is_named(store, tmp_path):
    log, pinned = write_log(tmp_path / "audit", store)
    want = json.loads(all_lines(log.directory)[RECORDS - 1][1])["hash"]
    rewrite(log.directory, 7, {"job": "j6", "state": "SUCCEEDED"})
    (log.directory / CHECKPOINTS).unlink()
    assert verify_log(log.directory, pinned).ok  # the log alone: a consistent chain, nothing signed to contradict
    verdict = verify_log(log.directory, pinned, witnesses=[AuditHeadStore(store.db)])
    assert not verdict.ok and verdict.first_bad_seq == RECORDS, verdict.line()
    assert f"record {RECORDS} has the hash" in verdict.reason and want[:16] in verdict.reason
    assert "was rewritten" in verdict.reason
    # the private key lies in the directory: re-signed checkpoints still cannot match the witnessed head
    key = serialization.load_pem_private_key((log.directory / KEY_FILE).read_bytes(), password=None)
    sign_checkpoints(log.directory, key)
    verdict = verify_log(log.directory, pinned, witnesses=[AuditHeadStore(store.db)])
    assert not verdict.ok and verdict.first_bad_seq == RECORDS and "was rewritten" in verdict.reason


def test_dropped_checkpoints_alone_are_named(store, tmp_path):
    log, pinned = write_log(tmp_path / "audit", store)
    (log.directory / CHECKPOINTS).unlink()
    verdict = verify_log(log.directory, pinned, witnesses=[AuditHeadStore(store.db)])
    assert not verdict.ok and verdict.first_bad_seq == RECORDS
    assert f"missing from {CHECKPOINTS}" in verdict.reason


def test_a_restarted_server_does_not_move_the_head_past_a_deleted_tail(store, tmp_path):
    log, pinned = write_log(tmp_path / "audit", store)
    delete_tail(log.directory, 31)
    again, _ = write_log(log.directory, store, records=20)  # records 31-50 written over the deleted ones
    assert again.witness_errors and "no longer holds record 40" in next(iter(again.witness_errors.values()))
    assert AuditHeadStore(store.db).newest(log.log_id)["seq"] == RECORDS  # the head stayed
    verdict = again.verify()
    assert not verdict.ok and verdict.first_bad_seq == RECORDS and "was rewritten" in verdict.reason


def test_a_swapped_key_beside_the_log_is_refused(store, tmp_path):
    log, pinned = write_log(tmp_path / "audit", store)
    rewrite(log.directory, 3, {"job": "j2", "state": "CANCELLED"})
    attacker = ec.generate_private_key(ec.SECP256R1())
    (log.directory / KEY_FILE).write_bytes(attacker.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (log.directory / PUBLIC_KEY_FILE).write_bytes(attacker.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    sign_checkpoints(log.directory, attacker)
    assert verify_log(log.directory, log.directory / PUBLIC_KEY_FILE).ok  # the key beside the log vouches for it
    verdict = verify_log(log.directory, pinned, witnesses=[AuditHeadStore(store.db)])
    assert not verdict.ok and "no valid signature by the pinned key" in verdict.reason, verdict.line()
    with pytest.raises(ValueError, match=f"is not the key pinned by {pinned}"):  # a server refuses to sign with it
        open_server_log(log.directory, store.db, environ={VERIFY_KEY_ENV: str(pinned)})


def cli(*args):
    env = {k: v for k, v in os.environ.items() if k not in (VERIFY_KEY_ENV, WITNESS_ENV, "SUANLI_STORE_URL")}
    return subprocess.run([sys.executable, "-m", "runtime.cli.main", "audit", "verify", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120, env={**env, "SUANLI_CONFIG": ""})


def test_the_command_pins_the_key_and_names_the_deleted_tail(tmp_path):
    state = tmp_path / "state"
    store = open_store(state)
    log, pinned = write_log(state / "audit", store)
    witness = tmp_path / "witness.jsonl"
    write_log(tmp_path / "other" / "audit", store, environ={WITNESS_ENV: str(witness)})  # another log, same file
    out = cli("--state-dir", str(state))
    assert out.returncode == 2 and "--public-key: give the log's public key from outside" in out.stderr
    out = cli("--state-dir", str(state), "--public-key", str(log.directory / PUBLIC_KEY_FILE))
    assert out.returncode == 2 and "is inside the log's directory" in out.stderr
    out = cli("--state-dir", str(state), "--trust-key-beside-log")
    assert out.returncode == 0 and "audit log OK: 40 records" in out.stdout, out.stderr
    out = cli("--state-dir", str(state), "--public-key", str(pinned))
    assert out.returncode == 0 and f"(record {RECORDS})" in out.stdout, out.stderr
    out = cli("--state-dir", str(state), "--public-key", str(pinned), "--witness", str(witness))
    assert out.returncode == 0 and "WARNING: witness file" in out.stdout  # it holds the other log's heads only
    delete_tail(log.directory, 12)
    out = cli("--state-dir", str(state), "--public-key", str(pinned))
    assert out.returncode == 1 and "FAILED at record 12: records 12-40 are missing" in out.stderr, out.stderr
    store.close()


def test_a_witness_file_names_a_deleted_tail_without_the_store(tmp_path):
    witness = tmp_path / "witness.jsonl"
    store = open_store(tmp_path / "state")
    log, pinned = write_log(tmp_path / "state" / "audit", store, environ={WITNESS_ENV: str(witness)})
    assert [json.loads(line)["seq"] for line in witness.read_text().splitlines()] == [10, 20, 30, 40]
    delete_tail(log.directory, 33)
    verdict = verify_log(log.directory, pinned, witnesses=[FileWitness(witness)])
    assert not verdict.ok and verdict.first_bad_seq == 33 and f"witness file {witness}" in verdict.reason
    out = cli("--state-dir", str(tmp_path / "state"), "--public-key", str(pinned), "--no-store", "--witness",
              str(witness))
    assert out.returncode == 1 and "records 33-40 are missing" in out.stderr, out.stderr
    with pytest.raises(ValueError, match=f"{WITNESS_ENV}: .* is inside the audit directory"):
        open_server_log(log.directory, store.db, environ={WITNESS_ENV: str(log.directory / "w.jsonl")})
    store.close()


def test_a_10_mb_event_is_refused_and_writes_nothing(store, tmp_path):
    log, pinned = write_log(tmp_path / "audit", store)
    before = [segment.read_bytes() for segment in segments(log.directory)]
    with pytest.raises(AuditDetailTooLarge, match=r"^detail: 10,485,7\d\d bytes .* limit of 16,384 bytes \(16 KiB\)"):
        log.append("artifact-signed", "mallory", {"blob": "x" * 10 * 2**20}, component="sdk")
    assert [segment.read_bytes() for segment in segments(log.directory)] == before
    assert log.append("artifact-signed", "alice", {"blob": "x" * (MAX_DETAIL_BYTES - 20)})["seq"] == RECORDS + 1
    kept = log.append("job-failed", "controller", {"detail": "y" * 2**20}, oversize="digest")["detail"]
    assert kept["shortened"] and kept["bytes"] > 2**20 and len(kept["sha256"]) == 64
    log.checkpoint()
    assert verify_log(log.directory, pinned, witnesses=[AuditHeadStore(store.db)]).ok


def test_an_old_log_with_an_oversize_record_appends_verifies_and_gets_a_head(store, tmp_path):
    directory = tmp_path / "audit"
    old = AuditLog(directory)  # the format is unchanged: what an older version wrote, before heads existed
    for i in range(5):
        old.append("job-state", "alice", {"i": i})
    old.checkpoint()
    tail = json.loads(all_lines(directory)[-1][1])
    record = {"seq": 6, "time": tail["time"], "type": "artifact-signed", "source": tail["source"], "actor": "mallory",
              "level": "notice", "detail": {"blob": "z" * 200_000}, "prev": tail["hash"]}  # over 64 KiB, as it could
    record["hash"] = record_hash(record)
    with segments(directory)[-1].open("ab") as f:
        f.write(canonical(record).encode() + b"\n")
    pinned = shutil.copy(directory / PUBLIC_KEY_FILE, tmp_path / "pinned.pem")
    verdict = verify_log(directory, pinned, witnesses=[AuditHeadStore(store.db)])
    assert verdict.ok and verdict.records == 6 and "holds no head for this log yet" in verdict.warnings[0]
    server = open_server_log(directory, store.db, environ={VERIFY_KEY_ENV: str(pinned)})  # a server starts on it
    assert server.append("server-started", "root", {"pid": 1})["seq"] == 7
    server.close()
    verdict = verify_log(directory, pinned, witnesses=[AuditHeadStore(store.db)])
    assert verdict.ok and verdict.records == 7 and verdict.heads and not verdict.warnings, verdict.line()


def test_a_failing_witness_never_stops_appends_and_catches_up(tmp_path):
    store = open_store(tmp_path / "state")
    log = open_server_log(tmp_path / "state" / "audit", store.db, environ={})
    with store.db.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_heads"))
    log.append("t", "a", {"i": 1})
    assert log.checkpoint()["seq"] == 1  # signed and written; the store could not keep it
    assert "no such table" in log.witness_errors[AuditHeadStore(store.db).name]
    log.append("t", "a", {"i": 2})
    from runtime.store.schema import metadata

    metadata.create_all(store.db.engine)
    log.checkpoint()
    assert AuditHeadStore(store.db).newest(log.log_id)["seq"] == 2 and not log.witness_errors
    assert log.verify().ok
    store.close()


def test_a_head_only_moves_forward(store):
    heads = AuditHeadStore(store.db)
    assert heads.record("a" * 64, {"seq": 10, "hash": "h10"}) is True
    assert heads.record("a" * 64, {"seq": 5, "hash": "h5"}) is False
    assert heads.record("a" * 64, {"seq": 10, "hash": "other"}) is False
    assert heads.record("b" * 64, {"seq": 1, "hash": "b1"}) is True  # each log has its own head
    assert heads.newest("a" * 64) == {"seq": 10, "hash": "h10"} and heads.newest("c" * 64) is None


def test_verifying_a_live_log_while_it_grows_never_fails(tmp_path):
    """The server verifies while its checkpoint thread and requests keep writing: what is written
    meanwhile only extends what verification read first."""
    store = open_store(tmp_path / "state")
    log = open_server_log(tmp_path / "state" / "audit", store.db, environ={})
    stop = threading.Event()

    def write():
        i = 0
        while not stop.is_set():
            log.append("job-state", "alice", {"i": i})
            i += 1
            if i % 5 == 0:
                log.checkpoint()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        verdicts = [log.verify() for _ in range(30)]
    finally:
        stop.set()
        writer.join()
    assert all(v.ok for v in verdicts), [v.line() for v in verdicts if not v.ok][:3]
    assert verdicts[-1].records > verdicts[0].records and verdicts[-1].heads
    store.close()


def test_the_tail_reader_returns_lines_of_any_length_whole(tmp_path):
    rng = random.Random(4)
    for trial in range(200):
        lines = [b"r" * rng.choice([0, 1, 90, 65_535, 65_536, 300_000]) for _ in range(rng.randrange(8))]
        data = b"\n".join(lines) + (b"\n" if rng.random() < 0.7 else b"")
        path = tmp_path / f"{trial}.jsonl"
        path.write_bytes(data)
        assert list(lines_backwards(path, chunk=rng.choice([1, 7, 65_536]))) == [
            line for line in reversed(data.split(b"\n")) if line.strip()]


def test_a_huge_actor_or_type_is_refused_naming_the_field(tmp_path):
    log = AuditLog(tmp_path)
    with pytest.raises(ValueError, match="^actor: 2,000 characters is over the audit log's limit of 1,024"):
        log.append("login", "a" * 2000)
    with pytest.raises(ValueError, match="^type: "):
        log.append("t" * 2000, "alice")
    assert segments(tmp_path) == []  # nothing was written
