"""`suanli submit | jobs | logs | cancel` against a job store, as a user runs them."""

import json

import pandas as pd
from typer.testing import CliRunner

from runtime.cli.main import app
from runtime.datasets import inspect_table
from runtime.specs import JobState
from runtime.store import JobStore


def run(args, state_dir):
    return CliRunner().invoke(app, args, env={"SUANLI_STATE_DIR": str(state_dir), "SUANLI_CONFIG": ""})


def test_jobs_logs_and_cancel(tmp_path):
    store = JobStore(tmp_path)
    job_id = store.add("fraud", "risk", "alice", {"epochs": 1}, None)
    other = store.add("credit", "cards", "bob", {"epochs": 1}, None)
    store.transition(other, JobState.FAILED, detail="boom")
    listed = json.loads(run(["jobs", "--json"], tmp_path).stdout)
    assert {j["id"]: j["state"] for j in listed} == {job_id: "QUEUED", other: "FAILED"}
    only = json.loads(run(["jobs", "--json", "--tenant", "risk"], tmp_path).stdout)
    assert [j["id"] for j in only] == [job_id]
    assert "FAILED: boom" in run(["logs", other], tmp_path).stdout
    assert run(["cancel", job_id, "--user", "alice"], tmp_path).exit_code == 0
    assert store.get(job_id).cancel_requested
    assert [e["kind"] for e in store.events(job_id)][-1] == "cancel-requested"
    missing = run(["logs", "nope"], tmp_path)
    assert missing.exit_code == 2 and "no job 'nope'" in missing.stderr
    bad_state = run(["jobs", "--state", "sleeping"], tmp_path)
    assert bad_state.exit_code == 2 and "--state" in bad_state.stderr


def test_submit_refuses_bad_data_before_anything_starts(tmp_path):
    data = tmp_path / "tx.csv"
    pd.DataFrame({"amount": [1.0, 2.0, 3.0], "channel": ["pos", "web", "pos"], "is_fraud": [0, 1, 0]}).to_csv(data, index=False)
    (tmp_path / "job.yaml").write_text("name: fraud\ndataset: tx.csv\nlabel: is_fraud\n")
    out = run(["submit", str(tmp_path / "job.yaml")], tmp_path / "state")
    assert out.exit_code == 2 and "feature: column 'channel' is not numeric" in out.stderr
    (tmp_path / "nolabel.yaml").write_text("name: fraud\ndataset: tx.csv\nlabel: fraud\ncategorical: [channel]\n")
    out = run(["submit", str(tmp_path / "nolabel.yaml")], tmp_path / "state")
    assert out.exit_code == 2 and "label: column 'fraud' is not in tx.csv" in out.stderr
    assert not (tmp_path / "state" / "jobs.db").exists() or not JobStore(tmp_path / "state").list()


def test_parquet_datasets_are_read(tmp_path):
    frame = pd.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0], "is_fraud": [0, 1, 0, 1]})
    frame.to_parquet(tmp_path / "tx.parquet")
    info = inspect_table(tmp_path / "tx.parquet", "is_fraud", [])
    assert info.format == "parquet" and info.rows == 4
