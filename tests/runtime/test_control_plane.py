"""The control plane end to end, as a user meets it: two `suanli server` processes on one state
directory over an emulated 3-node Ray cluster (one core per node), the SDK and CLI as clients.

- one server is active, the other standby; a job survives a SIGKILL of the active one and ends
  SUCCEEDED once, its attempt adopted (not relaunched);
- every worker runs on the node its placement names;
- client processes start no Ray of their own;
- a worker node's loss sends the job back to the scheduler for a new placement (one budget);
- a failing user function's error names the real cause; cancelling one releases its devices;
- bad input gets a 4xx naming the field, from the API, the SDK and the CLI.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import ray
from typer.testing import CliRunner

from tests.conftest import REPO, shared_path

pytestmark = pytest.mark.ray
LEASE_TTL, LEASE_RENEW = 4.0, 1.0


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def three_nodes():
    from cluster.emulation import EmulatedCluster, parse_emulation

    spec = parse_emulation({"name": "cp", "nodes": [{"tier": "center", "site": "dc1", "count": 3, "cpu": 1,
                                                     "memory_gb": 3}]})
    emulated = EmulatedCluster(spec)
    yield emulated
    emulated.shutdown()


class Servers:
    """`suanli server` processes on one state directory, started and stopped by pid."""

    def __init__(self, address, state_dir, data_dirs):
        self.address, self.state_dir, self.data_dirs = address, state_dir, data_dirs
        self.procs = {}

    def start(self):
        from runtime.server.local import start_server

        port = free_port()
        args = ["--ray-address", self.address, "--lease-ttl", str(LEASE_TTL), "--lease-renew", str(LEASE_RENEW)]
        for d in self.data_dirs:
            args += ["--data-dir", str(d)]
        proc, url = start_server(self.state_dir, *args, port=port, log_name=f"server-{port}.log")
        self.procs[url] = proc
        return url

    def token(self):
        return (self.state_dir / "admin.token").read_text().strip()

    def health(self, url):
        return httpx.get(url + "/healthz", timeout=5).json()

    def active(self):
        found = [u for u in self.procs if self.procs[u].poll() is None and self.health(u)["role"] == "active"]
        return found[0] if len(found) == 1 else None

    def kill(self, url):
        self.procs[url].send_signal(signal.SIGKILL)
        self.procs[url].wait()
        del self.procs[url]

    def stop_all(self):
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def servers(three_nodes, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    group = Servers(three_nodes.address, tmp_path_factory.mktemp("state"), [data, REPO.parent / "shared"])
    group.data = data
    group.start()
    group.start()
    wait_for(group.active, 30, "one active server")
    yield group
    group.stop_all()


@pytest.fixture
def client(servers):
    from runtime import Client

    with Client(address=servers.active(), state_dir=servers.state_dir) as c:
        yield c


def australian():
    return str(shared_path("credit", "australian_credit.csv"))


def test_one_active_one_standby_and_a_job_survives_sigkill_of_the_active(servers):
    from runtime import Client, TrainingJob

    health = {u: servers.health(u) for u in servers.procs}
    assert sorted(h["role"] for h in health.values()) == ["active", "standby"]
    for h in health.values():  # both report the one lease, held by the active server
        assert h["status"] == "ok" and h["lease"]["token"] >= 1 and h["controller"]["step_failures"] == 0
        assert h["lease"]["holder"] == next(x["holder"] for x in health.values() if x["role"] == "active")
    active = servers.active()
    standby = next(u for u in servers.procs if u != active)
    with Client(address=standby, state_dir=servers.state_dir) as client:  # every server serves the API; only the active one launches
        job = client.submit(TrainingJob(name="survivor", dataset=australian(), label="class", workers=2, device="cpu",
                                        epochs=6, hidden=[32], config={"seconds_per_epoch": 2}, max_failures=0))
        wait_for(lambda: job.status().value == "RUNNING" and (job.info()["progress"] or {}).get("epochs_done", 0) >= 1,
                 240, "the job to run its first epoch")
        killed_at = time.time()
        servers.kill(active)
        wait_for(lambda: servers.health(standby)["role"] == "active", LEASE_TTL + 3 * LEASE_RENEW + 5,
                 "the standby to take the lease")
        takeover_s = time.time() - killed_at
        assert takeover_s <= LEASE_TTL + LEASE_RENEW + 3
        assert job.wait(timeout=300).value == "SUCCEEDED", job.logs()
        info = job.info()
        events = job.events()
        result = job.result()
        logs = job.logs()
    assert info["attempts"] == 1 and info["failures"] == 0  # adopted, never relaunched
    assert [e["kind"] for e in events].count("SUCCEEDED") == 1
    assert [e["kind"] for e in events if e["kind"] == "STARTING"] == ["STARTING"]
    fences = [e["fence"] for e in events if e["fence"] is not None]
    assert fences == sorted(fences) and len(set(fences)) == 2  # written by the first holder, then the second
    assert "adopted attempt 1: running" in logs
    environment = result.provenance["modelling"]["environment"]
    assert environment["workers_on_placed_nodes"] is True
    placed = sorted(a["node_id"] for a in info["placement"]["assignments"] for _ in range(a["workers"]))
    ran = sorted(w["node_id"] for w in environment["nodes"])
    assert ran == placed and len(set(ran)) == 2  # two workers, two nodes, exactly where decided
    assert len(result.checkpoint_sha256) == 64
    data = result.provenance["training_data"]
    assert len(data["sha256"]) == 64 and data["volume"]["rows"] == 690 and "stratified" in data["sampling"]
    modelling = result.provenance["modelling"]
    assert modelling["iterations"]["epochs"] == 6 and modelling["code"]["sha256"]
    assert modelling["started_at"] < modelling["ended_at"] and modelling["environment"]["software"]["torch"]
    servers.start()  # a new standby for the tests that follow


CLIENT_SCRIPT = """
import os, sys, json
sys.path.insert(0, {repo!r})
from runtime import Client
with Client() as c:
    ids = [j.id for j in c.jobs()]
import ray
print(json.dumps({{"jobs": len(ids), "ray_initialized": ray.is_initialized()}}))
"""


def raylets():
    return {p.pid for p in psutil.process_iter(["name", "cmdline", "status"]) if p.info["status"] != psutil.STATUS_ZOMBIE
            and ("raylet" in (p.info["name"] or "") or any("raylet" in c for c in (p.info["cmdline"] or [])[:1]))}


def test_client_processes_start_no_ray(servers):
    before = raylets()
    env = {**os.environ, "SUANLI_SERVER": servers.active(), "SUANLI_TOKEN": servers.token()}
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT.format(repo=str(REPO))], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    assert all(o["ray_initialized"] is False and o["jobs"] >= 1 for o in outs)
    assert raylets() == before


def test_worker_node_loss_is_replaced_by_a_new_placement(client, three_nodes):
    from runtime import TrainingJob

    job = client.submit(TrainingJob(name="node-loss", dataset=australian(), label="class", workers=2, device="cpu",
                                    epochs=6, hidden=[32], config={"seconds_per_epoch": 3}, max_failures=2))
    wait_for(lambda: (job.info()["progress"] or {}).get("epochs_done", 0) >= 2, 240, "two epochs")
    head = ray.get_runtime_context().get_node_id()
    placed = [a["node_id"] for a in job.info()["placement"]["assignments"]]
    victim = next(n for n in placed if n != head)
    three_nodes.remove_node(victim)
    assert job.wait(timeout=400).value == "SUCCEEDED", job.logs()
    info = job.info()
    assert info["attempts"] == 2 and info["failures"] == 1
    assert victim not in [a["node_id"] for a in info["placement"]["assignments"]]
    kinds = [e["kind"] for e in job.events()]
    assert kinds[-5:] == ["STOPPING", "QUEUED", "STARTING", "RUNNING", "SUCCEEDED"]
    epochs = job.result().provenance["modelling"]["epochs"]
    assert epochs[-1]["epoch"] == 5 and max(e["resumed_from_epoch"] for e in epochs) >= 1


def test_failed_user_function_names_the_cause_and_cancel_releases_devices(client):
    from runtime import TrainingJob

    def broken(config):
        raise ValueError("feature store unreachable")

    def forever(config):
        import time as clock

        while True:
            clock.sleep(1)

    bad = client.submit(TrainingJob(name="broken", train_fn=broken, workers=1, device="cpu", max_failures=0))
    assert bad.wait(timeout=300).value == "FAILED"
    with pytest.raises(RuntimeError, match="FAILED: attempt 1 failed: ValueError: feature store unreachable"):
        bad.result()
    assert "Traceback" in bad.logs() and "feature store unreachable" in bad.events()[-1]["detail"]
    assert len(bad.info()["train_fn_sha256"]) == 64
    total = ray.cluster_resources()["CPU"]
    stuck = client.submit(TrainingJob(name="forever", train_fn=forever, workers=2, device="cpu"))
    wait_for(lambda: stuck.status().value == "RUNNING", 240, "the user function to run")
    assert stuck.cancel().value in ("RUNNING", "STOPPING")
    assert stuck.wait(timeout=120).value == "CANCELLED"
    wait_for(lambda: ray.available_resources().get("CPU", 0) >= total, 60, "its placement group to be released")
    kinds = [e["kind"] for e in stuck.events()]
    assert kinds[-3:] == ["cancel-requested", "STOPPING", "CANCELLED"]
    builtin = client.submit(TrainingJob(name="cancelled", dataset=australian(), label="class", workers=1, device="cpu",
                                        epochs=50, hidden=[16], config={"seconds_per_epoch": 2}))
    wait_for(lambda: (builtin.info()["progress"] or {}).get("epochs_done", 0) >= 1, 240, "the first epoch")
    builtin.cancel()
    assert builtin.wait(timeout=120).value == "CANCELLED"  # its loop saw the stop token at an epoch boundary
    assert builtin.info()["progress"]["epochs_done"] < 10
    wait_for(lambda: ray.available_resources().get("CPU", 0) >= total, 60, "its devices to be released")


def test_bad_input_is_refused_naming_the_field(client, servers, tmp_path):
    from runtime import TrainingJob
    from runtime.client import Client, JobNotFound, ServerUnavailable, SpecError

    url = client.url
    auth = {"Authorization": f"Bearer {servers.token()}"}
    with pytest.raises(JobNotFound, match="job: no job 'nope'"):
        client.job("nope")
    r = httpx.post(url + "/jobs", headers=auth, json={"spec": {"name": "x", "dataset": australian(), "label": "class", "workers": 0}})
    assert r.status_code == 422 and r.json()["detail"].startswith("spec.workers: ")
    r = httpx.post(url + "/jobs", headers=auth, json={"spec": {"name": "x", "dataset": "taiwan.csv", "label": "y"}})
    assert r.status_code == 422 and "dataset: 'taiwan.csv' is relative" in r.json()["detail"]
    outside = tmp_path / "outside.csv"
    outside.write_text("a,y\n1,0\n2,1\n")
    with pytest.raises(SpecError, match="outside what this server may read"):
        client.submit(TrainingJob(name="x", dataset=str(outside), label="y"))
    r = httpx.post(url + "/jobs", headers=auth, json={"spec": {"name": "x", "dataset": australian(), "label": "class",
                                                 "config": {"epochs": 3}}})
    assert r.status_code == 422 and r.json()["detail"].startswith("spec.config: 'epochs' is a field of the job itself")
    before = len(client.jobs())
    cwd = os.getcwd()
    os.chdir(servers.data)
    try:
        (servers.data / "taiwan.csv").write_text(Path(australian()).read_text())
        relative = client.submit(TrainingJob(name="relative", dataset="taiwan.csv", label="class", epochs=1,
                                             device="cpu", hidden=[8]))
    finally:
        os.chdir(cwd)
    assert relative.wait(timeout=300).value == "SUCCEEDED", relative.logs()
    assert len(client.jobs()) == before + 1  # the refused ones stored nothing
    with pytest.raises(ServerUnavailable, match="cannot reach http://127.0.0.1:1"):
        Client(address="http://127.0.0.1:1")


def test_cli_is_a_client_of_the_server(servers, tmp_path):
    from runtime.cli.main import app

    env = {"SUANLI_SERVER": servers.active(), "SUANLI_CONFIG": "", "SUANLI_TOKEN": servers.token()}
    runner = CliRunner()
    (tmp_path / "job.yaml").write_text(f"name: cli-job\ndataset: {australian()}\nlabel: class\nepochs: 1\n"
                                       "device: cpu\nhidden: [8]\n")
    out = runner.invoke(app, ["submit", str(tmp_path / "job.yaml"), "--wait", "--timeout", "300"], env=env)
    assert out.exit_code == 0, out.stdout + out.stderr
    job_id = out.stdout.split()[1].rstrip(":")
    listed = json.loads(runner.invoke(app, ["jobs", "--json"], env=env).stdout)
    assert {j["id"]: j["state"] for j in listed}[job_id] == "SUCCEEDED"
    assert "SUCCEEDED: test AUC" in runner.invoke(app, ["logs", job_id], env=env).stdout
    events = json.loads(runner.invoke(app, ["events", job_id, "--json"], env=env).stdout)
    assert [e["kind"] for e in events] == ["submitted", "STARTING", "RUNNING", "SUCCEEDED"]
    missing = runner.invoke(app, ["logs", "nope"], env=env)
    assert missing.exit_code == 2 and "no job 'nope'" in missing.stderr
    (tmp_path / "bad.yaml").write_text("name: bad\ndataset: /nowhere/tx.csv\nlabel: y\n")
    bad = runner.invoke(app, ["submit", str(tmp_path / "bad.yaml")], env=env)
    assert bad.exit_code == 2 and "dataset: /nowhere/tx.csv" in bad.stderr
    finished = runner.invoke(app, ["cancel", job_id], env=env)
    assert finished.exit_code == 2 and "already finished (SUCCEEDED)" in finished.stderr
    gone = runner.invoke(app, ["jobs"], env={**env, "SUANLI_SERVER": "http://127.0.0.1:1"})
    assert gone.exit_code == 2 and "cannot reach http://127.0.0.1:1" in gone.stderr
