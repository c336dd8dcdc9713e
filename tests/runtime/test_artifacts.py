"""Artifacts from a training checkpoint: ONNX export, signing, verified loading, inference, and
the registry's stages, rollback and withdrawal records."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.artifacts.build import build_artifact
from runtime.artifacts.inputs import InputError
from runtime.artifacts.load import load_artifact
from runtime.artifacts.registry import Registry
from runtime.artifacts.signing import SignatureError, generate_keypair
from runtime.data import read_frame
from runtime.data.preprocess import Preprocessing, fit_preprocessing
from runtime.data.ray_io import prepare_frame, split_frame
from runtime.data.splits import plan_for_frame
from runtime.metrics import binary_metrics
from runtime.training.checkpoints import checkpoint_digest, write_meta
from runtime.training.models import build_model
from tests.conftest import shared_path

GERMAN_CATEGORICAL = ["checking_account_status", "credit_history", "purpose", "savings_account_bonds",
                      "present_employment_since", "personal_status_sex", "other_debtors_guarantors", "property",
                      "other_installment_plans", "housing", "job", "telephone", "foreign_worker"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return generate_keypair(tmp_path_factory.mktemp("keys"))


def prepared_splits(path, label, categorical):
    """The split plan, preprocessing fitted on the training rows, and raw frames per split."""
    return prepare_frame(read_frame(path), label, categorical)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An MLP checkpoint in the training loops' format (split plan, preprocessing graph, state.pt,
    meta.json), from a short in-process training run on the Australian credit set."""
    prepared, parts = prepared_splits(shared_path("credit", "australian_credit.csv"), "class", [])
    x = torch.from_numpy(prepared.preprocessing.transform(parts["train"]))
    y = torch.from_numpy(parts["train"]["class"].to_numpy(dtype=np.float32))
    torch.manual_seed(0)
    model = build_model("mlp", x.shape[1], [32, 16])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        optimiser.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
        optimiser.step()
    directory = tmp_path_factory.mktemp("ckpt")
    prepared.save(directory)
    torch.save({"model": model.state_dict(), "epoch": 0, "features": prepared.preprocessing.feature_names,
                "model_name": "mlp", "hidden": [32, 16]}, directory / "state.pt")
    write_meta(directory, 0, "mlp")
    test = parts["test"]
    with torch.no_grad():
        torch_scores = torch.sigmoid(model(torch.from_numpy(prepared.preprocessing.transform(test)))).numpy()
    return directory, test, torch_scores


def make_artifact(tmp_path, trained, keys, name="fraud"):
    checkpoint, test, scores = trained
    metrics = binary_metrics(test["class"].to_numpy(), scores)
    return build_artifact(checkpoint, metrics, {"operator": {"tenant": "risk", "user": "alice"}}, tmp_path / name,
                          name, keys[0])


def test_artifact_round_trip_matches_torch(tmp_path, trained, keys):
    _, test, torch_scores = trained
    directory = make_artifact(tmp_path, trained, keys)
    names = {p.name for p in directory.iterdir()}
    assert {"model.onnx", "model.pt", "provenance.json", "compression.json", "metrics.json", "MODEL_CARD.md",
            "model.sig", "preprocessing.json"} <= names
    loaded = load_artifact(directory, keys[1])
    assert loaded.provider == "CPUExecutionProvider"
    raw = test.drop(columns=["class"])
    np.testing.assert_allclose(loaded.predict(raw), torch_scores, atol=1e-5)  # raw rows in: preprocessing inside
    one = loaded.predict(raw.iloc[0].to_dict())
    assert one.shape == (1,) and abs(one[0] - torch_scores[0]) < 1e-5
    assert json.loads((directory / "metrics.json").read_text())["auc"] > 0.8


def test_tree_artifact_scores_raw_rows_with_categories_like_the_trained_pipeline(tmp_path, keys):
    """XGBoost and LightGBM on the German credit set (13 categorical columns): the artifact's one
    ONNX graph gives the trained pipeline's scores (preprocessing graph + booster) to 1e-5, takes
    categorical strings, and a category never seen in training is scored, not refused."""
    import lightgbm
    import xgboost

    prepared, parts = prepared_splits(shared_path("credit", "german_credit.csv"), "bad", GERMAN_CATEGORICAL)
    x = prepared.preprocessing.transform(parts["train"])
    y = parts["train"]["bad"].to_numpy()
    raw = parts["test"].drop(columns=["bad"])
    x_test = prepared.preprocessing.transform(parts["test"])
    for model in ("xgboost", "lightgbm"):
        directory = tmp_path / f"{model}-ckpt"
        prepared.save(directory)
        if model == "xgboost":
            booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3}, xgboost.DMatrix(x, label=y), 60)
            booster.save_model(str(directory / "model.ubj"))
            expected = booster.inplace_predict(x_test)
        else:
            booster = lightgbm.train({"objective": "binary", "verbose": -1, "num_leaves": 15}, lightgbm.Dataset(x, y), 60)
            (directory / "model.txt").write_text(booster.model_to_string())
            expected = booster.predict(x_test)
        meta = write_meta(directory, 0, model)
        artifact = build_artifact(directory, {"auc": 0.7}, {}, tmp_path / model, model, keys[0],
                                  checkpoint_sha256=meta["sha256"])
        loaded = load_artifact(artifact, keys[1])
        assert loaded.categorical == GERMAN_CATEGORICAL and len(loaded.features) == 20
        np.testing.assert_allclose(loaded.predict(raw), expected, atol=1e-5)
        rows = raw.head(3).to_dict("records")
        rows[0]["purpose"] = "A-PURPOSE-NEVER-SEEN"
        rows[1]["credit_amount"] = None  # imputed with the training median
        scores = loaded.predict(rows)
        assert scores.shape == (3,) and np.isfinite(scores).all()
        assert abs(scores[2] - expected[2]) < 1e-5


def test_preprocessing_is_fitted_on_training_rows_only(tmp_path):
    """A category that appears only in the test split is unknown to the encoder, and the medians
    and scales are the training split's, not the whole file's."""
    frame = read_frame(shared_path("credit", "german_credit.csv"))
    plan = plan_for_frame(frame, "bad", 0, 0.2, 0.2)
    parts = split_frame(frame, plan)
    test_only = parts["test"].copy()
    test_only.loc[test_only.index[0], "purpose"] = "ONLY-IN-TEST"
    numeric = [c for c in frame.columns if c != "bad" and c not in GERMAN_CATEGORICAL]
    onnx_bytes, names = fit_preprocessing(parts["train"], numeric, GERMAN_CATEGORICAL)
    assert not any("ONLY-IN-TEST" in n for n in names)
    pre = Preprocessing(onnx_bytes, numeric, GERMAN_CATEGORICAL, names)
    amount = names.index("credit_amount")
    train_scaled = pre.transform(parts["train"])[:, amount]
    assert abs(train_scaled.mean()) < 1e-5 and abs(train_scaled.std() - 1) < 1e-3  # training statistics
    assert abs(pre.transform(frame)[:, amount].mean()) > 1e-4  # the whole file's are different
    assert pre.transform(test_only).shape == (len(test_only), len(names))


def test_tampered_artifact_is_never_loaded(tmp_path, trained, keys):
    directory = make_artifact(tmp_path, trained, keys)
    onnx = bytearray((directory / "model.onnx").read_bytes())
    onnx[len(onnx) // 2] ^= 0xFF
    (directory / "model.onnx").write_bytes(bytes(onnx))
    with pytest.raises(SignatureError, match="changed: model.onnx"):
        load_artifact(directory, keys[1])


def test_wrong_inputs_are_named(tmp_path, trained, keys):
    loaded = load_artifact(make_artifact(tmp_path, trained, keys), keys[1])
    with pytest.raises(InputError, match=r"rows: expected shape \(n, 14\)"):
        loaded.predict(np.zeros((2, 3)))
    with pytest.raises(InputError, match=r"rows\[0\]: missing field\(s\) A2"):
        loaded.predict([{"A1": 1.0}])
    good = {f: 1.0 for f in loaded.features}
    with pytest.raises(InputError, match=r"rows\[1\]\.A3: 'x' is not a number"):
        loaded.predict([good, {**good, "A3": "x"}])
    with pytest.raises(InputError, match=r"rows\[0\]\.A1: inf is not finite"):
        loaded.predict([{**good, "A1": float("inf")}])
    with pytest.raises(InputError, match=r"rows\[0\]: unknown field\(s\) colour"):
        loaded.predict([{**good, "colour": 1}])


def test_registry_stages_rollback_and_withdrawal(tmp_path, trained, keys):
    registry = Registry(tmp_path / "registry", public_key=keys[1])
    v1 = registry.register(make_artifact(tmp_path, trained, keys, "a1"), "fraud", actor="alice")
    v2 = registry.register(make_artifact(tmp_path, trained, keys, "a2"), "fraud", actor="alice")
    assert (v1.version, v2.version, v2.stage) == (1, 2, "staging")
    registry.promote("fraud", 1, actor="bob")
    registry.promote("fraud", 2, actor="bob")
    assert registry.version("fraud").version == 2 and registry.version("fraud", 1).stage == "archived"
    assert registry.rollback("fraud", actor="carol").version == 1
    registry.withdraw("fraud", 2, actor="dave", reason="drift in November traffic")
    assert registry.withdrawn() == ["fraud:v2"]
    with pytest.raises(PermissionError, match="withdrawn"):
        registry.get("fraud", 2)
    assert registry.get("fraud").predict(np.zeros((1, 14))).shape == (1,)
    actions = [(e["actor"], e["action"], e["version"]) for e in registry.events("fraud")]
    assert actions == [("alice", "register", 1), ("alice", "register", 2), ("bob", "promote", 1), ("bob", "promote", 2),
                       ("carol", "promote", 1), ("dave", "withdraw", 2)]


def test_registry_refuses_bad_artifacts_and_stays_unchanged(tmp_path, trained, keys):
    registry = Registry(tmp_path / "registry", public_key=keys[1])
    corrupt = make_artifact(tmp_path, trained, keys, "corrupt")
    (corrupt / "model.onnx").write_bytes(b"not an onnx model")
    from runtime.artifacts.signing import sign_directory

    sign_directory(corrupt, keys[0])  # validly signed, but the model itself is broken
    with pytest.raises(ValueError, match="model.onnx: ONNX Runtime cannot load it"):
        registry.register(corrupt, "fraud", actor="mallory")
    _, stranger = generate_keypair(tmp_path / "stranger")
    foreign = Registry(tmp_path / "registry", public_key=stranger)
    with pytest.raises(SignatureError):
        foreign.register(make_artifact(tmp_path, trained, keys, "ok"), "fraud", actor="mallory")
    assert registry.versions() == [] and registry.events() == []
    assert [p.name for p in (tmp_path / "registry").iterdir() if p.name != "registry.db" and not p.name.endswith(("-wal", "-shm"))] in ([], ["fraud"])


def test_compression_candidates_are_recorded_signed_and_one_is_chosen(tmp_path, trained, keys):
    from runtime.compression.pipeline import compress

    source = make_artifact(tmp_path, trained, keys)
    provenance = {"training_data": {"source": str(shared_path("credit", "australian_credit.csv")), "label": "class"}}
    (source / "provenance.json").write_text(json.dumps(provenance))
    from runtime.artifacts.signing import sign_directory

    sign_directory(source, keys[0])
    report = compress(source, tmp_path / "compressed", private_key=keys[0], public_key=keys[1])
    assert report["skipped"] == {}
    assert set(report["candidates"]) == {"student", "student-int8-dynamic", "student-int8-qdq", "pruned"}
    for name, run in report["candidates"].items():
        directory = tmp_path / "compressed" / name
        history = json.loads((directory / "compression.json").read_text())
        assert history[-1]["method"] == run["method"] and history[-1]["after"]["auc"] > 0.5
        for key in ("auc", "size_bytes", "batch1_p50_ms", "batch256_rows_per_s"):
            assert key in history[-1]["before"] and key in history[-1]["after"]
        load_artifact(directory, keys[1])  # each candidate is a signed, loadable artifact
    assert report["candidates"]["student-int8-dynamic"]["after"]["size_bytes"] < report["before"]["size_bytes"]
    chosen = report["chosen"]
    if chosen != "source":
        assert report["candidates"][chosen]["after"]["auc"] >= report["before"]["auc"] - 0.005
    with pytest.raises(ValueError, match="methods: unknown magic"):
        compress(source, tmp_path / "x", methods=["magic"], private_key=keys[0], public_key=keys[1])


def test_a_checkpoint_changed_since_it_was_recorded_is_not_signed(tmp_path, trained, keys):
    import shutil

    checkpoint, _, _ = trained
    for changed in ("state.pt", "preprocessing.onnx", "split_plan.json"):
        copy = tmp_path / f"ckpt-{changed}"
        shutil.copytree(checkpoint, copy)
        recorded = checkpoint_digest(copy)
        with (copy / changed).open("ab") as f:
            f.write(b" ")  # the bytes change after the store recorded them
        with pytest.raises(ValueError, match="does not match the sha256 recorded"):
            build_artifact(copy, {}, {}, tmp_path / "out", "x", keys[0], checkpoint_sha256=recorded)
    assert not (tmp_path / "out").exists()


def test_bad_registry_names_and_symlinks_are_refused(tmp_path, trained, keys):
    artifact = make_artifact(tmp_path, trained, keys, name="linked")
    registry = Registry(tmp_path / "registry", public_key=keys[1])
    for name in ("../evil", "/abs", "UPPER", "a/b", ""):
        with pytest.raises(ValueError, match="name: "):
            registry.register(artifact, name, "alice")
    (artifact / "extra").symlink_to("/etc/passwd")
    with pytest.raises(SignatureError, match="no symbolic links"):
        registry.register(artifact, "fraud", "alice")
    assert registry.versions() == []


def test_tree_artifacts_compress_by_distillation_and_truncation(tmp_path, keys):
    """A GBDT artifact: distilled into an MLP student (recorded as such) and truncated to fewer
    trees; int8 quantization of the trees themselves is skipped with the reason; the chosen
    candidate keeps the test AUC within 0.005."""
    import xgboost

    from runtime.artifacts.signing import sign_directory
    from runtime.compression.pipeline import compress

    path = shared_path("credit", "german_credit.csv")
    prepared, parts = prepared_splits(path, "bad", GERMAN_CATEGORICAL)
    x = prepared.preprocessing.transform(parts["train"])
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.05, "seed": 0},
                            xgboost.DMatrix(x, label=parts["train"]["bad"].to_numpy()), 200)
    checkpoint = tmp_path / "ckpt"
    prepared.save(checkpoint)
    booster.save_model(str(checkpoint / "model.ubj"))
    write_meta(checkpoint, 0, "xgboost")
    source = build_artifact(checkpoint, {"auc": 0.7}, {"training_data": {"source": str(path), "label": "bad"}},
                            tmp_path / "gbdt", "gbdt", keys[0])
    sign_directory(source, keys[0])
    report = compress(source, tmp_path / "out", methods=["distillation", "tree_truncation", "quantize_dynamic"],
                      private_key=keys[0], public_key=keys[1])
    assert set(report["candidates"]) == {"student", "truncated", "student-int8-dynamic"}
    history = json.loads((tmp_path / "out" / "student" / "compression.json").read_text())
    assert (history[-1]["method"], history[-1]["source_model"], history[-1]["model"]) == ("distillation", "xgboost", "mlp")
    truncation = report["candidates"]["truncated"]["parameters"]
    assert truncation["rounds_kept"] <= truncation["rounds_before"] == 200
    assert report["candidates"]["truncated"]["after"]["size_bytes"] <= report["before"]["size_bytes"]
    chosen = report["chosen"]
    assert chosen == "source" or report["candidates"][chosen]["after"]["auc"] >= report["before"]["auc"] - 0.005
    student = load_artifact(tmp_path / "out" / "student", keys[1])
    assert student.predict(parts["test"].drop(columns=["bad"]).head(4).to_dict("records")).shape == (4,)
    no_distil = compress(source, tmp_path / "out2", methods=["quantize_dynamic"], private_key=keys[0], public_key=keys[1])
    assert "tree ensemble has none" in no_distil["skipped"]["quantize_dynamic"] and no_distil["candidates"] == {}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(
    st.one_of(st.floats(allow_infinity=False), st.integers(-10**6, 10**6), st.none(), st.booleans(),
              st.floats(-1e6, 1e6, allow_nan=False).map(repr)),
    st.one_of(st.floats(allow_infinity=False), st.integers(-10**6, 10**6), st.none()),
    st.one_of(st.text(max_size=4), st.integers(-50, 50), st.none())), min_size=1, max_size=6))
def test_dict_rows_are_read_without_a_frame_exactly_as_through_one(values):
    from runtime.artifacts.inputs import input_feeds, to_frame
    from runtime.data.preprocess import raw_inputs

    numeric, categorical = ["a", "b"], ["c"]
    rows = [{"a": a, "b": b, "c": c} for a, b, c in values]
    try:
        through_frame = raw_inputs(to_frame(rows, numeric, categorical), numeric, categorical)
    except InputError as refused:  # e.g. beyond float32's range: the same words either way
        with pytest.raises(InputError) as also:
            input_feeds(rows, numeric, categorical)
        assert str(also.value) == str(refused)
        return
    fast = input_feeds(rows, numeric, categorical)
    for column in numeric:
        np.testing.assert_array_equal(fast[column], through_frame[column])
        assert fast[column].dtype == through_frame[column].dtype == np.float32
    assert fast["c"].tolist() == through_frame["c"].tolist()


def test_the_server_pins_its_trusted_key_and_names_the_setting_without_one(tmp_path, keys):
    from runtime.artifacts.registry import TRUSTED_KEY_FILE, RegistryRefused, trusted_key

    with pytest.raises(RegistryRefused, match="pins no trusted signing key.*--signing-public-key FILE") as refused:
        trusted_key(tmp_path, None)
    assert refused.value.status == 409
    (tmp_path / TRUSTED_KEY_FILE).parent.mkdir()
    (tmp_path / TRUSTED_KEY_FILE).write_bytes(keys[1].read_bytes())
    assert trusted_key(tmp_path, None) == tmp_path / TRUSTED_KEY_FILE  # the state directory's own copy
    assert trusted_key(tmp_path, keys[1]) == keys[1].resolve()  # the configured one comes first
    with pytest.raises(RegistryRefused, match="is not a PEM public key"):
        trusted_key(tmp_path, keys[0])  # a private key is not a trusted public key
