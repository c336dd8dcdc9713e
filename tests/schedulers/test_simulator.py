"""The trace simulator on the real published traces in ../shared/data/traces."""

import json

import pytest

from schedulers.policies import make_policy
from schedulers.simulator.events import SimConfig, parse_cluster_spec, simulate
from schedulers.simulator.metrics import jain_index
from schedulers.simulator.traces import (
    TraceError,
    check_throughputs,
    parse_gavel_trace,
    parse_sia_trace,
    parse_throughputs,
    parse_tiresias_trace,
)
from tests.conftest import shared_path

CLUSTER = {"k80": 4, "p100": 4, "v100": 4}


@pytest.fixture(scope="module")
def matrix():
    return parse_throughputs(json.loads(shared_path("traces", "gavel", "simulation_throughputs.json").read_text()))


def gavel(*parts):
    path = shared_path("traces", "gavel", "traces", *parts)
    return parse_gavel_trace(path.read_text(), str(path))


def test_matrix_has_gavel_accelerators_and_job_types(matrix):
    assert {"k80", "p100", "v100"} <= set(matrix)
    assert matrix["v100"][("ResNet-18 (batch size 16)", 1)] > matrix["k80"][("ResNet-18 (batch size 16)", 1)]
    assert ("A3C", 4) not in matrix["v100"]


def test_msr_and_physical_cluster_traces_parse():
    msr = gavel("msr", "seed=0", "103959.trace")
    assert len(msr) == 986 and {j.scale_factor for j in msr} == {1, 2, 4}
    physical = gavel("physical_cluster", "small_test.trace")
    assert physical and all(j.total_steps > 0 for j in physical)


def test_tiresias_and_sia_traces_parse(matrix):
    tiresias = parse_tiresias_trace(shared_path("traces", "tiresias", "60_job.csv").read_text(), matrix)
    assert len(tiresias) == 60 and tiresias[1].scale_factor == 8
    v100 = matrix["v100"][(tiresias[0].job_type, 1)]
    assert tiresias[0].total_steps / v100 == pytest.approx(164)  # its recorded duration on a V100
    sia = parse_sia_trace(shared_path("traces", "sia", "workloads", "philly", "workload-1.csv").read_text(), matrix)
    assert len(sia) == 160


def test_bad_trace_line_names_file_and_line():
    with pytest.raises(TraceError, match=r"t\.trace:2: expected 7 \(MSR\) or 10"):
        parse_gavel_trace("A3C\tcmd\t-n\t1\t100\t0\t1\nbroken line\n", "t.trace")
    with pytest.raises(TraceError, match=r"t\.trace:1: total_steps 'many' is not a number"):
        parse_gavel_trace("A3C\tcmd\t-n\t1\tmany\t0\t1\n", "t.trace")
    with pytest.raises(TraceError, match=r"x\.csv:1: missing column\(s\) duration"):
        parse_tiresias_trace("job_id,num_gpu,submit_time,model_name\n", {}, "x.csv")


def test_missing_throughput_is_refused_by_default_and_clamped_on_request(matrix):
    jobs = gavel("msr", "seed=0", "11cb48.trace")
    with pytest.raises(TraceError, match=r"job\(s\) ask for .*--on-missing-throughput clamp"):
        check_throughputs(jobs, matrix, ["k80", "p100", "v100"], clamp=False)
    kept, clamped = check_throughputs(jobs, matrix, ["k80", "p100", "v100"], clamp=True)
    assert len(kept) == len(jobs) and clamped
    assert all(j.scale_factor <= 8 for j in kept)
    assert 0.03 < len(clamped) / len(jobs) < 0.3


def test_unknown_accelerator_and_missing_job_type_are_named(matrix):
    with pytest.raises(ValueError, match="unknown accelerator 'a100'; the throughput matrix has"):
        parse_cluster_spec("k80:4,a100:4", list(matrix))
    with pytest.raises(ValueError, match="'k80' must be ACCELERATOR:COUNT"):
        parse_cluster_spec("k80")
    weird = parse_gavel_trace("Quantum (batch size 1)\tcmd\t-n\t1\t100\t0\t1\n", "q.trace")
    with pytest.raises(TraceError, match="job type 'Quantum \\(batch size 1\\)'.*missing"):
        check_throughputs(weird, matrix, ["v100"], clamp=True)


def test_every_job_finishes_and_hetero_beats_fifo_under_load(matrix):
    jobs, _ = check_throughputs(gavel("msr", "seed=0", "103959.trace")[:200], matrix, list(CLUSTER), clamp=True)
    config = SimConfig(time_scale=16)
    results = {p: simulate(jobs, matrix, CLUSTER, make_policy(p), config) for p in ("fifo", "packing", "hetero")}
    for r in results.values():
        assert r["jobs"] == 200
        assert r["p50_jct_s"] <= r["p99_jct_s"]
        assert all(0 < u <= 1 for u in r["utilisation"].values())
    assert results["hetero"]["avg_jct_s"] < results["fifo"]["avg_jct_s"]
    assert results["hetero"]["preemptions"] > 0 and results["fifo"]["preemptions"] == 0


def test_a_job_alone_runs_exactly_its_trace_time(matrix):
    [job] = gavel("msr", "seed=0", "103959.trace")[:1]
    result = simulate([job], matrix, {"v100": 4}, make_policy("fifo"))
    assert result["avg_jct_s"] == pytest.approx(job.total_steps / matrix["v100"][(job.job_type, job.scale_factor)])


def test_jain_index():
    assert jain_index([1, 1, 1]) == 1.0
    assert jain_index([1, 0, 0, 0]) == pytest.approx(0.25)
