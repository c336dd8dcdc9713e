"""Audit and access-control figures, measured in one run:

- `append_p99_ms`: one record appended (detail size checked, chained, written, file-locked) as
  the server does, p50/p99 over `--appends` records; `detail_check_p99_ms` is the size check alone
  (canonical JSON of the detail), and `refuse_10mb_ms` the time to refuse a 10 MB detail;
- `checkpoint_witnessed_p50_ms`: one signed checkpoint handed to the store's `audit_heads` (SQLite),
  against the same checkpoint with no witness, p50 over `--checkpoints`;
- `verify_1m_events_s`: verifying a log of `--events` records (1,000,000 by default) with its
  signed checkpoints and the store's witnessed head, from cold files, against the same verification
  without the head; `restart_checkpoint_s`: a reopened log's first witnessed checkpoint, which
  checks that the log still holds the stored head's record (one segment searched);
- `tamper_detected` of `tamper_trials`: random tamperings of an archived log (byte edits,
  deleted, inserted, swapped and truncated records, forged checkpoints), each detected and named
  at the right sequence number (the same generator as tests/runtime/test_audit.py), verified with
  the key pinned before tampering;
- `authz_p99_ms`: authenticating a token against the store and checking a permission, per
  request, with the server's 2 s identity cache and without it (every lookup hits the store).

    python benchmarks/audit.py --json
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import emit  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def appends(count: int) -> dict:
    from runtime.audit.log import MAX_DETAIL_BYTES, AuditDetailTooLarge, AuditLog, canonical

    log = AuditLog(tempfile.mkdtemp(prefix="suanli-audit-append-"))
    times, checks = [], []
    for i in range(count):
        detail = {"job_id": f"fraud-{i:08x}", "detail": "attempt 1 on cpu"}
        start = time.perf_counter()
        log.append("job-running", "alice", detail)
        times.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        _ = len(canonical(detail)) > MAX_DETAIL_BYTES
        checks.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    try:
        log.append("artifact-signed", "mallory", {"blob": "x" * 10 * 2**20})
    except AuditDetailTooLarge:
        refused = (time.perf_counter() - start) * 1000
    shutil.rmtree(log.directory)
    return {"records": count, "p50_ms": round(percentile(times, 0.5), 4), "p99_ms": round(percentile(times, 0.99), 4),
            "detail_check_p99_ms": round(percentile(checks, 0.99), 4), "refuse_10mb_ms": round(refused, 1)}


def checkpoints(count: int) -> dict:
    """Signed checkpoints with the store as witness and without, alternating, 10 records apart."""
    from runtime.audit.log import AuditLog
    from runtime.audit.witness import open_server_log
    from runtime.store import open_store

    root = Path(tempfile.mkdtemp(prefix="suanli-audit-checkpoint-"))
    store = open_store(root / "state")
    witnessed, bare = open_server_log(root / "state" / "audit", store.db, environ={}), AuditLog(root / "bare")
    times: dict[str, list[float]] = {"witnessed": [], "bare": []}
    for _ in range(count):
        for name, log in (("witnessed", witnessed), ("bare", bare)):
            for i in range(10):
                log.append("job-state", "alice", {"i": i})
            start = time.perf_counter()
            log.checkpoint()
            times[name].append((time.perf_counter() - start) * 1000)
    store.close()
    shutil.rmtree(root)
    out = {f"{name}_p50_ms": round(percentile(values, 0.5), 3) for name, values in times.items()}
    out["ratio"] = round(out["witnessed_p50_ms"] / out["bare_p50_ms"], 2)
    return {"checkpoints": count, **out}


def verify_many(events: int) -> dict:
    from runtime.audit.verify import verify_log
    from runtime.audit.witness import open_server_log
    from runtime.store import open_store
    from runtime.store.audit_heads import AuditHeadStore

    root = Path(tempfile.mkdtemp(prefix="suanli-audit-verify-"))
    store = open_store(root / "state")
    directory = root / "state" / "audit"
    log = open_server_log(directory, store.db, environ={})
    log.checkpoint_s = 3600
    start = time.perf_counter()
    for i in range(events):
        log.append("job-state", f"user{i % 50}", {"job_id": f"j{i}", "state": "RUNNING"})
        if i % 100_000 == 99_999:
            log.checkpoint()
            print(f"[audit] wrote {i + 1:,} records", file=sys.stderr, flush=True)
    log.close()
    written = time.perf_counter() - start
    start = time.perf_counter()
    verdict = verify_log(directory, log.public_key, witnesses=[AuditHeadStore(store.db)])
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    bare = verify_log(directory, log.public_key)
    bare_seconds = time.perf_counter() - start
    reopened = open_server_log(directory, store.db, environ={})
    reopened.append("server-started", "bench", {})
    start = time.perf_counter()
    reopened.checkpoint()
    restart = time.perf_counter() - start
    store.close()
    shutil.rmtree(root)
    return {"events": events, "ok": verdict.ok and bare.ok and not reopened.witness_errors, "heads": verdict.heads,
            "checkpoints": verdict.checkpoints, "verify_s": round(seconds, 2),
            "verify_without_head_s": round(bare_seconds, 2), "ratio": round(seconds / bare_seconds, 3),
            "restart_checkpoint_s": round(restart, 3), "write_s": round(written, 2)}


def tampering(trials: int) -> dict:
    from runtime.audit.log import AuditLog
    from runtime.audit.verify import verify_log
    from tests.runtime.test_audit import RECORDS, tamper

    archived = Path(tempfile.mkdtemp(prefix="suanli-audit-archive-"))
    log = AuditLog(archived, max_segment_bytes=6_000)
    for i in range(RECORDS):
        log.append("job-state", f"user{i % 3}", {"job": f"j{i}", "state": "QUEUED"})
        if i % 37 == 36:
            log.checkpoint()
    log.close()
    rng = random.Random(7)
    detected = named = 0
    scratch = Path(tempfile.mkdtemp(prefix="suanli-audit-tamper-"))
    for trial in range(trials):
        copy = scratch / str(trial)
        shutil.copytree(archived, copy)
        _, expected = tamper(copy, rng)
        verdict = verify_log(copy, log.public_key)
        detected += not verdict.ok
        named += (not verdict.ok) and verdict.first_bad_seq == expected
        shutil.rmtree(copy)
    return {"tamper_trials": trials, "tamper_detected": detected, "first_bad_seq_named": named}


def authorization(requests: int) -> dict:
    from runtime.server.auth import Accounts
    from runtime.store import open_store

    store = open_store(tempfile.mkdtemp(prefix="suanli-authz-"))
    accounts = Accounts(store.accounts)
    accounts.add_user("alice", "algorithm-engineer", "risk", created_by="bench")
    token, _ = accounts.create_token("alice")
    cold, cached, cache = [], [], {}
    for _ in range(requests):
        start = time.perf_counter()
        identity = accounts.authenticate(token)
        identity.may("jobs:submit")
        cold.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        identity = cache.get(token) or cache.setdefault(token, accounts.authenticate(token))
        identity.may("jobs:submit")
        cached.append((time.perf_counter() - start) * 1000)
    return {"requests": requests, "store_lookup_p50_ms": round(percentile(cold, 0.5), 4),
            "store_lookup_p99_ms": round(percentile(cold, 0.99), 4), "cached_p99_ms": round(percentile(cached, 0.99), 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appends", type=int, default=5000)
    parser.add_argument("--checkpoints", type=int, default=200)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tampers", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    append = appends(args.appends)
    checkpoint = checkpoints(args.checkpoints)
    verify = verify_many(args.events)
    tamper = tampering(args.tampers)
    authz = authorization(args.requests)
    result = {"append_p99_ms": append["p99_ms"], "refuse_10mb_ms": append["refuse_10mb_ms"],
              "checkpoint_witnessed_p50_ms": checkpoint["witnessed_p50_ms"], "verify_1m_events_s": verify["verify_s"],
              "tamper_detected": tamper["tamper_detected"], "tamper_trials": tamper["tamper_trials"],
              "authz_p99_ms": authz["store_lookup_p99_ms"], "append": append, "checkpoint": checkpoint,
              "verify": verify, "tamper": tamper, "authz": authz,
              "goals": {"append_p99_ms": 5, "verify_1m_events_s": 60, "authz_p99_ms": 1}}
    markdown = (f"| audit | append p99 {append['p99_ms']:.3f} ms (size check p99 {append['detail_check_p99_ms']:.4f} ms; "
                f"a 10 MB detail refused in {append['refuse_10mb_ms']} ms); checkpoint witnessed by the store p50 "
                f"{checkpoint['witnessed_p50_ms']} ms ({checkpoint['ratio']}x one without); verify "
                f"{verify['events']:,} records against the store's head in {verify['verify_s']} s "
                f"({verify['ratio']}x without the head; {'ok' if verify['ok'] else 'FAILED'}), first checkpoint "
                f"after a restart {verify['restart_checkpoint_s']} s; tampering detected "
                f"{tamper['tamper_detected']}/{tamper['tamper_trials']} (first bad record named in "
                f"{tamper['first_bad_seq_named']}); token check + permission p99 {authz['store_lookup_p99_ms']:.3f} ms "
                f"from the store, {authz['cached_p99_ms']:.4f} ms cached |")
    emit("audit", result, markdown, args.json)


if __name__ == "__main__":
    main()
