"""Logs and errors that tools check: ruff's BLE (blind except) and T20 (print) rules are on under
the project's configuration, and every line the controller, the store's job events and the
federation log names its job, attempt and cluster (real store, real controller steps, real
federation rounds; the lines are read as `suanli server` writes them)."""

import io
import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cluster.federation import ClusterEntry, Federation
from runtime.controller.controller import JobController
from runtime.controller.lease_keeper import LeaseKeeper
from runtime.log_context import IdsFilter, current_ids, ids_handler, log_ids, log_job_event
from runtime.specs import JobState
from runtime.store import open_store
from schedulers.engine import SchedulerConfig
from tests.runtime.test_controller import ScriptedCluster, submit

REPO = Path(__file__).resolve().parents[2]
BLIND = "def f():\n    try:\n        return 1\n    except Exception:\n        pass\n    print('done')\n"


def ruff(path_in_repo: str, source: str) -> subprocess.CompletedProcess:
    """`ruff check` of `source` as if it were the file `path_in_repo`, under the project's config."""
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                           "--stdin-filename", path_in_repo, "-"], input=source, cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_ruff_refuses_a_silent_blind_except_and_print_in_the_control_plane():
    out = ruff("runtime/controller/example.py", BLIND)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "BLE001" in out.stdout and "T201" in out.stdout


def test_the_cli_may_print_but_never_swallow_everything():
    out = ruff("runtime/cli/example.py", BLIND)
    assert out.returncode == 1 and "BLE001" in out.stdout and "T201" not in out.stdout, out.stdout


def test_a_blind_except_that_says_why_and_logs_passes():
    source = ("import logging\n\nlog = logging.getLogger(__name__)\n\n\ndef f(step):\n    try:\n        step()\n"
              "    except Exception as exc:  # noqa: BLE001 - one bad step must not stop the loop\n"
              "        log.warning('step failed: %s', exc)\n")
    out = ruff("runtime/controller/example.py", source)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_whole_project_is_clean_under_ble_and_t20():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "BLE,T20", "."], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:]


def test_ids_come_from_the_enclosing_blocks_and_a_records_own_extra_wins():
    stream = io.StringIO()
    log = logging.getLogger("tests.log_ids")
    log.addHandler(ids_handler(stream))
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        log.info("outside")
        with log_ids(job="j1", cluster="c1"):
            with log_ids(attempt=2):
                assert current_ids() == {"job": "j1", "cluster": "c1", "attempt": 2}
                log.info("inside")
            log.info("named", extra={"cluster": "other"})
        with pytest.raises(ValueError, match="tenant"):
            with log_ids(tenant="t"):
                pass
    finally:
        log.handlers.clear()
    lines = stream.getvalue().splitlines()
    assert "job=- attempt=- cluster=-: outside" in lines[0]
    assert "job=j1 attempt=2 cluster=c1: inside" in lines[1]
    assert "job=j1 attempt=- cluster=other: named" in lines[2]
    assert current_ids() == {}


@pytest.fixture
def server_log():
    """The root logger as `suanli server` configures it (INFO, the ids' handler), into a buffer."""
    stream = io.StringIO()
    handler = ids_handler(stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def lines_of(stream: io.StringIO, *loggers: str) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if any(f" {name}" in line for name in loggers)]


def test_every_line_of_the_controllers_handling_of_a_job_names_it(tmp_path, server_log):
    store = open_store(tmp_path / "state")
    try:
        store.db.listeners.append(log_job_event)
        cluster = ScriptedCluster()
        keeper = LeaseKeeper(store.leases, holder="a", ttl_s=8.0, renew_s=2.0)
        keeper.renew()
        ctl = JobController(store, cluster, keeper, tmp_path / "runs", policy="hetero",
                            config=SchedulerConfig(min_run_before_preempt_s=0.0), snapshot=cluster.snapshot)
        job = submit(store, "flaky", workers=1, max_failures=1)
        ctl.step()  # STARTING on c1, attempt 1
        ctl.step()  # RUNNING
        cluster.errors[f"{job}.1"] = "RuntimeError: worker died"
        cluster.phase[f"{job}.1"] = "failed"
        ctl.step()  # attempt 1 failed: retried (STOPPING, QUEUED), then launched again as attempt 2
        assert store.jobs.get(job).attempts == 2 and store.jobs.get(job).state in (JobState.STARTING, JobState.RUNNING)
    finally:
        store.close()
    controller_lines = lines_of(server_log, "runtime.controller.controller", "runtime.jobs")
    assert controller_lines, server_log.getvalue()
    failed = [line for line in controller_lines if "attempt failed: RuntimeError: worker died" in line]
    assert len(failed) == 1 and " WARNING " in failed[0]
    assert f"job={job} attempt=1 cluster=c1:" in failed[0]
    moves = {line.split(": ", 1)[1].split(" by ")[0]: line for line in controller_lines if " runtime.jobs " in line}
    assert f"job={job} attempt=- cluster=-: submitted by alice" in moves["submitted"]  # the API's, no attempt yet
    for kind in ("STARTING", "RUNNING", "STOPPING", "QUEUED"):
        assert f"job={job} attempt=" in moves[kind] and "cluster=c1" in moves[kind], moves[kind]
    starts = [line for line in controller_lines if ": STARTING by controller" in line]
    assert [f"job={job} attempt={n} cluster=c1:" in line for n, line in enumerate(starts, 1)] == [True, True]
    assert all(f"job={job} " in line for line in controller_lines), controller_lines


def test_a_launch_the_cluster_refuses_is_a_warning_with_the_jobs_ids(tmp_path, server_log):
    class Refusing(ScriptedCluster):
        def launch(self, placement, spec):
            raise ConnectionError("the cluster refused the actor")

    store = open_store(tmp_path / "state")
    try:
        keeper = LeaseKeeper(store.leases, holder="a", ttl_s=8.0, renew_s=2.0)
        keeper.renew()
        ctl = JobController(store, Refusing(), keeper, tmp_path / "runs", snapshot=Refusing().snapshot)
        job = submit(store, "refused", workers=1)
        ctl.step()
        assert store.jobs.get(job).state == JobState.QUEUED
    finally:
        store.close()
    [line] = [line for line in lines_of(server_log, "runtime.controller") if "launch failed" in line]
    assert " WARNING " in line and f"job={job} attempt=1 cluster=c1:" in line and "ConnectionError" in line


def test_the_federation_logs_a_clusters_outage_once_with_its_name_and_never_its_token(server_log):
    token = "s3cr3t-ray-token-0123456789"

    async def refused(entry, timeout_s, given):
        assert given == token
        raise httpx.ConnectError("connection refused")

    federation = Federation(lambda: [ClusterEntry("edge-7", "http://127.0.0.1:9", "bj")], lost_after=2,
                            healthy_after=1, probe=refused, token_for=lambda name: token)
    for _ in range(4):
        federation.probe_all()
    assert federation.health("edge-7") == "lost"
    lines = lines_of(server_log, "cluster.federation")
    assert len(lines) == 2, lines  # the first missed probe and the loss: not one line per probe
    assert all("job=- attempt=- cluster=edge-7:" in line and " WARNING " in line for line in lines)
    assert "missed a probe" in lines[0] and "cluster is lost after 2 missed probes" in lines[1]
    assert token not in server_log.getvalue()


def test_the_filter_never_drops_a_record_and_fills_every_field():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    with log_ids(job="j9"):
        assert IdsFilter().filter(record) is True
    assert (record.job, record.attempt, record.cluster) == ("j9", "-", "-")
