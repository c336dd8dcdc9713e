"""Gradient-boosted trees as a user meets them, through a `suanli server` on an emulated 3-node
Ray cluster (one core per node): XGBoost and LightGBM across two workers on two nodes, data read
as Ray Datasets and sharded, the test AUC against scikit-learn's HistGradientBoostingClassifier on
the same split, the signed artifact scoring raw rows (categorical strings included) like the
trained pipeline, compression, and resumption after a node is lost."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import ray

from tests.conftest import REPO, shared_path
from tests.runtime.test_artifacts import GERMAN_CATEGORICAL, prepared_splits
from tests.runtime.test_control_plane import Servers, three_nodes, wait_for  # noqa: F401 - fixture

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster3(three_nodes):  # noqa: F811 - the control-plane tests' 3-node cluster, started for this module
    return three_nodes


@pytest.fixture(scope="module")
def client(cluster3, tmp_path_factory):
    from runtime import Client

    group = Servers(cluster3.address, tmp_path_factory.mktemp("state"), [REPO.parent / "shared"])
    url = group.start()
    wait_for(group.active, 30, "an active server")
    with Client(address=url, state_dir=group.state_dir) as c:
        yield c
    group.stop_all()


def histgb_auc(path, label, categorical):
    """scikit-learn's HistGradientBoostingClassifier on the same training rows and features."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    prepared, parts = prepared_splits(path, label, categorical)
    model = HistGradientBoostingClassifier(random_state=0)
    model.fit(prepared.preprocessing.transform(parts["train"]), parts["train"][label])
    return roc_auc_score(parts["test"][label], model.predict_proba(prepared.preprocessing.transform(parts["test"]))[:, 1])


def test_xgboost_on_two_nodes_matches_sklearn_exports_raw_row_scoring_and_compresses(client, tmp_path, monkeypatch):
    import xgboost

    from runtime import TrainingJob
    from runtime.artifacts.load import load_artifact
    from runtime.artifacts.signing import generate_keypair
    from runtime.data import read_frame
    from runtime.data.ray_io import PreparedData

    german = shared_path("credit", "german_credit.csv")
    monkeypatch.chdir(german.parent)  # a relative dataset path, resolved by the SDK
    job = client.submit(TrainingJob(name="xgb", model="xgboost", workers=2, dataset="german_credit.csv", label="bad",
                                    categorical=GERMAN_CATEGORICAL, device="cpu"))
    assert job.wait(timeout=600).value == "SUCCEEDED", job.logs()
    result = job.result()
    nodes = {w["node_id"] for w in result.provenance["modelling"]["environment"]["nodes"]}
    assert len(nodes) == 2 and result.provenance["modelling"]["environment"]["workers_on_placed_nodes"]
    assert result.metrics["auc"] >= 0.68  # 200 test rows: the comparison with HistGB is on the fraud set below
    assert result.metrics["rows"] == 200  # the test split: 20% of 1000, exactly
    assert result.provenance["modelling"]["code"]["source"].endswith("xgboost_train_loop")

    private, public = generate_keypair(tmp_path / "keys")
    artifact = client.export(job, tmp_path / "artifact", private)
    loaded = load_artifact(artifact, public)
    frame = read_frame(german)
    prepared = PreparedData.load(result.checkpoint)
    booster = xgboost.Booster(model_file=f"{result.checkpoint}/model.ubj")
    expected = booster.inplace_predict(prepared.preprocessing.transform(frame))
    np.testing.assert_allclose(loaded.predict(frame.drop(columns=["bad"])), expected, atol=1e-5)
    row = frame.drop(columns=["bad"]).iloc[0].to_dict()
    assert isinstance(row["purpose"], str) and abs(loaded.predict(row)[0] - expected[0]) < 1e-5

    report = client.compress(artifact, tmp_path / "compressed", private_key=private, public_key=public)
    assert {"student", "truncated"} <= set(report["candidates"])
    chosen = report["chosen"]
    assert chosen == "source" or report["candidates"][chosen]["after"]["auc"] >= report["before"]["auc"] - 0.005


def test_xgboost_on_fraud_data_reaches_sklearns_gbdt(client):
    """On the ULB card-fraud sample (1,082 test rows), 2 workers: test AUC at or above scikit-learn's
    HistGradientBoostingClassifier on the same split and features, within 0.005."""
    from runtime import TrainingJob

    fraud = shared_path("credit", "ulb_creditcard_fraud_sample.csv")
    job = client.submit(TrainingJob(name="xgb-fraud", model="xgboost", workers=2, dataset=str(fraud), label="Class",
                                    device="cpu"))
    assert job.wait(timeout=600).value == "SUCCEEDED", job.logs()
    auc, reference = job.result().metrics["auc"], histgb_auc(fraud, "Class", [])
    assert auc >= reference - 0.005, (auc, reference)


def checkpoint_scratch() -> set:
    """The workers' temporary checkpoint directories (same host: the emulated nodes share /tmp)."""
    return set(Path(tempfile.gettempdir()).glob("suanli-ckpt-*"))


def test_lightgbm_on_two_nodes_leaves_no_checkpoint_scratch(client):
    from runtime import TrainingJob

    australian = shared_path("credit", "australian_credit.csv")
    scratch_before = checkpoint_scratch()
    job = client.submit(TrainingJob(name="lgbm", model="lightgbm", workers=2, dataset=str(australian), label="class",
                                    device="cpu", epochs=20, checkpoint_every=1))  # 25 trees a block
    assert job.wait(timeout=600).value == "SUCCEEDED", job.logs()
    result = job.result()
    assert len(result.provenance["modelling"]["epochs"]) > 1  # several checkpoints (>= 50 rounds) were written...
    assert checkpoint_scratch() - scratch_before == set()  # ...and each scratch copy deleted once persisted
    assert len({w["node_id"] for w in result.provenance["modelling"]["environment"]["nodes"]}) == 2
    assert result.metrics["auc"] >= histgb_auc(australian, "class", []) - 0.02
    epochs = result.provenance["modelling"]["epochs"]
    assert epochs and all("val_auc" in e for e in epochs)


def test_xgboost_resumes_from_its_checkpoint_after_a_node_is_lost(client, cluster3):
    from runtime import TrainingJob

    job = client.submit(TrainingJob(name="xgb-resume", model="xgboost", workers=2, label="Class", device="cpu",
                                    dataset=str(shared_path("credit", "ulb_creditcard_fraud_sample.csv")),
                                    trees=240, epochs=8, early_stopping_rounds=10_000, checkpoint_every=1,
                                    config={"seconds_per_epoch": 3}, max_failures=2))
    wait_for(lambda: (job.info()["progress"] or {}).get("epochs_done", 0) >= 2, 300, "two blocks of trees")
    head = ray.get_runtime_context().get_node_id()
    victim = next(a["node_id"] for a in job.info()["placement"]["assignments"] if a["node_id"] != head)
    cluster3.remove_node(victim)
    assert job.wait(timeout=600).value == "SUCCEEDED", job.logs()
    info = job.info()
    assert info["attempts"] == 2 and info["failures"] == 1
    epochs = job.result().provenance["modelling"]["epochs"]
    resumed = [e for e in epochs if e["attempt"] == 2]
    assert resumed and resumed[0]["resumed_from_epoch"] >= 1  # continued boosting from the checkpoint
    assert max(e["epoch"] for e in epochs) == 7 and epochs[-1]["trees"] == 240
    assert job.result().provenance["modelling"]["recovery"]["epochs_repeated"] <= 1
