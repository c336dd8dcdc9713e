"""The embedded default's Ray: one head per state directory, started with `ray start --head` on
loopback as its own processes, so that it outlives any one server. A second server on the same
state directory (a standby), or a restarted one, joins the same head instead of starting another.

`state_dir/ray-head.json` records the address, the temp dir (the head's processes carry it on
their command line, which is how `stop_local_head` finds them) and the ports. The head runs with
Ray token auth and the state directory's own token (`cluster/ray_auth.py`), whatever the user's
`~/.ray/auth_token` or `RAY_AUTH_*` variables say; a head recorded without that token (started by
an older suanli) is stopped and started again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from cluster.config import SuanliConfig
from cluster.devices import discover_local
from cluster.errors import ConfigError
from cluster.ports import free_ports
from cluster.ray_auth import child_environment, ensure_token
from cluster.ray_cluster import LOOPBACK, local_node_args
from cluster.serve_ingress import serve_ingress_environment

HEAD_FILE = "ray-head.json"
START_TIMEOUT_S = 90.0


def _answers(address: str, timeout: float = 1.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def head_command(config: SuanliConfig, temp_dir: str, ports: list[int]) -> list[str]:
    """`ray start --head` for this machine's real devices, labelled with the config's cluster,
    tier and site, on loopback, without the dashboard, on its own ports."""
    args = local_node_args(config, discover_local())
    ray = str(Path(sys.executable).with_name("ray"))
    gcs, agent, agent_grpc, metrics, env_agent = ports
    return [
        ray, "start", "--head", f"--node-ip-address={LOOPBACK}", f"--port={gcs}", "--include-dashboard=false",
        f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={env_agent}", f"--temp-dir={temp_dir}",
        "--disable-usage-stats", f"--num-cpus={args['num_cpus']}", f"--num-gpus={args['num_gpus']}",
        f"--resources={json.dumps(args['resources'])}",
        "--labels=" + ",".join(f"{k}={v}" for k, v in args["labels"].items()),
    ]


def head_temp_dir(state_dir: Path) -> str:
    """The Ray temp dir of the state directory's head (short: Ray's socket paths must fit)."""
    return f"/tmp/suanli-ray-{hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]}"


def ensure_local_head(state_dir: Path, config: SuanliConfig) -> tuple[str, bool]:
    """(address, started): the address of the state directory's Ray head, and whether this call
    started it (False when a live head was joined). The caller connects with
    `ray_auth.use_token(ray_auth.ensure_token(state_dir))`. ConfigError when the head cannot start;
    then no process of it is left running."""
    state_dir.mkdir(parents=True, exist_ok=True)
    record = state_dir / HEAD_FILE
    token_path = ensure_token(state_dir)
    with (state_dir / "ray-head.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two servers starting together start one head
        if record.exists():
            known = json.loads(record.read_text())
            if known.get("auth") == "state-token" and _answers(known["address"]):
                return known["address"], False
            stop_local_head(state_dir)
        temp_dir = head_temp_dir(state_dir)
        ports = free_ports(5, LOOPBACK)
        env = child_environment(token_path, {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                                             **serve_ingress_environment()})
        # recorded before the start, so that a failed start is cleaned up by the same stop
        record.write_text(json.dumps({"address": f"{LOOPBACK}:{ports[0]}", "temp_dir": temp_dir, "ports": ports,
                                      "auth": "state-token", "started": time.time()}))
        try:
            done = subprocess.run(head_command(config, temp_dir, ports), env=env, capture_output=True, text=True,
                                  timeout=START_TIMEOUT_S, start_new_session=True)
            if done.returncode != 0:
                raise ConfigError(f"ray start: exit {done.returncode}: {(done.stderr or done.stdout).strip()[-800:]}")
            address = f"{LOOPBACK}:{ports[0]}"
            deadline = time.time() + START_TIMEOUT_S
            while not _answers(address):
                if time.time() > deadline:
                    raise ConfigError(f"ray start: the head at {address} did not answer within {START_TIMEOUT_S:g} s")
                time.sleep(0.2)
        except BaseException:
            stop_local_head(state_dir)
            raise
        return address, True


def head_pids(temp_dir: str) -> list[int]:
    """The pids of the processes of the head whose temp dir is `temp_dir`: those naming it on
    their command line and their descendants (Ray's agents retitle themselves "ray::DashboardAgent",
    dropping the temp dir from their command line)."""
    import psutil

    found: set[int] = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(temp_dir in part for part in proc.info["cmdline"] or ()):
                found.add(proc.info["pid"])
                found.update(child.pid for child in proc.children(recursive=True))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sorted(found)


def stop_local_head(state_dir: Path) -> int:
    """Stop the state directory's Ray head (only its own processes, by pid); how many were ended."""
    import psutil

    record = state_dir / HEAD_FILE
    if not record.exists():
        return 0
    temp_dir = json.loads(record.read_text())["temp_dir"]
    procs = []
    for pid in head_pids(temp_dir):
        try:
            procs.append(psutil.Process(pid))
            procs[-1].terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        proc.kill()
    record.unlink(missing_ok=True)
    shutil.rmtree(temp_dir, ignore_errors=True)
    return len(procs)
