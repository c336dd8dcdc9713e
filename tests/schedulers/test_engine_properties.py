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


def asked_job_by_job(name: str):
    """Policy `name` with its compiled rule withdrawn: the engine asks its `choose` for every job."""
    policy = make_policy(name)
    policy.compiled_choice = lambda jobs: None
    return policy


@settings(max_examples=80, deadline=None)
@given(clusters(), queues(), st.sampled_from(["hetero", "las", "fair", "packing"]), st.floats(0, 5e4))
def test_compiled_choices_equal_choices_made_one_job_at_a_time(state, queue, name, now):
    """The engine decides runs of jobs in compiled code (`schedulers.engine.compiled`) by the rule the
    policy's `choose` follows; asking `choose` job by job must give the very same decisions: pools,
    nodes, predicted seconds, notes and waiting reasons."""
    assert schedule(queue, state, now, make_policy(name)) == schedule(queue, state, now, asked_job_by_job(name))


@st.composite
def close_rate_queues(draw):
    """Jobs whose measured rates on the GPU models differ by under 30%, so that several pools are
    often near `hetero`'s target speed and the choice among them matters."""
    return [
        JobRequest(id=f"j{i}", workers=draw(st.integers(1, 3)), allowed_kinds=("gpu",), work=draw(st.floats(1e3, 1e6)),
                   latency=draw(st.sampled_from(["realtime", "interactive", "batch", "batch"])),
                   submitted_at=float(i), data_site=draw(st.sampled_from([None, "s1"])),
                   throughputs=tuple((m, draw(st.floats(1.0, 1.3))) for m in MODELS))
        for i in range(draw(st.integers(1, 30)))
    ]


@settings(max_examples=60, deadline=None)
@given(clusters(), close_rate_queues(), st.sampled_from(["hetero", "las", "fair"]))
def test_compiled_choices_equal_one_by_one_when_rates_are_close(state, queue, name):
    assert schedule(queue, state, 0.0, make_policy(name)) == schedule(queue, state, 0.0, asked_job_by_job(name))
