"""The demo emulated cluster (4 nodes: 2x[2 A100], 1x[4 Ascend910B], 1 edge) and its snapshot."""

import time

import pytest
import ray

import cluster
from cluster.capacity import capacity_html, capacity_report

pytestmark = pytest.mark.ray


def test_snapshot_lists_the_demo_nodes(demo_cluster):
    state = cluster.snapshot()
    assert len(state.nodes) == 4
    assert all(n.emulated and n.cluster == "demo" for n in state.nodes)
    totals = state.totals()
    assert totals["gpu"]["count"] == 4 and totals["npu"]["count"] == 4 and totals["cpu"]["count"] == 4
    gpu_nodes = [n for n in state.nodes if n.device("gpu")]
    assert [n.device("gpu").model for n in gpu_nodes] == ["A100", "A100"]
    assert gpu_nodes[0].device("gpu").memory_bytes == 80 * 2**30
    [npu_node] = [n for n in state.nodes if n.device("npu")]
    assert (npu_node.device("npu").model, npu_node.device("npu").count) == ("Ascend910B", 4)
    [edge] = [n for n in state.nodes if n.tier == "edge"]
    assert edge.site == "branch-sh" and [d.kind for d in edge.devices] == ["cpu"]


def test_ray_binds_to_loopback(demo_cluster):
    assert demo_cluster.address.startswith("127.0.0.1:")
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}


def test_gpu_held_by_a_task_shows_in_use(demo_cluster):
    @ray.remote(num_gpus=1)
    class Holder:
        def node(self):
            return ray.get_runtime_context().get_node_id()

    holder = Holder.remote()
    node_id = ray.get(holder.node.remote())
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            node = {n.id: n for n in cluster.snapshot().nodes}[node_id]
            if node.device("gpu").in_use == 1:
                break
            time.sleep(0.2)
        assert node.device("gpu").in_use == 1 and node.device("gpu").free == 1
        assert cluster.snapshot().totals()["gpu"]["in_use"] == 1
    finally:
        ray.kill(holder)


@pytest.mark.parametrize(
    "options, expect",
    [
        ({"label_selector": {"tier": "edge", "site": "branch-sh"}}, lambda n: n.tier == "edge"),
        ({"resources": {"NPU": 1}}, lambda n: n.device("npu") is not None),
        ({"label_selector": {"accelerator-model": "A100"}}, lambda n: n.device("gpu").model == "A100"),
    ],
)
def test_labels_and_resources_target_work(demo_cluster, options, expect):
    @ray.remote
    def where():
        return ray.get_runtime_context().get_node_id()

    node_id = ray.get(where.options(**options).remote(), timeout=60)
    node = {n.id: n for n in cluster.snapshot().nodes}[node_id]
    assert expect(node)


def test_capacity_report_shape(demo_cluster):
    report = capacity_report(cluster.snapshot())
    assert report["emulated"] is True and len(report["nodes"]) == 4
    for node in report["nodes"]:
        assert {"id", "cluster", "tier", "site", "emulated", "devices"} <= node.keys()
        for d in node["devices"]:
            assert {"kind", "model", "count", "in_use", "memory_bytes"} <= d.keys()
    assert report["totals"]["gpu"]["count"] == 4
    page = capacity_html(report)
    assert "<svg" in page and "Emulated cluster" in page and "Ascend910B" in page


def test_emulated_node_counts_are_bounded():
    from cluster.emulation import parse_emulation
    from cluster.errors import ConfigError

    with pytest.raises(ConfigError, match="nodes: 80 emulated nodes in all; at most 64"):
        parse_emulation({"name": "x", "nodes": [{"tier": "center", "site": "a", "count": 40},
                                                {"tier": "edge", "site": "b", "count": 40}]})
    with pytest.raises(ConfigError, match="count"):
        parse_emulation({"name": "x", "nodes": [{"tier": "center", "site": "a", "count": 400}]})


def test_a_lost_node_takes_its_workers_and_a_replacement_can_start_at_idle_priority(demo_cluster):
    """remove_node loses the machine (its workers die with its daemons, nothing of it answers), and
    add_node_like(cpu_priority="idle") starts the node's daemons and workers under SCHED_IDLE."""
    import os

    import psutil

    @ray.remote(num_cpus=0, resources={"tier:edge": 0.001})
    class OnTheEdge:
        def pid(self):
            return os.getpid()

    before = OnTheEdge.remote()
    worker_pid = ray.get(before.pid.remote(), timeout=60)
    edge = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Labels"].get("tier") == "edge")
    demo_cluster.remove_node(edge)
    # SIGKILLed with the daemons: dead at once (a worker left running notices its raylet is gone
    # and exits by itself, 0.07-1 s later on this machine, answering meanwhile)
    removed = time.monotonic()
    while True:
        try:
            state = psutil.Process(worker_pid).status()
        except psutil.NoSuchProcess:
            break  # killed and reaped
        if state == psutil.STATUS_ZOMBIE or time.monotonic() > removed + 0.2:
            assert state == psutil.STATUS_ZOMBIE  # killed, not yet reaped
            break
        time.sleep(0.005)
    new_edge = demo_cluster.add_node_like(3, cpu_priority="idle")
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the caller's own thread keeps its policy
    [node] = [n for n in demo_cluster._cluster.list_all_nodes() if n.node_id == new_edge]
    daemons = [p.process.pid for ps in node.all_processes.values() for p in ps]
    assert daemons and all(os.sched_getscheduler(pid) == os.SCHED_IDLE for pid in daemons)
    after = OnTheEdge.remote()
    worker_pid = ray.get(after.pid.remote(), timeout=120)
    assert os.sched_getscheduler(worker_pid) == os.SCHED_IDLE
    assert len([n for n in ray.nodes() if n["Alive"]]) == 4
