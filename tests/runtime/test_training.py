"""Training jobs end to end on an emulated 3-node cluster: placement across nodes, a failing
user function, a worker node killed mid-training, and the controller process killed with -9."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import ray

from tests.conftest import REPO, shared_path

pytestmark = pytest.mark.ray

GERMAN_CATEGORICAL = ["checking_account_status", "credit_history", "purpose", "savings_account_bonds",
                      "present_employment_since", "personal_status_sex", "other_debtors_guarantors", "property",
                      "other_installment_plans", "housing", "job", "telephone", "foreign_worker"]


@pytest.fixture(scope="module")
def three_nodes():
    """Three emulated CPU nodes with one core each: two workers always land on two nodes."""
    from cluster.emulation import EmulatedCluster, parse_emulation

    spec = parse_emulation({"name": "train", "nodes": [{"tier": "center", "site": "dc1", "count": 3, "cpu": 1,
                                                        "memory_gb": 3}]})
    emulated = EmulatedCluster(spec)
    yield emulated
    emulated.shutdown()


@pytest.fixture(scope="module")
def client(three_nodes, tmp_path_factory):
    from runtime import Client

    with Client(state_dir=tmp_path_factory.mktemp("state")) as c:
        yield c


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_workers_on_two_nodes_train_german_credit(client):
    from runtime import TrainingJob

    job = client.submit(TrainingJob(name="german-mlp", tenant="risk", user="alice",
                                    dataset=str(shared_path("credit", "german_credit.csv")), label="bad",
                                    categorical=GERMAN_CATEGORICAL, workers=2, device="cpu", epochs=4,
                                    hidden=[64, 32], batch_size=64))
    assert job.wait(timeout=300).value == "SUCCEEDED", job.logs()
    result = job.result()
    for key in ("auc", "ks", "precision", "recall", "f1", "log_loss", "confusion_matrix", "jrt0221_auc_pass"):
        assert key in result.metrics
    assert 0.6 < result.metrics["auc"] <= 1.0
    p = result.provenance
    assert p["operator"] == {"tenant": "risk", "user": "alice"}
    data = p["training_data"]
    assert data["sha256"] == "3482eb1e74e1e0801fb40482282f770bf4babfa314e24f15f86d2406deb6ae84"
    assert data["volume"]["rows"] == 1000 and "stratified" in data["sampling"] and data["acquired_at"]
    modelling = p["modelling"]
    assert modelling["iterations"]["epochs"] == 4 and len(modelling["epochs"]) == 4
    assert modelling["environment"]["software"]["torch"] and modelling["code"]["sha256"]
    assert modelling["started_at"] < modelling["ended_at"]
    workers = modelling["environment"]["nodes"]
    assert sorted(w["rank"] for w in workers) == [0, 1]
    assert len({w["node_id"] for w in workers}) == 2  # one core per node: the two workers ran on two nodes
    assert Path(result.provenance_path).name == "provenance.json"


def test_failing_train_fn_fails_only_its_job(client):
    from runtime import TrainingJob

    def broken(config):
        raise ValueError("feature store unreachable")

    bad = client.submit(TrainingJob(name="broken", train_fn=broken, workers=1, device="cpu", max_failures=0))
    good = client.submit(TrainingJob(name="logistic", model="logistic", dataset=str(shared_path("credit",
                         "australian_credit.csv")), label="class", workers=1, device="cpu", epochs=2))
    assert bad.wait(timeout=300).value == "FAILED"
    assert "feature store unreachable" in bad.logs() and "Traceback" in bad.logs()
    assert good.wait(timeout=300).value == "SUCCEEDED", good.logs()
    with pytest.raises(RuntimeError, match="FAILED"):
        bad.result()


def test_cancel_stops_a_running_job(client):
    from runtime import TrainingJob

    job = client.submit(TrainingJob(name="cancelled", dataset=str(shared_path("credit", "australian_credit.csv")),
                                    label="class", workers=1, device="cpu", epochs=50, hidden=[16],
                                    config={"seconds_per_epoch": 2}))
    progress = Path(client.controller.storage_path) / job.id / "progress.jsonl"
    wait_for(lambda: progress.exists(), 240, "the first epoch")
    job.cancel(actor="alice")
    assert job.wait(timeout=120).value == "CANCELLED"
    assert "cancelled on request" in job.logs()
    epochs = len(progress.read_text().splitlines())
    wait_for(lambda: ray.available_resources().get("CPU", 0) >= 3, 60, "the cancelled run to release its CPU")
    assert len(progress.read_text().splitlines()) <= epochs + 1  # the workers stopped at the next epoch


def test_worker_node_killed_mid_training_resumes_from_checkpoint(client, three_nodes):
    from runtime import TrainingJob

    job = client.submit(TrainingJob(name="survivor", dataset=str(shared_path("credit", "australian_credit.csv")),
                                    label="class", workers=2, device="cpu", epochs=6, hidden=[32],
                                    config={"seconds_per_epoch": 4}, max_failures=3))
    progress = Path(client.controller.storage_path) / job.id / "progress.jsonl"
    wait_for(lambda: progress.exists() and len(progress.read_text().splitlines()) >= 2, 240, "two epochs")
    head = ray.get_runtime_context().get_node_id()
    workers = [json.loads(line) for line in (progress.parent / "workers.jsonl").read_text().splitlines()]
    victim = next(w["node_id"] for w in workers if w["node_id"] != head)
    killed_at = time.time()
    three_nodes.remove_node(victim)
    assert job.wait(timeout=400).value == "SUCCEEDED", job.logs()
    lines = [json.loads(line) for line in progress.read_text().splitlines()]
    assert [line["epoch"] for line in lines][-1] == 5
    resumed = [line for line in lines if line["time"] > killed_at]
    assert resumed and resumed[0]["resumed_from_epoch"] > 0
    recovery = job.result().provenance["modelling"]["recovery"]
    epochs = [line["epoch"] for line in lines]
    assert recovery["epochs_repeated"] == len(epochs) - len(set(epochs))
    assert recovery["steps_repeated"] == sum(line["steps"] for i, line in enumerate(lines) if line["epoch"] in epochs[:i])


CONTROLLER_SCRIPT = textwrap.dedent("""
    import os, sys, time
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    sys.path.insert(0, {repo!r})
    from runtime import Client, TrainingJob
    client = Client(address={address!r}, state_dir={state!r})
    if {submit!r}:
        job = client.submit(TrainingJob(name="long", dataset={dataset!r}, label="class", workers=1, device="cpu",
                                        epochs=6, hidden=[32], config={{"seconds_per_epoch": 3}}))
        print(job.id, flush=True)
    time.sleep(3600)
""")


def test_controller_killed_with_sigkill_loses_no_job(three_nodes, tmp_path):
    from runtime.store import JobStore

    state = tmp_path / "state"
    dataset = str(shared_path("credit", "australian_credit.csv"))
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

    def controller(submit):
        code = CONTROLLER_SCRIPT.format(repo=str(REPO), address=three_nodes.address, state=str(state),
                                        submit=submit, dataset=dataset)
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, env=env)

    first = controller(True)
    job_id = first.stdout.readline().strip()
    progress = state / "runs" / job_id / "progress.jsonl"
    try:
        wait_for(lambda: progress.exists() and len(progress.read_text().splitlines()) >= 2, 240, "two epochs")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    store = JobStore(state)
    assert store.get(job_id).state.value == "RUNNING"  # what the killed controller last stored
    second = controller(False)
    try:
        wait_for(lambda: store.get(job_id).state.finished, 400, "the restarted controller to finish the job")
    finally:
        second.kill()
        second.wait()
    record = store.get(job_id)
    assert record.state.value == "SUCCEEDED", store.log_path(job_id).read_text()
    assert "controller restarted" in store.log_path(job_id).read_text()
    lines = [json.loads(line) for line in progress.read_text().splitlines()]
    assert max(line["resumed_from_epoch"] for line in lines) >= 1 and lines[-1]["epoch"] == 5
