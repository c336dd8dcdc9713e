"""The CLI as a user runs it, in subprocesses: `capacity --emulate` (inspection of an emulated
cluster, no server), and `demo` (a local server started on first use, stopped at the end)."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import DEMO_EMULATION

pytestmark = pytest.mark.ray


def suanli(*args, timeout=180):
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "SUANLI_CONFIG": ""}
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli.main", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_capacity_emulate_json_lists_the_demo_nodes(tmp_path):
    page = tmp_path / "capacity.html"
    out = suanli("capacity", "--emulate", str(DEMO_EMULATION), "--json", "--html", str(page))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert len(report["nodes"]) == 4
    kinds = sorted((d["kind"], d["model"], d["count"]) for n in report["nodes"] for d in n["devices"] if d["kind"] != "cpu")
    assert kinds == [("gpu", "A100", 2), ("gpu", "A100", 2), ("npu", "Ascend910B", 4)]
    assert [n["site"] for n in report["nodes"] if n["tier"] == "edge"] == ["branch-sh"]
    assert all(n["emulated"] for n in report["nodes"])
    assert report["totals"]["gpu"]["count"] == 4 and report["totals"]["npu"]["count"] == 4
    assert "<svg" in page.read_text()


def raylets():
    import psutil

    return {p.pid for p in psutil.process_iter(["name", "status"])
            if "raylet" in (p.info["name"] or "") and p.info["status"] != psutil.STATUS_ZOMBIE}


def test_demo_runs_through_a_local_server_and_trains_with_two_workers():
    before = raylets()
    out = suanli("demo", timeout=900)
    assert out.returncode == 0, out.stderr
    assert "suanli server at http://127.0.0.1:" in out.stdout and "(active)" in out.stdout
    assert "workers on their placed nodes: True" in out.stdout
    assert raylets() == before  # the demo's server stopped its Ray head on the way out
    assert "Devices on this machine" in out.stdout and "Capacity" in out.stdout
    assert "real" in out.stdout and "EMULATED" not in out.stdout
    assert "SUCCEEDED: test AUC" in out.stdout and "AUC >= 0.75" in out.stdout
    assert "signed artifact" in out.stdout and "verified" in out.stdout and "-> " in out.stdout
    assert "student-int8-dynamic" in out.stdout and "serving fraud:v1 at http://127.0.0.1:" in out.stdout
    decisions = re.findall(r"transaction demo-\d \(label \d\): fraud probability [0-9.]+ -> (block|hold|warn|pass) "
                           r"\(fraud:v1, center replica", out.stdout)
    assert len(decisions) == 3  # three raw rows scored over HTTP through Ray Serve


def test_bad_emulation_file_fails_in_one_line_and_starts_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnodes:\n  - {tier: center, site: dc1, count: 1, tpu: {model: v4, count: 8}}\n")
    out = suanli("capacity", "--emulate", str(bad), timeout=60)
    assert out.returncode == 2
    assert "nodes[0]" in out.stderr and "tpu" in out.stderr and "allowed" in out.stderr
    assert "starting emulated cluster" not in out.stdout + out.stderr
