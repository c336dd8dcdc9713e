"""Bad input to the engine and the simulator: a clear message, and the other jobs' results unchanged."""

import pytest

from schedulers.engine import schedule
from schedulers.policies import make_policy
from schedulers.simulator.events import SimConfig, Simulation, parse_cluster_spec, simulate
from schedulers.simulator.traces import (
    TraceError,
    TraceJob,
    check_throughputs,
    iter_checked,
    iter_gavel_trace,
)
from schedulers.types import ClusterState
from tests.schedulers.helpers import gpu, job, node, state

MATRIX = {
    "k80": {("A", 1): 1.0, ("A", 2): 1.8},
    "v100": {("A", 1): 4.0, ("A", 2): 7.0, ("B", 1): 3.0, ("B", 4): 10.0},
}
CLUSTER = {"k80": 2, "v100": 2}


def trace():
    return [TraceJob(f"a{i}", "A", 1 + i % 2, 3600.0 * (1 + i), 600.0 * i) for i in range(6)]


def metrics(result):
    return {k: v for k, v in result.items() if k != "rejected"}


def test_throughput_missing_for_an_accelerator_is_refused_naming_the_job_type_and_accelerator():
    jobs = trace() + [TraceJob("b0", "B", 1, 3600.0, 0.0)]
    with pytest.raises(TraceError, match=r"'B' x1 \(no k80\).*--on-missing-throughput clamp"):
        check_throughputs(jobs, MATRIX, list(CLUSTER), clamp=False)


def test_clamped_job_runs_only_where_its_rate_is_known():
    jobs = trace() + [TraceJob("b0", "B", 1, 3600.0, 0.0)]
    kept, clamped = check_throughputs(jobs, MATRIX, list(CLUSTER), clamp=True)
    assert [j.id for j in clamped] == ["b0"] and len(kept) == 7
    result = simulate(kept, MATRIX, CLUSTER, make_policy("hetero"))
    assert result["jobs"] == 7 and result["rejected"] == []
    alone = simulate([kept[-1]], MATRIX, CLUSTER, make_policy("hetero"))  # b0 alone: on a V100 at 3 steps/s
    assert alone["avg_jct_s"] == pytest.approx(3600.0 / 3.0) and alone["utilisation"]["k80"] == 0.0


def test_a_job_type_missing_everywhere_is_refused_even_when_clamping():
    with pytest.raises(TraceError, match=r"job type 'C' \(job c0\) is missing from the matrix for every accelerator"):
        check_throughputs([TraceJob("c0", "C", 1, 1.0, 0.0)], MATRIX, list(CLUSTER), clamp=True)


def test_a_cluster_of_zero_nodes_is_refused_by_the_simulator_and_rejects_every_job_in_the_engine():
    with pytest.raises(ValueError, match=r"--cluster: 'k80:0' must be ACCELERATOR:COUNT with COUNT >= 1"):
        parse_cluster_spec("k80:0")
    with pytest.raises(ValueError, match=r"cluster: no accelerators"):
        Simulation(trace(), MATRIX, {}, make_policy("fifo"))
    decisions = schedule([job("a"), job("b")], ClusterState(nodes=()), 0.0, make_policy("hetero"))
    assert not decisions.placements and [r.job_id for r in decisions.rejected] == ["a", "b"]
    assert all("no gpu exists in any cluster" in r.reason for r in decisions.rejected)


@pytest.mark.parametrize("policy", ["fifo", "hetero", "gavel-las"])
def test_a_job_larger_than_the_cluster_is_rejected_and_the_others_run_as_without_it(policy):
    alone = simulate(trace(), MATRIX, CLUSTER, make_policy(policy))
    huge = TraceJob("huge", "B", 4, 3600.0, 0.0)  # 4 V100s wanted, the cluster has 2
    result = simulate([huge, *trace()], MATRIX, CLUSTER, make_policy(policy))
    assert result["rejected"] == [{"id": "huge", "reason": "rejected: needs 4 GPUs of one type; the largest type it "
                                   "can run on here has 2 (k80 2, v100 2)"}]
    assert metrics(result) == metrics(alone) and alone["rejected"] == []


def test_duplicate_job_ids_keep_the_first_entry_and_leave_the_others_unchanged():
    jobs = trace()
    result = simulate([*jobs, TraceJob("a1", "A", 2, 99.0, 5.0)], MATRIX, CLUSTER, make_policy("hetero"))
    assert result["rejected"] == [{"id": "a1 (again)", "reason": "duplicate job id 'a1': only its first entry runs"}]
    assert metrics(result) == metrics(simulate(jobs, MATRIX, CLUSTER, make_policy("hetero")))
    cluster = state(node("n", gpu("A100", 4)))
    decisions = schedule([job("x"), job("x", workers=4), job("y")], cluster, 0.0, make_policy("packing"))
    assert [p.job_id for p in decisions.placements] == ["x", "y"]
    assert [(r.job_id, r.reason) for r in decisions.rejected] == [
        ("x", "rejected: duplicate job id 'x' in the queue; only its first entry is scheduled")]


def test_progress_is_reported_as_jobs_finish():
    seen = []
    sim = Simulation(trace(), MATRIX, CLUSTER, make_policy("fifo"), SimConfig(), progress=lambda d, t: seen.append((d, t)),
                     progress_every=2)
    sim.run()
    assert seen == [(2, 6), (4, 6), (6, 6)]


def test_a_streamed_trace_gives_the_same_results_and_forgets_finished_jobs():
    jobs = trace()
    listed = simulate(jobs, MATRIX, CLUSTER, make_policy("hetero"))
    seen = []
    sim = Simulation(iter(jobs), MATRIX, CLUSTER, make_policy("hetero"), progress=lambda d, t: seen.append((d, t)),
                     progress_every=3)
    assert sim.run() == listed
    assert sim.jobs == {} and len(sim.stats) == 6 and seen == [(3, None), (6, None)]


def test_a_streamed_trace_out_of_arrival_order_is_refused_naming_the_job():
    late, early = TraceJob("late", "A", 1, 10.0, 500.0), TraceJob("early", "A", 1, 10.0, 100.0)
    with pytest.raises(TraceError, match=r"job early arrives at 100 s, before the job read before it \(500 s\)"):
        Simulation(iter([late, early]), MATRIX, CLUSTER, make_policy("fifo")).run()
    # a list is sorted by arrival instead, so the same jobs run
    assert simulate([late, early], MATRIX, CLUSTER, make_policy("fifo"))["jobs"] == 2


def test_a_streamed_trace_is_checked_job_by_job_for_missing_throughputs():
    lines = ["A\tcmd\t-n\t1\t100\t0\t1\n", "B\tcmd\t-n\t1\t100\t5\t1\n"]
    checked = iter_checked(iter_gavel_trace(iter(lines), "s.trace"), MATRIX, list(CLUSTER), clamp=False)
    assert next(checked).job_type == "A"
    with pytest.raises(TraceError, match=r"'B' x1 \(no k80\).*--on-missing-throughput clamp"):
        next(checked)
    clamped = list(iter_checked(iter_gavel_trace(iter(lines), "s.trace"), MATRIX, list(CLUSTER), clamp=True))
    assert [j.id for j in clamped] == ["job-0", "job-1"]
