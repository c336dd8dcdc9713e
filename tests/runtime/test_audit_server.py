"""The audit log of a real server (a one-node emulated cluster it starts itself): its checkpoints
reach the store's `audit_heads`, a 10 MB event writes nothing and stops nothing, a server
restarts on a log whose last record is oversize (as an older version could write) with its key
pinned, and `suanli audit verify` names the tail deleted with its checkpoints while the server was
down."""

import json
import shutil
import subprocess
import sys

import httpx
import pytest

from runtime.audit.log import CHECKPOINTS, PUBLIC_KEY_FILE, canonical, record_hash, segments
from runtime.audit.witness import VERIFY_KEY_ENV
from tests.conftest import REPO

pytestmark = pytest.mark.ray


def call(url, method, path, token, body=None):
    return httpx.request(method, url + path, headers={"Authorization": f"Bearer {token}"}, json=body, timeout=60)


def start(state, emulation):
    from runtime.server.local import start_server

    proc, url = start_server(state, "--emulate", str(emulation))
    return proc, url, (state / "admin.token").read_text().strip()


def stop(proc):
    proc.terminate()
    proc.wait(timeout=120)


def records(audit):
    return [json.loads(line) for segment in segments(audit) for line in segment.read_bytes().splitlines()]


def test_a_servers_log_is_witnessed_survives_oversize_records_and_names_a_deleted_tail(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # Ray writes nothing into the user's ~/.ray
    state, emulation = tmp_path / "state", tmp_path / "one.yaml"
    emulation.write_text("name: audit\nnodes:\n  - {tier: center, site: dc1, count: 1, cpu: 1}\n")
    audit = state / "audit"
    proc, url, admin = start(state, emulation)
    try:
        assert call(url, "POST", "/audit/events", admin, {"type": "artifact-signed", "detail": {"job": "j1"}}).is_success
        huge = call(url, "POST", "/audit/events", admin, {"type": "artifact-signed", "detail": {"blob": "x" * 10**7}})
        assert huge.status_code == 413 and "16,384 bytes" in huge.json()["detail"], huge.text
        assert call(url, "POST", "/audit/events", admin, {"type": "artifact-signed", "detail": {"job": "j2"}}).is_success
        verified = call(url, "GET", "/audit/verify", admin).json()  # checkpoints, then verifies against the head
        assert verified["ok"] is True, verified
    finally:
        stop(proc)
    assert not any(r["detail"].get("blob") for r in records(audit) if isinstance(r["detail"], dict))
    pinned = shutil.copy(audit / PUBLIC_KEY_FILE, tmp_path / "pinned.pem")
    witnessed = records(audit)[-1]["seq"]  # the shutdown checkpoint is the store's head

    last = records(audit)[-1]  # an oversize last record, as an older version wrote any size
    old = {"seq": last["seq"] + 1, "time": last["time"], "type": "artifact-signed", "source": last["source"],
           "actor": "mallory", "level": "notice", "detail": {"blob": "z" * 300_000}, "prev": last["hash"]}
    old["hash"] = record_hash(old)
    with segments(audit)[-1].open("ab") as f:
        f.write(canonical(old).encode() + b"\n")
    monkeypatch.setenv(VERIFY_KEY_ENV, str(pinned))  # the restarted server checks its key against the pin
    proc, url, admin = start(state, emulation)
    try:
        verified = call(url, "GET", "/audit/verify", admin).json()
        assert verified["ok"] is True and verified["records"] > old["seq"], verified
    finally:
        stop(proc)
    monkeypatch.delenv(VERIFY_KEY_ENV)

    def verify():
        return subprocess.run([sys.executable, "-m", "runtime.cli.main", "audit", "verify", "--state-dir", str(state),
                               "--public-key", str(pinned)], capture_output=True, text=True, cwd=REPO, timeout=120)

    out = verify()
    assert out.returncode == 0 and "reaches the head witnessed by the store" in out.stdout, out.stderr
    head = json.loads((audit / CHECKPOINTS).read_bytes().splitlines()[-1])["seq"]
    assert head > witnessed
    cut = witnessed - 2  # the server is down: delete its newest records and every checkpoint covering them
    for segment in segments(audit):
        kept = [line for line in segment.read_bytes().splitlines() if json.loads(line)["seq"] < cut]
        segment.write_bytes(b"".join(line + b"\n" for line in kept))
    lines = (audit / CHECKPOINTS).read_bytes().splitlines()
    (audit / CHECKPOINTS).write_bytes(b"".join(line + b"\n" for line in lines if json.loads(line)["seq"] < cut))
    out = verify()
    assert out.returncode == 1 and f"FAILED at record {cut}: records {cut}-{head} are missing" in out.stderr, out.stderr
