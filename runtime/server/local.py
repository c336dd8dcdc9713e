"""Finding the server a client talks to, and starting the local one on first use (as SkyPilot
does): `state_dir/server.json` names a live local server; if none answers, one is started in the
background (`suanli server --state-dir DIR`), its log in `state_dir/server.log`."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cluster.errors import ConfigError

START_TIMEOUT_S = 180.0
SERVER_FILE = "server.json"


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def running_local_server(state_dir: Path) -> dict | None:
    """{url, pid, ...} of the local server of `state_dir` if it answers, else None."""
    record = state_dir / SERVER_FILE
    if not record.exists():
        return None
    try:
        info = json.loads(record.read_text())
    except json.JSONDecodeError:
        return None
    if not _alive(info["pid"]):
        return None
    try:
        health = httpx.get(info["url"] + "/healthz", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    return info if health.get("pid") == info["pid"] else None


def ensure_local_server(state_dir: Path, extra_args: tuple[str, ...] = ()) -> str:
    """The URL of the local server of `state_dir`, starting one in the background if none runs.
    Clients starting together start one server (a file lock)."""
    state_dir = state_dir.expanduser().resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    with (state_dir / "server.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = running_local_server(state_dir)
        if found:
            return found["url"]
        return start_server(state_dir, *extra_args)[1]


def start_server(state_dir: Path, *args: str, port: int | None = None, log_name: str = "server.log",
                 timeout: float = START_TIMEOUT_S) -> tuple[subprocess.Popen, str]:
    """Start `suanli server --state-dir DIR [--port PORT] ARGS...` in its own session (it outlives
    this process) and wait until it answers /healthz; (process, url). ConfigError with the tail of
    its log when it exits or does not answer in time."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / log_name
    command = [sys.executable, "-m", "runtime.cli.main", "server", "--state-dir", str(state_dir), *args]
    if port is not None:
        command += ["--port", str(port)]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        url = f"http://127.0.0.1:{port}" if port is not None else None
        if url is None:
            found = running_local_server(state_dir)
            url = found["url"] if found and found["pid"] == proc.pid else None
        if url is not None:
            try:
                if httpx.get(url + "/healthz", timeout=2).json().get("pid") == proc.pid:
                    return proc, url
            except (httpx.HTTPError, ValueError):
                pass
        time.sleep(0.3)
    if proc.poll() is None:
        proc.kill()
    tail = log_path.read_text(errors="replace")[-1500:]
    raise ConfigError(f"server: the server did not start (see {log_path}):\n{tail}")


def stop_local_server(state_dir: Path, stop_ray: bool = True, timeout: float = 60.0) -> bool:
    """Stop the local server of `state_dir` (SIGTERM, by pid) and, with `stop_ray`, its Ray head.
    True when a server was running."""
    from cluster.local_head import stop_local_head

    state_dir = state_dir.expanduser().resolve()
    info = None
    record = state_dir / SERVER_FILE
    if record.exists():
        info = json.loads(record.read_text())
        if _alive(info["pid"]):
            os.kill(info["pid"], signal.SIGTERM)
            deadline = time.time() + timeout
            while _alive(info["pid"]) and time.time() < deadline:
                time.sleep(0.2)
            if _alive(info["pid"]):
                os.kill(info["pid"], signal.SIGKILL)
        record.unlink(missing_ok=True)
    if stop_ray:
        stop_local_head(state_dir)
    return info is not None
