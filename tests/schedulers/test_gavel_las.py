"""`gavel-las`: the max-min allocation LP and the policy in a round."""

import numpy as np
import pytest

from schedulers.engine import schedule
from schedulers.policies import make_policy
from schedulers.policies.gavel_las import max_min_allocation
from tests.schedulers.helpers import gpu, job, node, state


def test_allocation_respects_capacity_and_each_jobs_time():
    rates = np.array([[10.0, 1.0], [2.0, 1.0], [5.0, 5.0]])
    devices = np.array([1.0, 2.0, 1.0])
    x = max_min_allocation(rates, devices, np.array([1.0, 2.0]))
    assert (x >= -1e-9).all() and (x.sum(axis=1) <= 1 + 1e-9).all()
    assert (devices @ x <= np.array([1.0, 2.0]) + 1e-9).all()


def test_allocation_is_max_min_fair_over_normalised_throughput():
    # two identical jobs, one device: each gets half of it, not one all of it
    x = max_min_allocation(np.array([[4.0], [4.0]]), np.array([1.0, 1.0]), np.array([1.0]))
    assert x[:, 0] == pytest.approx([0.5, 0.5], abs=1e-6)


def test_allocation_gives_the_fast_model_to_the_job_that_gains_most():
    # job 0 runs 10x faster on V100, job 1 the same on both: job 0 gets the V100
    x = max_min_allocation(np.array([[10.0, 1.0], [1.0, 1.0]]), np.array([1.0, 1.0]), np.array([1.0, 1.0]))
    assert x[0, 0] == pytest.approx(1.0, abs=1e-6) and x[1, 1] == pytest.approx(1.0, abs=1e-6)


def test_a_job_never_gets_time_on_a_model_where_it_cannot_run():
    x = max_min_allocation(np.array([[0.0, 3.0], [2.0, 2.0]]), np.array([1.0, 1.0]), np.array([4.0, 4.0]))
    assert x[0, 0] == 0.0


def test_gavel_las_places_each_job_where_its_allocation_is():
    # "only" runs on the V100 alone and reaches its equal share with half of it; "both" gets half of
    # each model. The job allocated to fewer models picks first, so each runs where it may
    cluster = state(node("v", gpu("V100", 1)), node("k", gpu("K80", 1)))
    both = job("both", throughputs=(("V100", 12.0), ("K80", 10.0)), submitted_at=1)
    only = job("only", throughputs=(("V100", 100.0),), submitted_at=2)
    policy = make_policy("gavel-las")
    decisions = schedule([both, only], cluster, 10.0, policy)
    assert {p.job_id: p.model for p in decisions.placements} == {"only": "V100", "both": "K80"}
    assert policy._allocation["only"] == pytest.approx({"K80": 0.0, "V100": 0.5}, abs=1e-6)


def test_max_min_prefers_time_sharing_over_a_starved_job():
    # both jobs run faster on the V100; giving it to one alone would leave the other at 0.91 of its
    # equal share, so the allocation shares both models between them (each gets exactly 1.0)
    x = max_min_allocation(np.array([[10.0, 12.0], [10.0, 100.0]]), np.array([1.0, 1.0]), np.array([1.0, 1.0]))
    mix = np.array([0.5, 0.5])
    rates = np.array([[10.0, 12.0], [10.0, 100.0]])
    normalised = (x * rates).sum(axis=1) / (rates @ mix)
    assert normalised.min() == pytest.approx(1.0, abs=1e-6)
