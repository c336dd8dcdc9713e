"""`hetero`'s per-round device plan: wait for a fast device rather than lose more than has been
waited on a slow one, swap so the fast device goes to the job that gains most, keep SRPT order."""

from schedulers.engine import RunningJob, SchedulerConfig, schedule
from schedulers.policies import make_policy
from schedulers.policies.hetero import accepted_models
from schedulers.types import Placement, WorkerAssignment
from tests.schedulers.helpers import gpu, job, node, state

NOW = 1_000_000.0
RATES = (("V100", 100.0), ("K80", 10.0))  # 10x faster on the V100


def on(request, node_id, model, started=NOW - 60):
    placement = Placement(request.id, "c1", "gpu", model, (WorkerAssignment(node_id, "gpu", model, 1, 1),), 0, 0, 100)
    return RunningJob(request, placement, started, NOW + 100)


def test_accepted_models_are_those_that_lose_no_more_than_the_wait():
    rates = {"V100": 100.0, "P100": 50.0, "K80": 10.0}
    assert accepted_models(rates, remaining_s=1000.0, waited_s=0.0) == ["V100"]
    assert accepted_models(rates, remaining_s=1000.0, waited_s=1000.0) == ["V100", "P100"]  # loses 1000 s there
    assert accepted_models(rates, remaining_s=1000.0, waited_s=9000.0) == ["V100", "P100", "K80"]


def test_a_fresh_job_waits_for_the_fast_gpu_rather_than_start_10x_slower():
    cluster = state(node("v", gpu("V100", 1, in_use=1)), node("k", gpu("K80", 1)))
    busy = on(job("busy", throughputs=RATES, work=1e6, submitted_at=NOW - 60), "v", "V100")  # ran 60 s: kept
    fresh = job("fresh", throughputs=RATES, work=1e5, submitted_at=NOW)
    decisions = schedule([fresh], cluster, NOW, make_policy("hetero"), running=[busy],
                         config=SchedulerConfig(min_run_before_preempt_s=360))
    assert not decisions.placements and [w.job_id for w in decisions.waiting] == ["fresh"]
    # having waited longer than the 9,000 s it would lose on the K80 (1e5 / 10 - 1e5 / 100), it takes it
    waited = job("fresh", throughputs=RATES, work=1e5, submitted_at=NOW - 9001)
    decisions = schedule([waited], cluster, NOW, make_policy("hetero"), running=[busy],
                         config=SchedulerConfig(min_run_before_preempt_s=360))
    assert [(p.job_id, p.model) for p in decisions.placements] == [("fresh", "K80")]


def test_a_held_back_job_swaps_with_one_that_accepts_the_slow_gpu():
    # "flat" is shorter (first in SRPT order) and plans the V100; "steep" finds only the K80, 10x
    # slower, and would wait; "flat" has waited long enough to accept the K80, so they swap
    cluster = state(node("v", gpu("V100", 1)), node("k", gpu("K80", 1)))
    flat = job("flat", throughputs=(("V100", 12.0), ("K80", 10.0)), work=1e4, submitted_at=NOW - 5000)
    steep = job("steep", throughputs=RATES, work=1e6, submitted_at=NOW)
    decisions = schedule([flat, steep], cluster, NOW, make_policy("hetero"))
    assert {p.job_id: p.model for p in decisions.placements} == {"flat": "K80", "steep": "V100"}
    # a fresh "flat" accepts only its fastest GPU: it keeps the V100 and "steep" waits
    fresh_flat = job("flat", throughputs=(("V100", 12.0), ("K80", 10.0)), work=1e4, submitted_at=NOW)
    decisions = schedule([fresh_flat, steep], cluster, NOW, make_policy("hetero"))
    assert {p.job_id: p.model for p in decisions.placements} == {"flat": "V100"}
    assert [w.job_id for w in decisions.waiting] == ["steep"]


def test_a_shorter_job_takes_the_place_of_a_longer_running_one():
    cluster = state(node("v", gpu("V100", 1, in_use=1)))
    long_running = on(job("long", throughputs=RATES, work=1e9, submitted_at=NOW - 7200), "v", "V100",
                      started=NOW - 7200)
    short = job("short", throughputs=RATES, work=1e4, submitted_at=NOW)
    no_ageing = SchedulerConfig(min_run_before_preempt_s=360, ageing_interval_s=1e9)
    decisions = schedule([short], cluster, NOW, make_policy("hetero"), running=[long_running], config=no_ageing)
    assert decisions.preemptions == ("long",) and [p.job_id for p in decisions.placements] == ["short"]
