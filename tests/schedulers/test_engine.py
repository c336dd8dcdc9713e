"""Placement decisions of the pure engine, one behaviour per test."""

import pytest

from schedulers.engine import RunningJob, SchedulerConfig, check_submission, schedule
from schedulers.policies import POLICIES, make_policy
from schedulers.throughput import ThroughputModel
from schedulers.types import Placement, WorkerAssignment
from tests.schedulers.helpers import cpu, gpu, job, node, state

NOW = 1_000_000.0


def running(request, node_id, kind="gpu", model="A100", devices=None, started=NOW - 3600, ends=NOW + 100,
            borrowed=False):
    devices = devices or request.devices_per_worker
    placement = Placement(request.id, "c1", kind, model,
                          (WorkerAssignment(node_id, kind, model, request.workers, devices),), 0, 0, 100,
                          borrowed=borrowed)
    return RunningJob(request, placement, started, ends)


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_every_policy_places_a_simple_job(policy):
    decisions = schedule([job("a", workers=2)], state(node("n1", gpu())), NOW, make_policy(policy))
    [p] = decisions.placements
    assert p.kind == "gpu" and sum(a.workers for a in p.assignments) == 2
    assert p.predicted_completion_s == pytest.approx(p.queue_s + p.transfer_s + p.compute_s)


def test_small_data_runs_on_the_cpu_next_to_it_large_data_on_the_far_gpu():
    cluster = state(
        node("branch-cpu", cpu(16), tier="edge", site="branch-sh"),
        node("dc-gpu", cpu(8), gpu("A100", 4), site="dc1"),
        default_wan_bps=10e6,  # 80 Mbit/s from the branch to the data centre
    )
    small = job("small", allowed_kinds=("cpu", "gpu"), devices_per_worker=1, algorithm="gbdt", work=1e5,
                data_bytes=500 * 2**20, data_site="branch-sh")
    [p] = schedule([small], cluster, NOW, make_policy("hetero")).placements
    assert p.node_ids == ("branch-cpu",) and p.transfer_s == pytest.approx(500 * 2**20 / 2.5e9)
    big = job("big", allowed_kinds=("cpu", "gpu"), algorithm="gbdt", work=5e10, data_bytes=500 * 2**20,
              data_site="branch-sh")
    [p] = schedule([big], cluster, NOW, make_policy("hetero")).placements
    assert p.node_ids == ("dc-gpu",) and p.kind == "gpu"
    assert p.note.startswith(f"predicted {p.predicted_completion_s:.3g} s here vs ") and "at the edge at branch-sh" in p.note


@pytest.mark.parametrize("policy", ["fair", "hetero"])  # (fifo takes a pool at random, wherever the data is)
def test_edge_jobs_run_at_their_edge_cluster_until_it_is_full_then_overflow_to_the_centre(policy):
    cluster = state(
        node("sh-1", cpu(2), tier="edge", site="sh", cluster="sh-edge"),
        node("bj-1", cpu(8), site="bj", cluster="bj-dc1"),
        site_bandwidth_bps={("sh", "bj"): 50e6, ("bj", "sh"): 50e6},
    )
    jobs = [job(f"j{i}", allowed_kinds=("cpu",), algorithm="gbdt", work=1e6, data_bytes=200 * 2**20,
                data_site="sh", submitted_at=i) for i in range(4)]
    decisions = schedule(jobs, cluster, NOW, make_policy(policy))
    where = {p.job_id: p for p in decisions.placements}
    assert [where[f"j{i}"].cluster for i in range(4)] == ["sh-edge", "sh-edge", "bj-dc1", "bj-dc1"]
    assert where["j0"].note == "" and where["j0"].transfer_s < where["j2"].transfer_s
    assert where["j2"].note == "the edge at sh has no room (0 free where 1 cpu are needed): overflow"


def test_realtime_prefers_an_edge_node_at_its_site():
    cluster = state(
        node("dc", cpu(64), gpu("H100", 8), site="dc1"),
        node("edge-sh", cpu(4), tier="edge", site="branch-sh"),
        node("edge-bj", cpu(4), tier="edge", site="branch-bj"),
    )
    rt = job("score", allowed_kinds=("cpu", "gpu"), latency="realtime", work=1e3, data_site="branch-sh")
    [p] = schedule([rt], cluster, NOW, make_policy("hetero")).placements
    assert p.node_ids == ("edge-sh",)


def test_batch_gives_the_fast_gpu_to_the_job_that_gains_most():
    cluster = state(node("v", gpu("V100", 1)), node("k", gpu("K80", 1)))
    gains_little = job("little", throughputs=(("V100", 12.0), ("K80", 10.0)), submitted_at=1, work=1e6)
    gains_a_lot = job("lot", throughputs=(("V100", 100.0), ("K80", 10.0)), submitted_at=2)
    decisions = schedule([gains_little, gains_a_lot], cluster, NOW, make_policy("hetero"))
    where = {p.job_id: p.model for p in decisions.placements}
    assert where == {"lot": "V100", "little": "K80"}


def test_fifo_is_agnostic_and_repeatable_with_its_seed():
    cluster = state(*[node(f"n{i}", gpu("A100" if i % 2 else "K80", 1)) for i in range(8)])
    jobs = [job(f"j{i}", submitted_at=i) for i in range(4)]
    first = schedule(jobs, cluster, NOW, make_policy("fifo", seed=7)).placements
    again = schedule(jobs, cluster, NOW, make_policy("fifo", seed=7)).placements
    assert [p.node_ids for p in first] == [p.node_ids for p in again]
    other_seeds = {tuple(p.node_ids for p in schedule(jobs, cluster, NOW, make_policy("fifo", seed=s)).placements)
                   for s in range(10)}
    assert len(other_seeds) > 1


def test_packing_fills_the_tightest_node():
    cluster = state(node("roomy", gpu(count=8)), node("tight", gpu(count=4, in_use=2)))
    [p] = schedule([job("a", workers=2)], cluster, NOW, make_policy("packing")).placements
    assert p.node_ids == ("tight",)


def test_gang_waits_for_all_workers_and_elastic_job_starts_smaller():
    cluster = state(node("n1", gpu(count=4, in_use=1)))
    gang = schedule([job("g", workers=4)], cluster, NOW, make_policy("packing"))
    assert not gang.placements and gang.waiting[0].job_id == "g"
    elastic = schedule([job("e", workers=4, gang=False)], cluster, NOW, make_policy("packing"))
    assert sum(a.workers for a in elastic.placements[0].assignments) == 3


def test_gang_spans_nodes_of_one_pool_but_never_two_models():
    cluster = state(node("a1", gpu("A100", 2)), node("a2", gpu("A100", 2)), node("h1", gpu("H100", 2)))
    [p] = schedule([job("j", workers=4)], cluster, NOW, make_policy("packing")).placements
    assert sorted(p.node_ids) == ["a1", "a2"] and {a.model for a in p.assignments} == {"A100"}
    decisions = schedule([job("k", workers=5)], cluster, NOW, make_policy("packing"))
    assert [r.job_id for r in decisions.rejected] == ["k"]


def test_device_model_pin():
    cluster = state(node("a", gpu("A100", 4)), node("h", gpu("H100", 4)))
    [p] = schedule([job("j", device_model="A100")], cluster, NOW, make_policy("hetero")).placements
    assert p.model == "A100"


def test_never_fitting_job_is_rejected_with_reason():
    cluster = state(node("n1", gpu(count=4)), node("n2", gpu(count=4)))
    rejection = check_submission(job("huge", workers=16), cluster)
    assert rejection and "needs 16 gpu" in rejection.reason and "largest has 8" in rejection.reason
    per_node = check_submission(job("wide", devices_per_worker=8), cluster)
    assert "largest node has 4" in per_node.reason
    assert check_submission(job("ok", workers=8), cluster) is None
    npu = check_submission(job("npu", allowed_kinds=("npu",)), cluster)
    assert "no npu exists" in npu.reason


def test_waiting_reason_reads_like_a_sentence():
    cluster = state(node("n1", gpu("A100", 4, in_use=2)))
    holder = running(job("holder", workers=2), "n1", ends=1_700_000_700.0)
    decisions = schedule([job("j", workers=4, device_model="A100")], cluster, 1_700_000_000.0,
                         make_policy("packing"), running=[])
    assert decisions.waiting[0].reason.startswith("waiting: needs 4 gpu(A100) in one cluster, 2 free; next estimated")
    decisions = schedule([job("j", workers=4, device_model="A100", priority=0)], cluster, 1_700_000_000.0,
                         make_policy("packing"), running=[holder])
    reason = decisions.waiting[0].reason
    assert reason == "waiting: needs 4 gpu(A100) in one cluster, 2 free; next estimated start 22:25 UTC (in 12 min)"
    assert decisions.waiting[0].next_estimated_start == 1_700_000_700.0


def test_higher_priority_preempts_lower_and_spares_non_preemptible():
    low = job("low", workers=4, priority=0)
    cluster = state(node("n1", gpu(count=4, in_use=4)))
    urgent = job("urgent", workers=4, priority=5)
    decisions = schedule([urgent], cluster, NOW, make_policy("packing"), running=[running(low, "n1")])
    assert decisions.preemptions == ("low",) and decisions.placements[0].job_id == "urgent"
    pinned = job("pinned", workers=4, priority=0, preemptible=False)
    decisions = schedule([urgent], cluster, NOW, make_policy("packing"), running=[running(pinned, "n1")])
    assert decisions.preemptions == () and decisions.waiting[0].job_id == "urgent"
    same = job("same", workers=4, priority=5)
    decisions = schedule([same], cluster, NOW, make_policy("packing"), running=[running(job("peer", workers=4, priority=5), "n1")])
    assert decisions.preemptions == ()


def test_quota_borrowing_and_reclaim():
    config = SchedulerConfig(quotas={"risk": {"gpu": 2}, "cards": {"gpu": 2}})
    cluster = state(node("n1", gpu(count=4)))
    borrower = job("borrow", tenant="risk", workers=4)
    [p] = schedule([borrower], cluster, NOW, make_policy("packing"), config=config).placements
    assert p.borrowed
    strict = job("strict", tenant="risk", workers=4, preemptible=False)
    decisions = schedule([strict], cluster, NOW, make_policy("packing"), config=config)
    assert "at its quota" in decisions.waiting[0].reason and "cannot borrow" in decisions.waiting[0].reason
    # the owner of the other half reclaims it from the borrower
    busy = state(node("n1", gpu(count=4, in_use=4)))
    owner = job("owner", tenant="cards", workers=2)
    decisions = schedule([owner], busy, NOW, make_policy("packing"), config=config,
                         running=[running(borrower, "n1", borrowed=True)])
    assert decisions.preemptions == ("borrow",) and decisions.placements[0].job_id == "owner"


def test_backfill_never_delays_the_head_reservation():
    cluster = state(node("n1", gpu(count=4, in_use=2)))
    holder = running(job("holder", workers=2), "n1", ends=NOW + 100)
    head = job("head", workers=4, submitted_at=1)
    long = job("long", workers=2, submitted_at=2, work=1e12)
    short = job("short", workers=2, submitted_at=3, work=1.0)  # done long before the head can start
    decisions = schedule([head, long, short], cluster, NOW, make_policy("packing"), running=[holder])
    assert [p.job_id for p in decisions.placements] == ["short"]
    waiting = {w.job_id: w.reason for w in decisions.waiting}
    assert "reservation of job head" in waiting["long"]


def test_ageing_lifts_an_old_job_above_newer_higher_priority():
    cluster = state(node("n1", gpu(count=1)))
    old = job("old", priority=0, submitted_at=NOW - 10 * 3600)
    new = job("new", priority=3, submitted_at=NOW)
    config = SchedulerConfig(ageing_interval_s=3600)
    [p] = schedule([new, old], cluster, NOW, make_policy("packing"), config=config).placements
    assert p.job_id == "old"
    [p] = schedule([new, old], cluster, NOW, make_policy("packing"), config=SchedulerConfig(ageing_interval_s=0)).placements
    assert p.job_id == "new"


def test_time_sharing_preempts_a_long_job_for_a_short_one():
    cluster = state(node("n1", gpu(count=1, in_use=1)))
    long_running = running(job("long", work=1e12, attained_service_s=7200), "n1", started=NOW - 7200)
    short = job("short", work=1e5)
    decisions = schedule([short], cluster, NOW, make_policy("hetero"), running=[long_running])
    assert decisions.preemptions == ("long",) and decisions.placements[0].job_id == "short"
    protected = SchedulerConfig(min_run_before_preempt_s=10_000)
    decisions = schedule([short], cluster, NOW, make_policy("hetero"), running=[long_running], config=protected)
    assert decisions.preemptions == () and not decisions.placements


def test_fair_shares_between_tenants():
    cluster = state(node("n1", gpu(count=4)))
    jobs = [job(f"a{i}", tenant="a", submitted_at=i) for i in range(4)] + [job("b0", tenant="b", submitted_at=9)]
    placed = {p.job_id for p in schedule(jobs, cluster, NOW, make_policy("fair")).placements}
    assert "b0" in placed and len(placed) == 4
    fifo_placed = {p.job_id for p in schedule(jobs, cluster, NOW, make_policy("fifo")).placements}
    assert "b0" not in fifo_placed


def test_measured_profile_changes_placement():
    cluster = state(node("c", cpu(32)), node("g", gpu("T4", 1)))
    work = job("w", allowed_kinds=("cpu", "gpu"), algorithm="mlp", work=1e9, devices_per_worker=1)
    [p] = schedule([work], cluster, NOW, make_policy("hetero")).placements
    assert p.kind == "gpu"
    slow_t4 = ThroughputModel().with_profile(
        {"throughputs": [{"algorithm": "mlp", "kind": "gpu", "model": "T4", "units_per_s": 1_000.0}]})
    [p] = schedule([work], cluster, NOW, make_policy("hetero"), config=SchedulerConfig(throughput=slow_t4)).placements
    assert p.kind == "cpu"


def test_unhealthy_nodes_get_nothing():
    from dataclasses import replace

    sick = replace(node("sick", gpu(count=8)), healthy=False)
    decisions = schedule([job("j")], state(sick, node("ok", gpu(count=1))), NOW, make_policy("packing"))
    assert decisions.placements[0].node_ids == ("ok",)


def test_bad_profile_names_the_entry():
    with pytest.raises(ValueError, match=r"profile.throughputs\[0\].kind"):
        ThroughputModel().with_profile({"throughputs": [{"algorithm": "mlp", "kind": "tpu", "model": "v4",
                                                         "units_per_s": 1}]})
    with pytest.raises(ValueError, match="units_per_s"):
        ThroughputModel().with_profile({"throughputs": [{"algorithm": "mlp", "kind": "gpu", "model": "x",
                                                         "units_per_s": -1}]})


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="policy: 'lifo' is not one of fifo, packing"):
        make_policy("lifo")


@pytest.mark.parametrize("policy", ["fifo", "hetero"])
def test_caps_per_tenant_and_user_hold_jobs_with_the_cap_named(policy):
    from schedulers.engine import RunningJob, SchedulerConfig, schedule
    from schedulers.policies import make_policy
    from schedulers.types import Placement, WorkerAssignment

    cluster = state(node("n1", gpu("A100", 8, in_use=2)))
    running_job = job("r1", tenant="risk", user="alice", workers=2)
    placed = Placement("r1", "c1", "gpu", "A100", (WorkerAssignment("n1", "gpu", "A100", 2, 1),), 0.0, 0.0, 10.0)
    running = [RunningJob(running_job, placed, 0.0, 10.0)]
    config = SchedulerConfig(limits={"tenant:risk": {"gpu": 4}, "user:alice": {"jobs": 1}},
                             min_run_before_preempt_s=1e9)
    queue = [job("a2", tenant="risk", user="alice", workers=1), job("b1", tenant="risk", user="bob", workers=3),
             job("b2", tenant="risk", user="bob", workers=2), job("c1", tenant="cards", user="carol", workers=4)]
    decisions = schedule(queue, cluster, 1.0, make_policy(policy), running, config)
    placed_ids = {p.job_id for p in decisions.placements}
    reasons = {w.job_id: w.reason for w in decisions.waiting}
    assert "c1" in placed_ids  # another tenant: no cap
    assert "quota user:alice allows 1 concurrent jobs, 1 running" in reasons["a2"]
    assert "b2" in placed_ids and "quota tenant:risk allows 4 gpu" in reasons["b1"]
    assert not any(p.job_id == "b1" for p in decisions.placements)
    # a capped job starts when a job under its cap ends (r1 at 10.0), not when devices are free (now)
    starts = {w.job_id: w.next_estimated_start for w in decisions.waiting}
    assert starts["a2"] == 10.0 and "next estimated start in 9 s" in reasons["a2"]
    alone = schedule([job("z1", tenant="zero", workers=1)], cluster, 1.0, make_policy(policy), running,
                     SchedulerConfig(limits={"tenant:zero": {"jobs": 0}}))
    assert alone.waiting[0].next_estimated_start is None and "raise it with 'suanli quota set'" in alone.waiting[0].reason
