"""The engine's fast paths give the very decisions of the slow ones they stand in for.

Each fast path (the compiled runs of `schedulers.engine.compiled`, ordering by one lexsort, fair's
water-filling as one lexsort, the nodes with room kept per pool) is checked against the plain
computation it replaces, over random inputs.
"""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedulers.capacity_index import CapacityIndex
from schedulers.engine import RunningJob, compiled, schedule
from schedulers.policies import make_policy
from schedulers.policies.base import RoundContext, by_priority, effective_priority
from schedulers.types import ClusterState, Device, JobRequest, Node
from tests.schedulers.test_engine_properties import asked_job_by_job, clusters, queues


@settings(max_examples=40, deadline=None)
@given(clusters(), queues(), st.sampled_from(["packing", "hetero", "las", "fair"]))
def test_compiled_runs_decide_as_choose_does_with_running_jobs_to_preempt(state, queue, name):
    """A second round with the first round's jobs running, and the queue's priorities raised so
    that it preempts them (packing) or competes with them (time-sharing): the compiled runs stop
    at each job that may preempt, releases change the pools behind them, and a time-sharing round's
    admission (compiled too) weighs running jobs' held devices against waiting ones."""
    first = schedule(queue, state, 0.0, make_policy(name))
    by_id = {j.id: j for j in queue}
    running = [RunningJob(by_id[p.job_id], p, 0.0, 1e6) for p in first.placements]
    in_use: dict[tuple, float] = {}
    for p in first.placements:
        for a in p.assignments:
            in_use[(a.node_id, a.kind, a.model)] = in_use.get((a.node_id, a.kind, a.model), 0) + a.workers * a.devices_per_worker
    nodes = tuple(dataclasses.replace(n, devices=tuple(
        dataclasses.replace(d, in_use=d.in_use + in_use.get((n.id, d.kind, d.model), 0)) for d in n.devices))
        for n in state.nodes)
    busy = ClusterState(nodes=nodes)
    urgent = [dataclasses.replace(j, id=f"u{j.id}", priority=j.priority + 5) for j in queue]
    assert (schedule(urgent, busy, 10.0, make_policy(name), running)
            == schedule(urgent, busy, 10.0, asked_job_by_job(name), running))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(0, 1e4), st.sampled_from(["a", "b", "a\0", "c", "ab"]),
                          st.floats(0, 100)), min_size=0, max_size=40),
       st.floats(0, 2e4), st.sampled_from([0.0, 3600.0, 10.0]))
def test_by_priority_is_the_tuple_sort_it_replaces(rows, now, ageing):
    jobs = [JobRequest(id=f"{name}{i}" if i % 3 else name + "x" * i, priority=p, submitted_at=at,
                       attained_service_s=served)
            for i, (p, at, name, served) in enumerate(rows)]
    jobs = list({j.id: j for j in jobs}.values())  # ids are unique in a round
    ctx = RoundContext(now=now, tenant_usage={}, ageing_interval_s=ageing, fastest_run_s=lambda j: 0.0)
    attained = np.array([j.attained_service_s for j in jobs], dtype=float)
    expected = sorted(jobs, key=lambda j: (-effective_priority(j, ctx), j.attained_service_s, j.submitted_at, j.id))
    assert by_priority(jobs, ctx, attained) == expected
    assert by_priority(jobs, ctx) == sorted(jobs, key=lambda j: (-effective_priority(j, ctx), j.submitted_at, j.id))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(0, 16), min_size=1, max_size=12), st.integers(1, 8), st.integers(1, 4))
def test_compiled_best_fit_takes_the_nodes_the_index_takes(free, workers, per_worker):
    nodes = tuple(Node(id=f"n{i}", cluster="c", tier="center", site="s", devices=(Device("gpu", "A100", 16, in_use=16 - f),))
                  for i, f in enumerate(free))
    index = CapacityIndex(ClusterState(nodes=nodes))
    expected = index.select_nodes(0, workers, per_worker, "best_fit")
    pos, count = np.zeros(workers, dtype=np.int64), np.zeros(workers, dtype=np.int64)
    used = compiled._select_nodes(index.node_free, 0, len(free), workers, per_worker, compiled.BEST_FIT, pos, count, 0)
    assert (list(zip(pos[:used].tolist(), count[:used].tolist(), strict=True)) if used else None) == expected


def test_compiled_random_nodes_have_room_and_vary_with_the_seed():
    free = np.array([0.0, 3.0, 1.0, 0.0, 2.0, 4.0])
    seen = set()
    for seed in range(30):
        np.random.seed(seed)  # (the kernel's own generator is seeded inside it; this only varies the draws)
        pos, count = np.zeros(5, dtype=np.int64), np.zeros(5, dtype=np.int64)
        used = compiled._select_nodes(free.copy(), 0, 6, 5, 1, compiled.RANDOM_NODES, pos, count, 0)
        chosen = list(zip(pos[:used].tolist(), count[:used].tolist(), strict=True))
        assert sum(c for _, c in chosen) == 5 and all(0 < c <= free[p] for p, c in chosen)
        seen.add(tuple(chosen))
    assert len(seen) > 3


def test_random_node_choice_with_kept_nodes_matches_a_fresh_index():
    nodes = tuple(Node(id=f"n{i}", cluster="c", tier="center", site="s", devices=(Device("gpu", "A100", 4),))
                  for i in range(12))
    index = CapacityIndex(ClusterState(nodes=nodes))
    rng = np.random.default_rng(3)
    for step in range(40):
        fresh_state = ClusterState(nodes=tuple(
            dataclasses.replace(n, devices=(Device("gpu", "A100", 4, in_use=4 - index.pools[0].free[i]),))
            for i, n in enumerate(nodes)))
        fresh = CapacityIndex(fresh_state)
        workers = 1 + step % 3
        seed = int(rng.integers(1 << 30))
        kept = index.select_nodes(0, workers, 1, "random", np.random.default_rng(seed))
        assert kept == fresh.select_nodes(0, workers, 1, "random", np.random.default_rng(seed))
        if kept is None:
            break
        index.take(0, kept, 1)
    assert index.pools[0].free.sum() < 48  # the loop did take devices


def test_a_round_pauses_the_garbage_collector_and_restores_it_even_when_it_fails():
    import gc

    state = ClusterState(nodes=(Node(id="n", cluster="c", tier="center", site="s", devices=(Device("cpu", "x", 4),)),))
    job = JobRequest(id="j", allowed_kinds=("cpu",))
    assert gc.isenabled()
    schedule([job], state, 0.0, make_policy("fifo"))
    assert gc.isenabled()

    class Broken(type(make_policy("packing"))):
        def order(self, jobs, ctx):
            assert not gc.isenabled()  # paused inside the round
            raise RuntimeError("policy failed")

    with pytest.raises(RuntimeError, match="policy failed"):
        schedule([job], state, 0.0, Broken())
    assert gc.isenabled()
    gc.disable()
    try:
        schedule([job], state, 0.0, make_policy("fifo"))
        assert not gc.isenabled()  # a caller's own choice is kept
    finally:
        gc.enable()


def water_filling(jobs, ctx):
    """fair's order as a heap: the next job is the next of the tenant holding fewest devices so far."""
    import heapq

    per_tenant: dict[str, list] = {}
    for job in by_priority(jobs, ctx):
        per_tenant.setdefault(job.tenant, []).append(job)
    heap = [(0.0, tenant) for tenant in sorted(per_tenant)]
    heapq.heapify(heap)
    position = dict.fromkeys(per_tenant, 0)
    ordered = []
    while heap:
        share, tenant = heapq.heappop(heap)
        job = per_tenant[tenant][position[tenant]]
        ordered.append(job)
        position[tenant] += 1
        if position[tenant] < len(per_tenant[tenant]):
            heapq.heappush(heap, (share + job.devices_needed, tenant))
    return ordered


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "ab", "B", "c"]), st.integers(0, 3), st.integers(1, 4),
                          st.integers(1, 3), st.floats(0, 100)), max_size=40))
def test_fair_order_by_one_lexsort_is_the_water_filling_it_replaces(rows):
    jobs = [JobRequest(id=f"j{i}", tenant=tenant, priority=p, workers=w, devices_per_worker=d, submitted_at=at)
            for i, (tenant, p, w, d, at) in enumerate(rows)]
    ctx = RoundContext(now=50.0, tenant_usage={}, ageing_interval_s=10.0, fastest_run_s=lambda j: 0.0)
    assert make_policy("fair").order(jobs, ctx) == water_filling(jobs, ctx)


@pytest.mark.parametrize("name", ["packing", "hetero"])
def test_a_run_whose_node_entries_fill_goes_on_and_decides_as_choose_does(name):
    """Node entries are kept for the cluster's size, not the queue's: 1,300 jobs of 4 workers on 6 nodes
    (one node entry each) fill them (1,024) mid-run; the run records what it placed and goes on."""
    nodes = tuple(Node(id=f"n{i}", cluster="c", tier="center", site="s", devices=(Device("cpu", "x", 1000),))
                  for i in range(6))
    state = ClusterState(nodes=nodes)
    queue = [JobRequest(id=f"j{i}", allowed_kinds=("cpu",), workers=4, work=1e6 + i, submitted_at=float(i))
             for i in range(1300)]
    compiled_round = schedule(queue, state, 0.0, make_policy(name))
    assert len(compiled_round.placements) == 1300 and sum(p.devices for p in compiled_round.placements) == 5200
    assert compiled_round == schedule(queue, state, 0.0, asked_job_by_job(name))
