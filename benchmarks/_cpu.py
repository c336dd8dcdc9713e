"""Where the CPU goes while a load runs: CPU seconds per process role on this host (Serve's proxy
or HAProxy, each application's replicas, Serve's controller, Ray's own daemons, the load generator), read
from the kernel's per-process counters before and after, so a throughput ceiling can be explained
by who used the cores rather than guessed.

    with CpuAccount() as quiet:
        time.sleep(seconds)
    with CpuAccount() as loaded:
        run_the_load()
    loaded.summary(answered, quiet)["cpu_ms_per_request"]  # {"proxy": 5.3, "replica constant": 4.1, ...}
"""

from __future__ import annotations

import os
import threading
import time
from itertools import pairwise

import psutil

_RAY_DAEMONS = ("raylet", "gcs_server", "dashboard", "log_monitor", "monitor.py", "runtime_env_agent",
                "DashboardAgent", "RuntimeEnvAgent")


def role(process: psutil.Process) -> str | None:
    """The role of a process in a Serve benchmark, or None for one that is not ours to count."""
    try:
        command = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    if "ProxyActor" in command:
        return "proxy"
    if process.name() == "haproxy":
        return "haproxy"
    if "ServeReplica:" in command:
        app = command.split("ServeReplica:", 1)[1].split(":", 1)[0]
        return f"replica {app}"
    if "ServeController" in command:
        return "controller"
    if any(name in command for name in _RAY_DAEMONS):
        return "ray daemons"
    if "multiprocessing" in command and ("spawn_main" in command or "forkserver" in command):
        return "load generator"
    if process.pid == os.getpid():
        return "driver"
    if "ray::" in command or "default_worker.py" in command:
        return "other ray workers"
    return None


def _cpu_seconds() -> dict[int, tuple[str, float]]:
    counted = {}
    for process in psutil.process_iter():
        name = role(process)
        if name is None:
            continue
        try:
            times = process.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        counted[process.pid] = (name, times.user + times.system)
    return counted


class CpuAccount:
    """CPU seconds used per role between entering and leaving the block, and the host's idle time.
    Processes that start during the block (the load generator's) are caught by sampling every
    `sample_s` s in a background thread; a process's last sample before it exits is what counts."""

    def __init__(self, sample_s: float = 0.5):
        self.sample_s = sample_s
        self.first: dict[int, tuple[str, float]] = {}
        self.last: dict[int, tuple[str, float]] = {}

    def __enter__(self) -> CpuAccount:
        self.first = _cpu_seconds()
        self.last = dict(self.first)
        self.idle_before = psutil.cpu_times().idle
        self.idle_samples = [(time.time(), self.idle_before)]
        self.began = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.sample_s):
            self.last.update(_cpu_seconds())
            self.idle_samples.append((time.time(), psutil.cpu_times().idle))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.last.update(_cpu_seconds())
        self.wall_s = time.monotonic() - self.began
        self.idle_s = psutil.cpu_times().idle - self.idle_before

    def seconds_by_role(self) -> dict[str, float]:
        """CPU seconds each role used inside the block (a process born inside it counts from 0)."""
        used: dict[str, float] = {}
        for pid, (name, seconds) in self.last.items():
            used[name] = used.get(name, 0.0) + seconds - self.first.get(pid, (name, 0.0))[1]
        return {name: round(seconds, 2) for name, seconds in sorted(used.items(), key=lambda kv: -kv[1])}

    def cores_used(self) -> dict[str, float]:
        """Cores each role kept busy on average inside the block."""
        return {name: round(seconds / self.wall_s, 3) for name, seconds in self.seconds_by_role().items()}

    def idle_share(self) -> float:
        """The share of the host's cores idle inside the block (every process, ours or not)."""
        return round(self.idle_s / (self.wall_s * (psutil.cpu_count() or 1)), 3)

    def idle_by_second(self, began_wall: float) -> dict[int, float]:
        """The host's idle share in each whole second since `began_wall` (wall clock) that the
        samples cover, for lining up with a per-second load timeline."""
        cores = psutil.cpu_count() or 1
        idle: dict[int, list[float]] = {}
        for (t0, idle0), (t1, idle1) in pairwise(self.idle_samples):
            if t1 > t0:
                idle.setdefault(int((t0 + t1) / 2 - began_wall), []).append((idle1 - idle0) / ((t1 - t0) * cores))
        return {second: round(sum(shares) / len(shares), 2) for second, shares in idle.items()}

    def summary(self, answered: int, quiet: CpuAccount) -> dict:
        """Cores used per role, the host's idle share, and CPU milliseconds per answered request per
        role beyond what the same role used in `quiet` (the same processes with no load: Serve's
        proxy and controller poll and report even when nothing is asked of them)."""
        background, used = quiet.cores_used(), self.seconds_by_role()
        return {"wall_s": round(self.wall_s, 2), "cores": psutil.cpu_count() or 1, "idle_share": self.idle_share(),
                "cores_used": self.cores_used(), "cores_used_without_load": background,
                "cpu_ms_per_request": {
                    name: round(1000 * max(0.0, seconds - background.get(name, 0.0) * self.wall_s) / max(1, answered), 2)
                    for name, seconds in used.items()}}
