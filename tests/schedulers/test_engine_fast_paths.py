"""The engine's fast paths give the very decisions of the slow ones they stand in for.

Each fast path (packing's sorted index of pools, ordering by one lexsort, the nodes with room kept
per pool) is checked against the plain computation it replaces, over random inputs.
"""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedulers.capacity_index import CapacityIndex, TightestPools
from schedulers.engine import RunningJob, schedule
from schedulers.policies import make_policy
from schedulers.policies.base import RoundContext, by_priority, effective_priority
from schedulers.types import ClusterState, Device, JobRequest, Node
from tests.schedulers.test_engine_properties import clusters, queues


@settings(max_examples=80, deadline=None)
@given(clusters(), queues(), st.floats(0, 5e4))
def test_packing_through_its_sorted_index_decides_as_choose_does(state, queue, now):
    scored = make_policy("packing")
    scored.takes_tightest_pool = False  # every job through `choose` over the scored pools
    assert schedule(queue, state, now, make_policy("packing")) == schedule(queue, state, now, scored)


@settings(max_examples=40, deadline=None)
@given(clusters(), queues())
def test_packing_index_is_rebuilt_after_preemption_releases_devices(state, queue):
    """A second round with the first round's jobs running, and the queue's priorities raised so
    that it preempts them: releases change the index behind the sorted pools' back."""
    first = schedule(queue, state, 0.0, make_policy("packing"))
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
    scored = make_policy("packing")
    scored.takes_tightest_pool = False
    assert (schedule(urgent, busy, 10.0, make_policy("packing"), running)
            == schedule(urgent, busy, 10.0, scored, running))


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


@settings(max_examples=60, deadline=None)
@given(clusters(), st.lists(st.tuples(st.integers(0, 99), st.integers(1, 8)), max_size=30))
def test_tightest_pool_index_matches_a_scan_after_every_take(state, takes):
    index = CapacityIndex(state)
    tightest = TightestPools(index)
    job = JobRequest(id="probe", allowed_kinds=("cpu", "gpu"))
    cand = index.candidates(job)
    if not cand.size:
        return
    for which, need in takes:
        free = index.pool_free[cand]
        fits = np.flatnonzero(free >= need)
        expected = int(fits[(free[fits] - need).argmin()]) if fits.size else -1
        assert tightest.first_fit(cand, cand.tolist(), need) == expected
        pool = int(cand[which % cand.size])
        chosen = index.select_nodes(pool, 1, 1, "best_fit")
        if chosen is not None:
            before = index.free_list[pool]
            index.take(pool, chosen, 1)
            tightest.moved(pool, before, index.free_list[pool])


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
