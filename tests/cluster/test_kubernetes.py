"""Kubernetes node discovery against the client's own model objects, deserialised from recorded
node and pod JSON by the client's ApiClient. The fake API stands in for the API server."""

from pathlib import Path

import pytest
from kubernetes.client import ApiClient

from cluster.kubernetes import kubernetes_snapshot

DATA = Path(__file__).parent / "data"


class RecordedCoreV1Api:
    """Answers list_node and list_pod_for_all_namespaces with recorded objects."""

    def __init__(self):
        client = ApiClient()
        self.nodes = client.deserialize((DATA / "k8s-nodes.json").read_text(), "V1NodeList",
                                        "application/json")
        self.pods = client.deserialize((DATA / "k8s-pods.json").read_text(), "V1PodList",
                                       "application/json")
        self.selectors = []

    def list_node(self):
        return self.nodes

    def list_pod_for_all_namespaces(self, field_selector=None):
        self.selectors.append(field_selector)
        return self.pods


@pytest.fixture
def snapshot():
    api = RecordedCoreV1Api()
    state = kubernetes_snapshot(api, cluster_name="prod-sh")
    return {n.id: n for n in state.nodes}, api


def test_gpu_node(snapshot):
    nodes, _ = snapshot
    gpu_node = nodes["gpu-a100-01"]
    gpu = gpu_node.device("gpu")
    assert (gpu.model, gpu.count, gpu.in_use, gpu.memory_bytes) == ("A100", 8, 2, 81920 * 2**20)
    cpu = gpu_node.device("cpu")
    assert cpu.count == pytest.approx(95.69) and cpu.in_use == 8
    assert (gpu_node.cluster, gpu_node.tier, gpu_node.site, gpu_node.healthy) == ("prod-sh", "center", "dc1", True)


def test_npu_node(snapshot):
    nodes, _ = snapshot
    npu = nodes["npu-910b-01"].device("npu")
    assert (npu.model, npu.count, npu.in_use) == ("Ascend910B", 8, 4)


def test_edge_node_from_openyurt_labels(snapshot):
    nodes, _ = snapshot
    edge = nodes["edge-branch-sh-01"]
    assert (edge.tier, edge.site) == ("edge", "branch-sh")
    assert [d.kind for d in edge.devices] == ["cpu"] and edge.device("cpu").count == pytest.approx(3.8)


def test_cordoned_node_is_unhealthy_and_pending_pods_hold_nothing(snapshot):
    nodes, api = snapshot
    cordoned = nodes["gpu-t4-cordoned"]
    assert not cordoned.healthy and cordoned.device("gpu").model == "T4" and cordoned.site == "dc2"
    assert api.selectors == ["status.phase!=Succeeded,status.phase!=Failed"]


def test_the_scheduler_uses_the_kubernetes_snapshot(snapshot):
    from schedulers.engine import schedule
    from schedulers.policies import make_policy
    from schedulers.types import ClusterState, JobRequest

    nodes, _ = snapshot
    state = ClusterState(nodes=tuple(nodes.values()))
    jobs = [JobRequest(id="gpu7", workers=7, allowed_kinds=("gpu",)),
            JobRequest(id="score", allowed_kinds=("cpu",), latency="realtime", data_site="branch-sh", work=10)]
    decisions = schedule(jobs, state, 0.0, make_policy("hetero"))
    where = {p.job_id: p.node_ids for p in decisions.placements}
    assert where["score"] == ("edge-branch-sh-01",)
    assert [w.job_id for w in decisions.waiting] == ["gpu7"]  # 7 A100s asked, 6 free (2 held), the T4 cordoned
    assert "needs 7 gpu in one cluster, 6 free" in decisions.waiting[0].reason
