"""Job specs, dataset checks and metrics, without Ray."""

import numpy as np
import pytest

from cluster.errors import ConfigError
from runtime.data import DatasetError, inspect_table, read_frame
from runtime.data.ray_io import split_frame
from runtime.data.splits import plan_for_frame
from runtime.metrics import binary_metrics
from runtime.specs import TrainingJob, load_job_yaml
from tests.conftest import shared_path


def test_spec_validation_names_the_field():
    with pytest.raises(ValueError, match="device"):
        TrainingJob(name="x", dataset="d.csv", label="y", device="tpu")
    with pytest.raises(ValueError, match="dataset and label"):
        TrainingJob(name="x", model="mlp")
    with pytest.raises(ValueError, match="workers"):
        TrainingJob(name="x", dataset="d.csv", label="y", workers=0)
    job = TrainingJob(name="x", train_fn=lambda config: None, device="gpu:A100")
    assert job.model is None and job.device_kinds() == (("gpu",), "A100") and job.algorithm == "generic"
    assert TrainingJob(name="x", dataset="d.csv", label="y", model="logistic").algorithm == "linear"


def test_yaml_job_file(tmp_path):
    (tmp_path / "job.yaml").write_text("name: fraud\ndataset: tx.csv\nlabel: is_fraud\nworkers: 2\nepochs: 3\n")
    job = load_job_yaml(tmp_path / "job.yaml")
    assert job.dataset == str(tmp_path / "tx.csv") and job.workers == 2
    (tmp_path / "bad.yaml").write_text("name: fraud\ndataset: tx.csv\nlabel: y\nepochs: -1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: epochs: .*greater than or equal to 1"):
        load_job_yaml(tmp_path / "bad.yaml")
    (tmp_path / "typo.yaml").write_text("name: fraud\ndataset: tx.csv\nlabel: y\nepoch: 3\n")
    with pytest.raises(ConfigError, match="epoch: unknown field"):
        load_job_yaml(tmp_path / "typo.yaml")


def test_dataset_checks_name_the_column(tmp_path):
    german = shared_path("credit", "german_credit.csv")
    with pytest.raises(DatasetError, match="feature: column 'checking_account_status' is not numeric"):
        inspect_table(german, "bad", [])
    with pytest.raises(DatasetError, match="label: column 'is_fraud' is not in .*german_credit.csv"):
        inspect_table(german, "is_fraud", [])
    with pytest.raises(DatasetError, match="dataset: .*missing.csv does not exist"):
        inspect_table(tmp_path / "missing.csv", "y", [])
    categorical = ["checking_account_status", "credit_history", "purpose", "savings_account_bonds",
                   "present_employment_since", "personal_status_sex", "other_debtors_guarantors", "property",
                   "other_installment_plans", "housing", "job", "telephone", "foreign_worker"]
    info = inspect_table(german, "bad", categorical)
    assert info.rows == 1000 and info.sha256 == "3482eb1e74e1e0801fb40482282f770bf4babfa314e24f15f86d2406deb6ae84"
    assert info.positives == 300 and info.columns[0] == "checking_account_status"


def test_splits_are_exactly_stratified_reproducible_and_independent_of_blocks():
    """Exactly round(n_class * fraction) rows of each class per split; the same rows for the same
    seed whether the data is read whole or in blocks of any size; another seed, other rows."""
    frame = read_frame(shared_path("credit", "german_credit.csv"))
    plan = plan_for_frame(frame, "bad", seed=0, validation_fraction=0.2, test_fraction=0.2)
    parts = split_frame(frame, plan)
    assert {k: (len(v), int(v["bad"].sum())) for k, v in parts.items()} == {
        "train": (600, 180), "val": (200, 60), "test": (200, 60)}
    whole = plan.assign(frame)
    blocks = np.concatenate([plan.assign(frame.iloc[i:i + 37]) for i in range(0, len(frame), 37)])
    assert (whole == blocks).all()
    shuffled = frame.sample(frac=1.0, random_state=1)
    assert (plan.assign(shuffled) == whole[shuffled.index.to_numpy()]).all()
    other = plan_for_frame(frame, "bad", seed=1, validation_fraction=0.2, test_fraction=0.2)
    assert (other.assign(frame) != whole).sum() > 300


def test_datasets_as_directories_and_uris(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"amount": np.arange(10.0), "channel": ["web", "pos"] * 5, "is_fraud": [0, 1] * 5})
    (tmp_path / "parts").mkdir()
    frame.iloc[:6].to_parquet(tmp_path / "parts" / "a.parquet")
    frame.iloc[6:].to_parquet(tmp_path / "parts" / "b.parquet")
    for source in (tmp_path / "parts", f"file://{tmp_path / 'parts'}"):
        info = inspect_table(source, "is_fraud", ["channel"])
        assert (info.rows, info.format, len(info.files), info.positives) == (10, "parquet", 2, 5)
    frame.to_csv(tmp_path / "parts" / "c.csv", index=False)
    with pytest.raises(DatasetError, match="mixes CSV and Parquet"):
        inspect_table(tmp_path / "parts", "is_fraud", ["channel"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no .csv or .parquet file"):
        inspect_table(tmp_path / "empty", "is_fraud", [])


def test_metrics_and_the_jrt0221_bar():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.2, 2000), 0, 1)
    m = binary_metrics(y, good)
    assert m["auc"] > 0.9 and m["jrt0221_auc_pass"] and 0 < m["ks"] <= 1
    assert sum(m["confusion_matrix"].values()) == 2000
    noise = binary_metrics(y, rng.random(2000))
    assert not noise["jrt0221_auc_pass"] and noise["jrt0221_auc_bar"] == 0.75
    with pytest.raises(ValueError, match="both classes"):
        binary_metrics([1, 1], [0.2, 0.9])


def test_parquet_datasets_are_read(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0], "is_fraud": [0, 1, 0, 1]})
    frame.to_parquet(tmp_path / "tx.parquet")
    info = inspect_table(tmp_path / "tx.parquet", "is_fraud", [])
    assert info.format == "parquet" and info.rows == 4


def test_training_loop_fields_inside_config_are_refused():
    with pytest.raises(ValueError, match="'hidden' is a field of the job itself"):
        TrainingJob(name="x", dataset="/d.csv", label="y", config={"hidden": [8]})
    with pytest.raises(ValueError, match="hidden"):
        TrainingJob(name="x", dataset="/d.csv", label="y", hidden=[10**6])
