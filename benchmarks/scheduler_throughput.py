"""Placement decisions per second of the pure engine, against Ray's own task dispatch rate
measured in the same run.

    python benchmarks/scheduler_throughput.py --nodes 1000 --jobs 20000 --json

The synthetic cluster has N nodes of four device models (A100, H100 and V100 GPU nodes, and
CPU-only nodes) over 2 clusters, 2 tiers and 8 sites; the queue has M jobs of mixed shapes, enough
capacity that most are placed. Decisions/s = M / time of one `schedule()` round, on one core.
Ray's rate = trivial tasks submitted and completed per second on a local single-node Ray.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import numpy as np  # noqa: E402

from benchmarks._common import emit  # noqa: E402
from schedulers.engine import SchedulerConfig, schedule  # noqa: E402
from schedulers.policies import make_policy  # noqa: E402
from schedulers.types import ClusterState, Device, JobRequest, Node  # noqa: E402

MODELS = ["A100", "H100", "V100"]


def synthetic_cluster(n: int, seed: int = 0) -> ClusterState:
    rng = np.random.default_rng(seed)
    nodes = []
    for i in range(n):
        devices = [Device("cpu", "Xeon-8380", 64)]
        kind = i % 4
        if kind < 3:
            devices.append(Device("gpu", MODELS[kind], 8))
        nodes.append(Node(id=f"n{i}", cluster=f"c{i % 2}", tier="edge" if i % 10 == 0 else "center",
                          site=f"s{rng.integers(8)}", devices=tuple(devices)))
    return ClusterState(nodes=tuple(nodes))


def synthetic_queue(m: int, seed: int = 1) -> list[JobRequest]:
    rng = np.random.default_rng(seed)
    kinds = [("gpu",), ("cpu",), ("cpu", "gpu")]
    algorithms = ["mlp", "gbdt", "transformer", "linear"]
    return [
        JobRequest(
            id=f"j{i}", tenant=f"t{i % 5}", priority=int(rng.integers(3)), workers=int(rng.choice([1, 1, 2, 4])),
            devices_per_worker=1, allowed_kinds=kinds[i % 3], algorithm=algorithms[i % 4],
            work=float(rng.uniform(1e6, 1e9)), data_bytes=int(rng.integers(0, 10**10)), data_site=f"s{rng.integers(8)}",
            latency=["batch", "interactive", "realtime"][i % 3], submitted_at=float(i),
        )
        for i in range(m)
    ]


def decisions_per_s(nodes: int, jobs: int, policy: str, repeats: int) -> tuple[float, int]:
    state = synthetic_cluster(nodes)
    queue = synthetic_queue(jobs)
    config = SchedulerConfig(explain_waiting=True)
    best = float("inf")
    placed = 0
    for _ in range(repeats):
        start = time.perf_counter()
        decisions = schedule(queue, state, 0.0, make_policy(policy), config=config)
        best = min(best, time.perf_counter() - start)
        placed = len(decisions.placements)
    return jobs / best, placed


def ray_tasks_per_s(tasks: int) -> float:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        @ray.remote
        def noop():
            return None

        ray.get([noop.remote() for _ in range(200)])  # warm the worker pool
        start = time.perf_counter()
        ray.get([noop.remote() for _ in range(tasks)])
        return tasks / (time.perf_counter() - start)
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--policies", default="packing,hetero,fifo")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ray-tasks", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    per_policy = {}
    for policy in args.policies.split(","):
        rate, placed = decisions_per_s(args.nodes, args.jobs, policy, args.repeats)
        per_policy[policy] = {"decisions_per_s": round(rate), "placed": placed}
    ray_rate = ray_tasks_per_s(args.ray_tasks)
    first = args.policies.split(",")[0]
    result = {
        "nodes": args.nodes, "jobs": args.jobs, "policy": first,
        "decisions_per_s": per_policy[first]["decisions_per_s"], "ray_tasks_per_s": round(ray_rate),
        "decisions_per_ray_task": round(per_policy[first]["decisions_per_s"] / ray_rate, 2),
        "per_policy": per_policy,
    }
    rates = ", ".join(f"{p} {v['decisions_per_s']:,}/s" for p, v in per_policy.items())
    markdown = (f"| scheduler throughput | {args.nodes} nodes, {args.jobs} jobs | {rates} | "
                f"Ray {ray_rate:,.0f} tasks/s | {first}/Ray {result['decisions_per_ray_task']:.1f}x |")
    emit(f"scheduler_throughput_{args.nodes}", result, markdown, args.json)


if __name__ == "__main__":
    main()
