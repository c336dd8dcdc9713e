"""The job store and the controller lease, against SQLite (WAL) and a real PostgreSQL 15."""

import sqlite3
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import text

from runtime.specs import TRANSITIONS, JobState
from runtime.store import FencedOut, Store, StoreError, open_store
from tests.conftest import REPO


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        found = open_store(tmp_path / "state")
    else:
        url = request.getfixturevalue("postgres_url")
        found = Store(url)
        with found.db.engine.begin() as conn:  # each test starts from empty tables
            for table in ("events", "attempts", "checkpoints", "log_lines", "leases", "jobs", "tokens", "users"):
                conn.execute(text(f"DELETE FROM {table}"))
    yield found
    found.close()


def test_every_transition_outside_the_table_is_refused(store):
    for current in JobState:
        for new in JobState:
            job_id = store.jobs.add("t", "risk", "alice", {"epochs": 1}, None)
            with store.db.engine.begin() as conn:  # put the job in `current` directly, bypassing the table
                conn.execute(text("UPDATE jobs SET state = :s WHERE id = :i"), {"s": current.value, "i": job_id})
            if new in TRANSITIONS[current]:
                assert store.jobs.transition(job_id, new, detail="ok")
            else:
                with pytest.raises(ValueError, match=f"state: {current.value} -> {new.value} is not allowed"):
                    store.jobs.transition(job_id, new)
                assert store.jobs.get(job_id).state == current  # nothing written


def test_lease_fencing_refuses_a_stale_holder(store):
    leases = store.leases
    first = leases.try_acquire("server-a", ttl_s=0.5)
    assert first.token == 1
    assert leases.try_acquire("server-b", ttl_s=0.5) is None  # live lease: b waits
    job_id = store.jobs.add("fenced", "risk", "alice", {"epochs": 1}, None)
    assert store.attempts.start(job_id, {"kind": "cpu"}, "ray", first.token, "go", {"actor": "x"}) == 1
    time.sleep(0.6)
    second = leases.try_acquire("server-b", ttl_s=5)
    assert second.token == 2 and second.holder == "server-b"
    with pytest.raises(FencedOut, match="token 1 is stale"):  # a holds an expired lease and writes anyway
        store.jobs.transition(job_id, JobState.RUNNING, fence=first.token)
    with pytest.raises(FencedOut):
        store.checkpoints.record(job_id, 1, 0, "/ckpt/0", "ab" * 32, fence=first.token)
    assert store.jobs.get(job_id).state == JobState.STARTING and store.checkpoints.of(job_id) == []
    assert store.jobs.transition(job_id, JobState.RUNNING, fence=second.token)
    assert [e["fence"] for e in store.jobs.events(job_id)] == [None, 1, 2]
    assert leases.try_acquire("server-b", ttl_s=5).token == 2  # renewal keeps the token
    assert leases.release("server-b", 2)
    assert leases.try_acquire("server-a", ttl_s=5).token == 3  # released: taken at once, new token


def test_attempts_checkpoints_logs_and_cancellation(store):
    leases = store.leases
    token = leases.try_acquire("me", 10).token
    job_id = store.jobs.add("fraud", "risk", "alice", {"epochs": 2}, b"pickled-fn")
    assert len(store.jobs.get(job_id).train_fn_sha256) == 64
    assert store.attempts.start(job_id, {"kind": "cpu"}, "ray", token, "placed", {"actor": "a1"}) == 1
    assert store.attempts.start(job_id, {"kind": "cpu"}, "ray", token, "again", {"actor": "a1"}) is None
    assert [a.number for a in store.attempts.open()] == [1]
    assert store.checkpoints.record(job_id, 1, 0, "/runs/c0", "0" * 64, token)
    assert not store.checkpoints.record(job_id, 1, 0, "/runs/c0", "0" * 64, token)  # once
    store.attempts.update(job_id, 1, token, state="ended", outcome="lost", error="node gone", ended=time.time())
    assert store.attempts.open() == [] and store.attempts.get(job_id, 1).outcome == "lost"
    assert store.jobs.request_cancel(job_id, "alice") == JobState.STARTING  # the controller stops it
    assert store.jobs.get(job_id).cancel_requested
    queued = store.jobs.add("other", "risk", "bob", {"epochs": 1}, None)
    assert store.jobs.request_cancel(queued, "bob") == JobState.CANCELLED  # nothing ran: cancelled at once
    with pytest.raises(ValueError, match="already finished"):
        store.jobs.request_cancel(queued, "bob")
    with pytest.raises(KeyError, match="no job 'nope'"):
        store.jobs.get("nope")
    assert "STARTING attempt 1: placed" in store.logs.text(job_id)
    assert [c["path"] for c in store.checkpoints.of(job_id)] == ["/runs/c0"]
    assert {r.id for r in store.jobs.list(states=(JobState.STARTING,), cancel_requested=True)} == {job_id}


def test_two_processes_share_the_sqlite_store_safely(tmp_path):
    """Writers in two processes at once: every add lands, none is lost (BEGIN IMMEDIATE + WAL)."""
    open_store(tmp_path).close()
    code = ("import sys; sys.path.insert(0, {repo!r}); from runtime.store import open_store\n"
            "s = open_store({dir!r})\nfor i in range(50): s.jobs.add('w', 't', 'u', {{}}, None)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code.format(repo=str(REPO), dir=str(tmp_path))]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    store = open_store(tmp_path)
    assert store.jobs.count() == 100
    assert sqlite3.connect(tmp_path / "jobs.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_corrupt_store_is_refused_naming_the_file_and_check(tmp_path):
    (tmp_path / "jobs.db").write_bytes(b"SQLite format 3\x00" + uuid.uuid4().bytes * 300)
    with pytest.raises(StoreError, match=r"jobs.db failed SQLite's quick_check"):
        open_store(tmp_path)
    out = subprocess.run([sys.executable, "-m", "runtime.cli.main", "server", "--state-dir", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 2 and "jobs.db failed SQLite's quick_check" in out.stderr
    with pytest.raises(StoreError, match="unsupported URL 'mysql'"):
        Store("mysql://x")


def test_a_cancel_racing_a_launch_never_restarts_a_cancelled_job(store):
    """Both stores: a cancel and a launch of the same QUEUED job, from two threads at once, many
    times. Either the cancel wins (CANCELLED, no attempt) or the launch does (STARTING with the
    cancellation marked, for the controller to stop); never CANCELLED -> STARTING."""
    import threading

    token = store.leases.try_acquire("me", 60).token
    def race(job_id: str) -> dict:
        barrier, result = threading.Barrier(2), {}

        def cancel():
            barrier.wait()
            result["cancel"] = store.jobs.request_cancel(job_id, "alice")

        def launch():
            barrier.wait()
            result["attempt"] = store.attempts.start(job_id, {"kind": "cpu"}, "ray", token, "go", {"actor": "a"})

        threads = [threading.Thread(target=cancel), threading.Thread(target=launch)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        return result

    for i in range(25):
        job_id = store.jobs.add(f"race{i}", "t", "u", {}, None)
        result = race(job_id)
        record = store.jobs.get(job_id)
        kinds = [e["kind"] for e in store.jobs.events(job_id) if e["kind"].isupper()]
        if result["attempt"] is None:
            assert record.state == JobState.CANCELLED and record.attempts == 0 and kinds == ["CANCELLED"]
        else:
            assert record.state == JobState.STARTING and record.cancel_requested and kinds == ["STARTING"]


def test_an_attempts_end_and_its_jobs_move_are_one_transaction(store):
    """A move the table forbids, after the attempt's end in the same call: nothing is written."""
    from runtime.store import Move

    token = store.leases.try_acquire("me", 60).token
    job_id = store.jobs.add("atomic", "t", "u", {}, None)
    assert store.attempts.start(job_id, {"kind": "cpu"}, "ray", token, "go", {"actor": "a"}) == 1
    with pytest.raises(ValueError, match="STARTING -> SUCCEEDED is not allowed"):
        store.attempts.end(job_id, 1, token, outcome="succeeded", moves=[Move(JobState.SUCCEEDED, "done")])
    assert store.attempts.get(job_id, 1).state != "ended" and store.jobs.get(job_id).state == JobState.STARTING
    assert store.attempts.end(job_id, 1, token, outcome="lost", moves=[Move(JobState.QUEUED, "again")])
    assert store.attempts.get(job_id, 1).state == "ended" and store.jobs.get(job_id).state == JobState.QUEUED


def test_accounts_revoking_a_user_revokes_their_tokens_in_the_same_write(store):
    accounts = store.accounts
    accounts.add_user("alice", "auditor", "risk", created_by="root")
    with pytest.raises(ValueError, match="name: user 'alice' exists already"):
        accounts.add_user("alice", "admin", "risk", created_by="root")
    for n in range(3):
        accounts.add_token(f"t{n}", "alice", "ab" * 32, created=1.0, expires_at=2.0, label=f"n{n}")
    assert accounts.revoke_token("t0") == "alice"
    row = accounts.token_with_user("t1")
    assert (row.user, row.role, row.tenant, row.revoked, row.revoked_at) == ("alice", "auditor", "risk", False, None)
    assert accounts.revoke_user("alice") == 2  # t1 and t2; t0 was revoked already
    assert all(t["revoked_at"] is not None for t in accounts.tokens_of("alice"))
    with pytest.raises(KeyError, match="no active user 'alice'"):
        accounts.add_token("t3", "alice", "cd" * 32, created=1.0, expires_at=2.0, label="")
    assert accounts.token_with_user("t3") is None and accounts.token_expiry("t2") == 2.0
    with pytest.raises(KeyError, match="no user 'bob'"):
        accounts.revoke_user("bob")
