"""The shell command a remote cluster runs for an attempt. Ray's job supervisor runs an
entrypoint with `subprocess.Popen(entrypoint, shell=True)`; a registered cluster's `storage` path
is part of it, so a path with spaces, quotes or `;` must stay one argument and never run as code."""

import shlex
import subprocess
from pathlib import Path

import pytest

from cluster.federation import ClusterEntry
from runtime.backends.base import LaunchSpec
from runtime.backends.ray_remote import RemoteRayBackend, remote_entrypoint
from runtime.rundir import FENCED_FILE, LAUNCH_FILE
from schedulers.types import Placement

HOSTILE = "nodes see it here/it's \"quoted\"; touch INJECTED; $(touch INJECTED2) `touch INJECTED3`"


class ShellJobApi:
    """Takes the place of a cluster's Ray job-submission REST API: runs each submitted entrypoint the
    way Ray's job supervisor does (`/bin/sh -c`, shell=True) in `cwd`, and keeps what it ran."""

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.ran: list[subprocess.CompletedProcess] = []

    def __call__(self, method: str, path: str, timeout_s: float, body: dict | None = None) -> tuple[int, object]:
        assert (method, path) == ("POST", "/api/jobs/")
        self.ran.append(subprocess.run(body["entrypoint"], shell=True, cwd=self.cwd, capture_output=True, text=True,
                                       timeout=120))
        return 200, {"submission_id": body["submission_id"]}


def test_entrypoint_keeps_a_hostile_launch_path_one_argument():
    path = f"/mnt/{HOSTILE}/job-1/attempt-1/{LAUNCH_FILE}"
    words = shlex.split(remote_entrypoint(path))
    assert words[1:] == ["-m", "runtime.backends.remote_entry", path]


@pytest.mark.parametrize("storage_name", [HOSTILE, "plain"])
def test_a_remote_attempt_runs_from_a_storage_path_with_spaces_quotes_and_semicolons(tmp_path, storage_name):
    runs = tmp_path / "server-runs"
    runs.mkdir()
    storage = tmp_path / "cluster-mount" / storage_name  # the same files, as the cluster's nodes see them
    storage.parent.mkdir(parents=True, exist_ok=True)
    storage.symlink_to(runs)
    workdir = tmp_path / "job-cwd"
    workdir.mkdir()
    backend = RemoteRayBackend(ClusterEntry(name="sh-dc2", address="http://10.0.0.5:8265", site="sh",
                                            storage=str(storage)), runs)
    backend._call = client = ShellJobApi(workdir)
    run_dir = runs / "job-1" / "attempt-1"
    run_dir.mkdir(parents=True)
    (run_dir / FENCED_FILE).touch()  # remote_entry then ends before ray.init: the path is all it needs
    spec = LaunchSpec(job_id="job-1", attempt=1, run_dir=str(run_dir), loop_config={})
    backend.launch(Placement(job_id="job-1", cluster="sh-dc2", kind="cpu", model="cpu", assignments=(), queue_s=0,
                             transfer_s=0, compute_s=1), spec)

    [ran] = client.ran
    assert ran.returncode == 0, ran.stderr
    assert "attempt 1 of job-1 was fenced off before it started" in ran.stdout  # it read the launch file
    assert not list(workdir.iterdir()) and not list(tmp_path.glob("**/INJECTED*"))  # nothing else ran
    assert shlex.split(ran.args)[-1] == f"{storage}/job-1/attempt-1/{LAUNCH_FILE}"
