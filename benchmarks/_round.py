"""The controller's production round at scale, without Ray: a real store (SQLite, or PostgreSQL in a
throwaway server started here) holding N QUEUED jobs, a real `JobController` holding a real lease,
and a full cluster of M nodes (so every job waits and each round considers the whole queue).
Between rounds one job is submitted, so no round is skipped as unchanged; meanwhile a second thread
submits jobs at a steady rate and times each `store.jobs.add` (what POST /jobs writes).

Used by benchmarks/control_plane.py (`--only round`)."""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


def _spec(i: int) -> dict:
    return {"epochs": 5, "priority": i % 3, "workers": 1 + i % 4, "latency": "batch", "preemptible": True,
            "max_failures": 1, "_device_kinds": ["cpu"], "_device_model": None, "_algorithm": "mlp",
            "_dataset": {"rows": 10_000 + i, "bytes": 1_000_000}, "config": {}}


class _FullCluster:
    """M nodes of 8 cores, every core in use by work suanli does not own: nothing can start."""

    name = "bench"

    def __init__(self, nodes: int):
        from schedulers.types import ClusterState, Device, Node

        self.state = ClusterState(nodes=tuple(Node(f"n{i}", "c1", "center", "dc1", (Device("cpu", "Xeon", 8, in_use=8),))
                                              for i in range(nodes)), taken_at=time.time())

    def snapshot(self):
        return self.state


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def measure_round(url: str | None, queued: int, nodes: int, rounds: int, submit_rate: float, log) -> dict:
    """p50/p99 of `JobController.step()` with `queued` jobs waiting, its stages, and the p50/p99 of
    submissions made meanwhile."""
    from runtime.controller.controller import JobController
    from runtime.controller.lease_keeper import LeaseKeeper
    from runtime.store import Store, open_store
    from schedulers.engine import SchedulerConfig

    sys.setswitchinterval(0.001)  # as the server does: API threads wait less behind a round
    scratch = Path(tempfile.mkdtemp(prefix="suanli-bench-round-"))
    store = Store(url) if url else open_store(scratch / "state")
    try:
        started = time.perf_counter()
        for i in range(queued):
            store.jobs.add(f"q{i}", f"tenant{i % 7}", f"user{i % 31}", _spec(i), None)
            if (i + 1) % 2000 == 0:
                log(f"{store.db.where.split(':')[0]}: {i + 1:,} of {queued:,} jobs queued")
        fill_s = time.perf_counter() - started
        cluster = _FullCluster(nodes)
        keeper = LeaseKeeper(store.leases, holder="bench", ttl_s=600, renew_s=200)
        keeper.renew()
        controller = JobController(store, cluster, keeper, scratch / "runs", policy="hetero",
                                   config=SchedulerConfig(min_run_before_preempt_s=120.0), snapshot=cluster.snapshot)
        controller.step()  # the first round notes every job's waiting reason once
        submit_ms: list[float] = []
        stop = threading.Event()

        def submitter():
            n = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                store.jobs.add(f"s{n}", "tenant0", "user0", _spec(n), None)
                submit_ms.append((time.perf_counter() - t0) * 1000)
                n += 1
                stop.wait(1.0 / submit_rate)

        thread = threading.Thread(target=submitter, daemon=True)
        thread.start()
        round_ms, stages = [], []
        for i in range(rounds):
            store.jobs.add(f"r{i}", "tenant1", "user1", _spec(i), None)  # something changed: a full round
            t0 = time.perf_counter()
            controller.step()
            round_ms.append((time.perf_counter() - t0) * 1000)
            stages.append(dict(controller.round_stages_s))
        stop.set()
        thread.join(timeout=10)
        stage_median = {k: round(statistics.median(s[k] for s in stages) * 1000, 2) for k in stages[0]}
        return {"store": "postgresql" if url else "sqlite", "queued": queued, "nodes": nodes, "rounds": rounds,
                "fill_s": round(fill_s, 1), "round_p50_ms": round(_percentile(round_ms, 0.5), 1),
                "round_p99_ms": round(_percentile(round_ms, 0.99), 1), "round_max_ms": round(max(round_ms), 1),
                "stage_median_ms": stage_median, "submissions": len(submit_ms),
                "submit_p50_ms": round(_percentile(submit_ms, 0.5), 2),
                "submit_p99_ms": round(_percentile(submit_ms, 0.99), 2)}
    finally:
        store.close()
        shutil.rmtree(scratch, ignore_errors=True)
