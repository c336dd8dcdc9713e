"""A standalone Ray cluster on this machine, as its own head processes: its own port set, temp dir
and auth token, and the dashboard on (Ray's job-submission API lives there). Several can run side
by side; this is how the federation's tests, benchmark and demo stand in for clusters on other
machines. Stopping or faulting one touches only its own processes (found by its temp dir).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cluster.errors import ConfigError
from cluster.labels import node_labels_and_resources
from cluster.local_head import _answers, head_pids
from cluster.ports import free_ports
from cluster.ray_cluster import LOOPBACK
from cluster.serve_ingress import DIRECT_INGRESS_PORTS, serve_ingress_environment

START_TIMEOUT_S = 120.0


@dataclass
class StandaloneHead:
    """A running head: `address` is its job-submission (dashboard) URL."""

    name: str
    site: str
    tier: str
    temp_dir: str
    token_file: Path
    address: str
    gcs_address: str

    def pids(self) -> list[int]:
        """Its processes (those naming its temp dir, and their descendants)."""
        return head_pids(self.temp_dir)

    def signal(self, sig: int, pids: list[int] | None = None) -> int:
        """Send `sig` to every process of this head (SIGKILL: the cluster is gone; SIGSTOP /
        SIGCONT: a stall); how many received it."""
        count = 0
        for pid in self.pids() if pids is None else pids:
            try:
                os.kill(pid, sig)
                count += 1
            except ProcessLookupError:
                continue
        return count

    def stop(self) -> None:
        """End every process of this head (SIGCONT first, in case it was stalled) and remove its
        temp dir."""
        pids = self.pids()  # once: agents whose raylet ended are found by no later search
        self.signal(signal.SIGCONT, pids)
        self.signal(signal.SIGTERM, pids)
        deadline = time.time() + 10
        while any(_alive(pid) for pid in pids) and time.time() < deadline:
            time.sleep(0.2)
        self.signal(signal.SIGKILL, pids)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


_BLOCKS_TAKEN: set[int] = set()


def _worker_port_block(size: int = 200) -> tuple[int, int]:
    """A block of worker ports below the kernel's ephemeral range (where the other ports come
    from) and below Serve's direct-ingress ports, all free now and not given to another head of
    this process."""
    import random
    import socket

    blocks = [b for b in range(20000, DIRECT_INGRESS_PORTS[0], size) if b not in _BLOCKS_TAKEN]
    random.shuffle(blocks)
    for base in blocks:
        try:
            for port in range(base, base + size):
                with socket.socket() as s:
                    s.bind((LOOPBACK, port))
        except OSError:
            continue
        _BLOCKS_TAKEN.add(base)
        return base, base + size - 1
    raise ConfigError(f"ray start: no free block of worker ports between 20000 and {DIRECT_INGRESS_PORTS[0]}")


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def start_head(name: str, root: str | Path, site: str | None = None, tier: str = "center", num_cpus: int = 2,
               worker_ports: tuple[int, int] | None = None, netns: str | None = None,
               host: str = LOOPBACK) -> StandaloneHead:
    """Start a head named `name` (its nodes labelled cluster=name, site, tier) with token auth;
    its temp dir and token file under `root`. With `netns`, it runs inside that network namespace
    (`ip netns exec`), bound to `host`, an address of the namespace that this one reaches: a
    machine of its own as far as the network goes, which a test can cut off. Waits until its
    job-submission API answers."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    temp_dir = str(root / f"ray-{name}")
    token = secrets.token_hex(16)
    token_file = root / f"{name}.token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    gcs, dashboard, node_manager, object_manager, agent, agent_grpc, metrics, env_agent = free_ports(8, LOOPBACK)
    low, high = worker_ports or _worker_port_block()
    labels, resources = node_labels_and_resources(cluster=name, tier=tier, site=site or name, accelerators={},
                                                  emulated=False, name=f"{name}-head")
    ray = str(Path(sys.executable).with_name("ray"))
    command = (["ip", "netns", "exec", netns] if netns else []) + [
               ray, "start", "--head", f"--node-ip-address={host}", f"--port={gcs}", "--include-dashboard=true",
               f"--dashboard-host={host}", f"--dashboard-port={dashboard}", f"--node-manager-port={node_manager}",
               f"--object-manager-port={object_manager}", f"--min-worker-port={low}", f"--max-worker-port={high}",
               f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
               f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={env_agent}", f"--temp-dir={temp_dir}",
               "--disable-usage-stats", f"--num-cpus={num_cpus}", f"--resources={json.dumps(resources)}",
               "--labels=" + ",".join(f"{k}={v}" for k, v in labels.items())]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
           **serve_ingress_environment()}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S,
                          start_new_session=True)
    if done.returncode != 0:
        StandaloneHead(name, site or name, tier, temp_dir, token_file, "", "").stop()  # what it left running
        raise ConfigError(f"ray start ({name}): exit {done.returncode}: {(done.stderr or done.stdout).strip()[-800:]}")
    head = StandaloneHead(name, site or name, tier, temp_dir, token_file, f"http://{host}:{dashboard}",
                          f"{host}:{gcs}")
    deadline = time.time() + START_TIMEOUT_S
    while not _job_api_answers(head):
        if time.time() > deadline:
            head.stop()
            raise ConfigError(f"ray start ({name}): its job-submission API at {head.address} did not answer "
                              f"within {START_TIMEOUT_S:g} s")
        time.sleep(0.5)
    return head


def _job_api_answers(head: StandaloneHead) -> bool:
    """The head's dashboard lists its node (the same probe the federation makes)."""

    import httpx

    from cluster.federation import ClusterEntry, ProbeFailed, probe_nodes, run_blocking

    if not _answers(head.address.removeprefix("http://")):
        return False
    try:
        return bool(run_blocking(probe_nodes(ClusterEntry(head.name, head.address, head.site, head.tier),
                                            timeout_s=10.0, token=head.token_file.read_text())))
    except (ProbeFailed, httpx.HTTPError, OSError, TimeoutError):  # not answering (as Ray's dashboard) yet
        return False
