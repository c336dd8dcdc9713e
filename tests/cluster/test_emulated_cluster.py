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
