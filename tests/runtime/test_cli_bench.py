"""`suanli bench` on this machine (CPU), and its profile feeding the scheduler."""

import json

import pytest
from typer.testing import CliRunner

from runtime.cli.main import app
from runtime.profiles import load_throughput_model
from schedulers.engine import SchedulerConfig, schedule
from schedulers.policies import make_policy
from schedulers.types import ClusterState, Device, JobRequest, Node


def test_bench_quick_writes_report_page_and_profile(tmp_path):
    out = CliRunner().invoke(app, ["bench", "--quick", "--out", str(tmp_path / "r.json"), "--html",
                                   str(tmp_path / "r.html"), "--save-profile", str(tmp_path / "p.json")])
    assert out.exit_code == 0, out.output
    report = json.loads((tmp_path / "r.json").read_text())
    names = {r["name"] for r in report["results"]}
    assert {"matmul_fp32", "memory_bandwidth", "train_step_mlp", "inference_mlp", "feature_kernel"} <= names
    assert all(r["value"] > 0 for r in report["results"])
    assert "<svg" in (tmp_path / "r.html").read_text()
    import torch

    if not torch.cuda.is_available():
        assert "No CUDA GPU on this machine" in out.output
    model = load_throughput_model(tmp_path / "p.json")
    cpu_entry = next(e for e in json.loads((tmp_path / "p.json").read_text())["throughputs"] if e["algorithm"] == "mlp")
    assert model.rate("mlp", "cpu", cpu_entry["model"]) == cpu_entry["units_per_s"]
    features = next(e for e in json.loads((tmp_path / "p.json").read_text())["throughputs"]
                    if e["algorithm"] == "features" and e["kind"] == "cpu")
    measured = next(r["value"] for r in report["results"] if r["name"] == "feature_kernel" and r["kind"] == "cpu")
    assert features["units_per_s"] == pytest.approx(measured * 3 / report["cpu_threads"])  # events x 3 windows, per core
    assert model.rate("features", "cpu", features["model"]) == features["units_per_s"]
    gbdt = next(e for e in json.loads((tmp_path / "p.json").read_text())["throughputs"]
                if e["algorithm"] == "gbdt" and e["kind"] == "cpu")
    boosted = next(r["value"] for r in report["results"] if r["name"] == "train_step_gbdt" and r["kind"] == "cpu")
    assert gbdt["units_per_s"] == pytest.approx(boosted / 100 / report["cpu_threads"])  # row-epochs of 100 rounds
    assert model.rate("gbdt", "cpu", gbdt["model"]) == gbdt["units_per_s"]


def test_a_profile_saying_a_gpu_is_slow_moves_the_job_to_the_cpu(tmp_path):
    cluster = ClusterState(nodes=(
        Node("cpu-node", "c", "center", "dc1", (Device("cpu", "AMD-EPYC", 32),)),
        Node("gpu-node", "c", "center", "dc1", (Device("gpu", "T4", 1),)),
    ))
    job = JobRequest(id="j", allowed_kinds=("cpu", "gpu"), algorithm="mlp", work=1e9)
    [before] = schedule([job], cluster, 0.0, make_policy("hetero")).placements
    assert before.kind == "gpu"
    profile = tmp_path / "slow-t4.json"
    profile.write_text(json.dumps({"throughputs": [{"algorithm": "mlp", "kind": "gpu", "model": "T4", "units_per_s": 500}]}))
    config = SchedulerConfig(throughput=load_throughput_model(profile))
    [after] = schedule([job], cluster, 0.0, make_policy("hetero"), config=config).placements
    assert after.kind == "cpu"


def test_bad_profile_file_is_named(tmp_path):
    import pytest

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not JSON"):
        load_throughput_model(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_throughput_model(tmp_path / "missing.json")


def test_one_json_convention_and_the_old_spelling_still_works(tmp_path):
    import subprocess
    import sys

    from runtime.cli.main import normalize_argv

    printed = CliRunner().invoke(app, ["bench", "--quick", "--json"])
    assert printed.exit_code == 0 and json.loads(printed.stdout)["results"]  # JSON alone on stdout
    assert normalize_argv(["bench", "--json", "r.json"])[0] == ["bench", "--out", "r.json"]
    assert normalize_argv(["capacity", "--json"]) == (["capacity", "--json"], [])
    old = subprocess.run([sys.executable, "-m", "runtime.cli.main", "bench", "--quick", "--json",
                          str(tmp_path / "old.json")], capture_output=True, text=True, timeout=600)
    assert old.returncode == 0 and "deprecated; use '--out FILE'" in old.stderr
    assert json.loads((tmp_path / "old.json").read_text())["results"]


def test_bench_reports_sizes_sweeps_and_profile_regimes(tmp_path):
    out = CliRunner().invoke(app, ["bench", "--quick", "--out", str(tmp_path / "r.json"), "--save-profile",
                                   str(tmp_path / "p.json")])
    assert out.exit_code == 0, out.output
    report = json.loads((tmp_path / "r.json").read_text())
    rows = {r["name"]: r for r in report["results"] if r["kind"] == "cpu"}
    matmul = rows["matmul_fp32"]
    assert matmul["sweep"]["sizes"][:1] == [256] and matmul["size"] == f"{matmul['sweep']['best_size']}x" \
        f"{matmul['sweep']['best_size']}"
    assert rows["memory_bandwidth"]["size"] == f"{rows['memory_bandwidth']['sweep']['best_size']} MiB"
    mlp = rows["train_step_mlp"]
    assert mlp["regime"] == {"rows_per_batch": mlp["sweep"]["best_size"]} and mlp["size"].startswith(
        f"batch {mlp['sweep']['best_size']},")
    assert rows["feature_kernel"]["regime"] == {"events_per_job": 50_000}
    profile = json.loads((tmp_path / "p.json").read_text())
    assert profile["version"] == 2
    by_algorithm = {e["algorithm"]: e for e in profile["throughputs"]}
    assert by_algorithm["mlp"]["regime"] == mlp["regime"]
    assert by_algorithm["features"]["regime"] == {"events_per_job": 50_000}
    assert by_algorithm["gbdt"]["regime"] == {"rows_per_job": 20_000}
    assert "size" in out.output  # the table's column


def _h200_profile(tmp_path, entries):
    path = tmp_path / "h200.json"
    path.write_text(json.dumps({"version": 2, "throughputs": entries}))
    return path


def test_a_small_batch_gpu_rate_is_never_applied_to_a_large_job(tmp_path):
    from runtime.profiles import select_entries

    cluster = ClusterState(nodes=(
        Node("cpu-node", "c", "center", "dc1", (Device("cpu", "Xeon-8480", 16),)),
        Node("gpu-node", "c", "center", "dc1", (Device("gpu", "H200", 1),)),
    ))
    job = JobRequest(id="j", allowed_kinds=("cpu", "gpu"), algorithm="mlp", work=1e9)
    small = {"algorithm": "mlp", "kind": "gpu", "model": "H200", "units_per_s": 1_000.0, "regime": {"rows_per_batch": 4096}}
    large = {"algorithm": "mlp", "kind": "gpu", "model": "H200", "units_per_s": 34e6, "regime": {"rows_per_batch": 65536}}
    # the launch-bound rate alone: not applied (it would send the job to the CPU); the default stays
    model = load_throughput_model(_h200_profile(tmp_path, [small]))
    assert model.rate("mlp", "gpu", "H200") == load_throughput_model().rate("mlp", "gpu", "H200")
    [placed] = schedule([job], cluster, 0.0, make_policy("hetero"), config=SchedulerConfig(throughput=model)).placements
    assert placed.kind == "gpu"
    applied, skipped = select_entries({"throughputs": [small]})
    assert applied == [] and "rows_per_batch 4,096 is below 16,384" in skipped[0]["reason"]
    # both regimes: the large one wins, in either order
    for entries in ([small, large], [large, small]):
        assert load_throughput_model(_h200_profile(tmp_path, entries)).rate("mlp", "gpu", "H200") == 34e6
    # two large regimes: the larger one wins; a CPU rate applies at any size
    larger = {**large, "units_per_s": 40e6, "regime": {"rows_per_batch": 262144}}
    cpu = {"algorithm": "mlp", "kind": "cpu", "model": "Xeon-8480", "units_per_s": 9e4, "regime": {"rows_per_batch": 256}}
    model = load_throughput_model(_h200_profile(tmp_path, [larger, large, cpu]))
    assert model.rate("mlp", "gpu", "H200") == 40e6 and model.rate("mlp", "cpu", "Xeon-8480") == 9e4


@pytest.mark.parametrize("regime, message", [
    ({"rows": 5}, r"profile.throughputs\[0\].regime: must be one of"),
    ({"rows_per_batch": 0}, r"profile.throughputs\[0\].regime.rows_per_batch: must be a positive integer"),
    ({"rows_per_batch": 1.5}, r"regime.rows_per_batch: must be a positive integer"),
    ("big", r"regime: must be one of"),
])
def test_a_malformed_regime_is_named(tmp_path, regime, message):
    entry = {"algorithm": "mlp", "kind": "gpu", "model": "H200", "units_per_s": 1.0, "regime": regime}
    with pytest.raises(ValueError, match=message):
        load_throughput_model(_h200_profile(tmp_path, [entry]))
