"""A placement decided by the pure engine runs exactly there on the emulated demo cluster."""

import pytest
import ray
from ray.util.placement_group import remove_placement_group

import cluster
from runtime.placement_to_ray import bundle_options, create_placement_group, task_options, worker_bundles
from schedulers.engine import schedule
from schedulers.policies import make_policy
from schedulers.types import JobRequest, Placement, WorkerAssignment

pytestmark = pytest.mark.ray


def idle_snapshot(timeout_s=30.0):
    """A snapshot once Ray reports every emulated device free again (resource reports lag)."""
    import time

    deadline = time.time() + timeout_s
    while True:
        current = cluster.snapshot()
        if all(t["in_use"] == 0 for k, t in current.totals().items() if k != "cpu") or time.time() > deadline:
            return current
        time.sleep(0.2)


@ray.remote
def where():
    return ray.get_runtime_context().get_node_id(), [str(g) for g in ray.get_gpu_ids()]


def test_two_a100_on_one_node_runs_exactly_there(demo_cluster):
    state = idle_snapshot()
    job = JobRequest(id="two-a100", workers=1, devices_per_worker=2, allowed_kinds=("gpu",), device_model="A100")
    [placement] = schedule([job], state, 0.0, make_policy("hetero")).placements
    assert placement.model == "A100" and len(placement.node_ids) == 1
    group = create_placement_group(placement)
    try:
        node_id, gpus = ray.get(where.options(**bundle_options(group, 0, placement)).remote(), timeout=60)
        assert node_id == placement.node_ids[0] and len(gpus) == 2
    finally:
        remove_placement_group(group)


def test_gang_of_workers_across_nodes_lands_on_each_assigned_node(demo_cluster):
    state = idle_snapshot()
    job = JobRequest(id="four-a100", workers=4, devices_per_worker=1, allowed_kinds=("gpu",))
    [placement] = schedule([job], state, 0.0, make_policy("packing")).placements
    assert len(set(placement.node_ids)) == 2
    bundles, selectors = worker_bundles(placement)
    assert bundles == [{"GPU": 1.0}] * 4
    group = create_placement_group(placement)
    try:
        results = ray.get([where.options(**bundle_options(group, i, placement)).remote() for i in range(4)], timeout=60)
        assert [node for node, _ in results] == [s["ray.io/node-id"] for s in selectors]
    finally:
        remove_placement_group(group)


def test_realtime_job_runs_on_the_edge_node_of_its_site(demo_cluster):
    state = idle_snapshot()
    job = JobRequest(id="score", allowed_kinds=("cpu", "gpu"), latency="realtime", data_site="branch-sh",
                     work=1e3, devices_per_worker=1)
    [placement] = schedule([job], state, 0.0, make_policy("hetero")).placements
    [edge] = [n for n in state.nodes if n.tier == "edge"]
    assert placement.node_ids == (edge.id,)
    node_id, _ = ray.get(where.options(**task_options(placement)).remote(), timeout=60)
    assert node_id == edge.id


def test_unreservable_placement_times_out_naming_the_job(demo_cluster):
    [edge] = [n for n in cluster.snapshot().nodes if n.tier == "edge"]
    impossible = Placement("ghost", "demo", "gpu", "A100", (WorkerAssignment(edge.id, "gpu", "A100", 1, 1),), 0, 0, 1)
    with pytest.raises(TimeoutError, match="job ghost"):
        create_placement_group(impossible, timeout_s=2)


def test_task_options_refuses_multi_worker_placements():
    p = Placement("j", "c", "gpu", "A100", (WorkerAssignment("n", "gpu", "A100", 2, 1),), 0, 0, 1)
    with pytest.raises(ValueError, match="one worker"):
        task_options(p)
