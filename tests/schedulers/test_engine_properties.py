"""Invariants of every policy over random clusters and queues."""

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from schedulers.engine import schedule
from schedulers.policies import POLICIES, make_policy
from schedulers.types import ClusterState, Device, JobRequest, Node

MODELS = ["A100", "H100", "V100"]


@st.composite
def clusters(draw):
    nodes = []
    for i in range(draw(st.integers(1, 12))):
        devices = [Device("cpu", "x", draw(st.integers(1, 16)))]
        if draw(st.booleans()):
            count = draw(st.integers(1, 8))
            devices.append(Device("gpu", draw(st.sampled_from(MODELS)), count, in_use=draw(st.integers(0, count))))
        nodes.append(Node(id=f"n{i}", cluster=draw(st.sampled_from(["c1", "c2"])),
                          tier=draw(st.sampled_from(["center", "edge"])), site=draw(st.sampled_from(["s1", "s2"])),
                          devices=tuple(devices)))
    return ClusterState(nodes=tuple(nodes))


@st.composite
def queues(draw):
    jobs = []
    for i in range(draw(st.integers(1, 25))):
        jobs.append(JobRequest(
            id=f"j{i}", tenant=draw(st.sampled_from(["a", "b", "c"])), priority=draw(st.integers(0, 3)),
            workers=draw(st.integers(1, 6)), devices_per_worker=draw(st.integers(1, 4)),
            allowed_kinds=draw(st.sampled_from([("gpu",), ("cpu",), ("cpu", "gpu")])),
            device_model=draw(st.sampled_from([None, None, "A100"])), gang=draw(st.booleans()),
            work=draw(st.floats(1, 1e9)), data_bytes=draw(st.integers(0, 10**10)),
            data_site=draw(st.sampled_from([None, "s1", "s2"])),
            latency=draw(st.sampled_from(["realtime", "interactive", "batch"])), submitted_at=float(i),
        ))
    return jobs


@settings(max_examples=150, deadline=None)
@given(clusters(), queues(), st.sampled_from(sorted(POLICIES)))
def test_placements_respect_capacity_kinds_and_gangs(cluster, queue, policy):
    decisions = schedule(queue, cluster, 100.0, make_policy(policy))
    by_id = {j.id: j for j in queue}
    nodes = {n.id: n for n in cluster.nodes}
    taken = defaultdict(float)
    for p in decisions.placements:
        job = by_id[p.job_id]
        assert p.kind in job.allowed_kinds
        assert job.device_model in (None, p.model)
        workers = sum(a.workers for a in p.assignments)
        assert workers == job.workers if job.gang else 1 <= workers <= job.workers
        assert len({(nodes[a.node_id].cluster, nodes[a.node_id].site, nodes[a.node_id].tier) for a in p.assignments}) == 1
        for a in p.assignments:
            assert nodes[a.node_id].device(p.kind, p.model) is not None
            taken[(a.node_id, p.kind, p.model)] += a.workers * a.devices_per_worker
    for (node_id, kind, model), amount in taken.items():
        assert amount <= nodes[node_id].free(kind, model) + 1e-9
    decided = [p.job_id for p in decisions.placements] + [w.job_id for w in decisions.waiting] + \
        [r.job_id for r in decisions.rejected]
    assert sorted(decided) == sorted(by_id)
    for w in decisions.waiting:
        assert w.reason.startswith("waiting: ")
