"""`python -m kernels.gpucheck` on this CPU-only machine, with the control plane's packages blocked
(as on a bare GPU node): it runs the CPU paths and says plainly that CUDA is absent."""

import json
import subprocess
import sys
from pathlib import Path

from tests.test_import_rules import BLOCK_CONTROL_PLANE

REPO = Path(__file__).resolve().parents[2]


def test_gpucheck_runs_without_ray_fastapi_pydantic_and_reports_no_gpu_figure():
    code = BLOCK_CONTROL_PLANE + (
        "import runpy\n"
        "sys.argv = ['kernels.gpucheck', '--json', '--quick']\n"
        "runpy.run_module('kernels.gpucheck', run_name='__main__')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["cuda"]["available"] is False
    assert "CUDA is absent" in report["cuda"]["note"] and "no GPU figure" in report["cuda"]["note"]
    assert [d["kind"] for d in report["discovery"]] == ["cpu"]
    checks = report["checks"]
    assert {c["device"] for c in checks} == {"cpu"}
    assert {"matmul_fp32", "memory_bandwidth", "feature_kernel", "inference_mlp", "train_step_mlp", "scrub"} <= {
        c["name"] for c in checks}
    assert all(c["value"] > 0 and c["size"] for c in checks)
    features = [c for c in checks if c["name"] == "feature_kernel"]
    assert [c["size"].split(" ")[0] for c in features] == ["50,000", "200,000"]
    for c in features:  # the CUDA algorithm, run on CPU tensors, agrees with the CPU engine
        assert c["ok"] is True and c["checked_against"]["counts_and_maxima_identical"] is True
        assert c["checked_against"]["max_relative_sum_difference"] <= 1e-12
    mlp = [c for c in checks if c["name"] == "inference_mlp"]
    assert [c["size"] for c in mlp] == ["batch 1", "batch 256", "batch 65536"]
    assert all(c["ok"] and c["checked_against"]["max_abs_difference"] <= 1e-4 for c in mlp)
    matmul = next(c for c in checks if c["name"] == "matmul_fp32")
    assert matmul["sweep"]["sizes"][0] == 256 and matmul["size"] == f"{matmul['sweep']['best_size']}x" \
        f"{matmul['sweep']['best_size']}"
    assert report["all_checks_passed"] is True
