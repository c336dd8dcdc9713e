"""The embedded default starts wherever Ray does: with a token already in the user's
`~/.ray/auth_token` (Ray 2.60 writes one on the first `ray start` or plain `ray.init()`), and with
`RAY_AUTH_MODE=token` and no token anywhere. The server's head uses its own token from the state
directory and never writes to the user's `~/.ray`; a server that fails to start leaves no Ray
process behind. Each test has its own HOME, never the real one."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.local_head import HEAD_FILE, head_pids, head_temp_dir
from cluster.ray_auth import AUTH_VARIABLES, TOKEN_FILE
from runtime.server.local import stop_local_server
from tests.conftest import shared_path

pytestmark = pytest.mark.ray
RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh user's HOME with none of Ray's auth variables set (the server inherits this)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SUANLI_CONFIG", "")
    for name in AUTH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return home


def test_a_two_worker_job_runs_when_the_user_already_has_a_ray_token(home, tmp_path):
    from runtime import Client, TrainingJob

    subprocess.run([RAY, "get-auth-token", "--generate"], check=True, capture_output=True, env=os.environ)
    user_token = (home / ".ray" / "auth_token").read_text()
    state = tmp_path / "state"
    try:
        client = Client(state_dir=state)  # starts the local server and its head, as a new user's first call does
        job = client.submit(TrainingJob(name="with-user-token", dataset=str(shared_path("credit", "australian_credit.csv")),
                                        label="class", workers=2, device="cpu", epochs=2, hidden=[16]))
        assert job.wait(timeout=400).value == "SUCCEEDED", (job.info()["error"], job.logs()[-3000:])
        assert sum(a["workers"] for a in job.info()["placement"]["assignments"]) == 2
        own = state / TOKEN_FILE
        assert own.stat().st_mode & 0o777 == 0o600 and own.read_text().strip() != user_token.strip()
        temp_dir = head_temp_dir(state)
        assert head_pids(temp_dir)
    finally:
        stop_local_server(state)
    assert head_pids(temp_dir) == []
    assert (home / ".ray" / "auth_token").read_text() == user_token  # the user's token is untouched


def test_token_mode_without_any_token_starts_and_writes_nothing_to_the_users_home(home, tmp_path, monkeypatch):
    from runtime import Client

    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    state = tmp_path / "state"
    try:
        assert Client(state_dir=state).jobs() == []
        temp_dir = head_temp_dir(state)
    finally:
        stop_local_server(state)
    assert head_pids(temp_dir) == []
    assert not (home / ".ray").exists()


def test_a_server_that_fails_to_start_leaves_no_ray_process(home, tmp_path):
    """The profile is read after the head has started: the start fails there, and the server
    stops the head it started before it exits."""
    state = tmp_path / "state"
    bad_profile = tmp_path / "profile.json"
    bad_profile.write_text("{not json")
    done = subprocess.run([sys.executable, "-m", "runtime.cli.main", "server", "--state-dir", str(state),
                           "--port", "0", "--profile", str(bad_profile)],
                          capture_output=True, text=True, timeout=300, env=os.environ)
    assert done.returncode != 0 and "throughput profile" in done.stderr
    assert head_pids(head_temp_dir(state)) == []
    assert not (state / HEAD_FILE).exists()
    assert not (home / ".ray").exists()
