"""Artifacts from a training checkpoint: ONNX export, signing, verified loading, inference, and
the registry's stages, rollback and withdrawal records."""

import json

import numpy as np
import pytest
import torch

from runtime.artifacts.artifact import build_artifact, load_artifact
from runtime.artifacts.registry import Registry
from runtime.artifacts.signing import SignatureError, generate_keypair
from runtime.datasets import prepare_splits
from runtime.metrics import binary_metrics
from runtime.training.loop import build_model
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint in the training loop's format, from a short in-process training run."""
    splits = prepare_splits(shared_path("credit", "australian_credit.csv"), "class", [], 0.2, 0.2, seed=0)
    torch.manual_seed(0)
    model = build_model("mlp", splits.x_train.shape[1], [32, 16])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.from_numpy(splits.x_train), torch.from_numpy(splits.y_train)
    for _ in range(200):
        optimiser.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
        optimiser.step()
    directory = tmp_path_factory.mktemp("ckpt")
    torch.save({"model": model.state_dict(), "epoch": 0, "features": splits.feature_names, "mean": splits.mean.tolist(),
                "scale": splits.scale.tolist(), "model_name": "mlp", "hidden": [32, 16]}, directory / "state.pt")
    with torch.no_grad():
        torch_scores = torch.sigmoid(model(torch.from_numpy(splits.x_test))).numpy()
    return directory, splits, torch_scores


def make_artifact(tmp_path, trained, keys, name="fraud"):
    checkpoint, splits, scores = trained
    metrics = binary_metrics(splits.y_test, scores)
    return build_artifact(checkpoint, metrics, {"operator": {"tenant": "risk", "user": "alice"}}, tmp_path / name,
                          name, keys[0])


def raw_rows(splits, x):
    return x * splits.scale + splits.mean  # back to the raw feature values a caller sends


def test_artifact_round_trip_matches_torch(tmp_path, trained, keys):
    _, splits, torch_scores = trained
    directory = make_artifact(tmp_path, trained, keys)
    names = {p.name for p in directory.iterdir()}
    assert {"model.onnx", "model.pt", "provenance.json", "compression.json", "metrics.json", "MODEL_CARD.md",
            "model.sig", "preprocessing.json"} <= names
    loaded = load_artifact(directory, keys[1])
    assert loaded.provider == "CPUExecutionProvider"
    probabilities = loaded.predict(raw_rows(splits, splits.x_test))
    np.testing.assert_allclose(probabilities, torch_scores, atol=1e-5)
    one = loaded.predict({f: float(v) for f, v in zip(loaded.features, raw_rows(splits, splits.x_test[:1])[0], strict=True)})
    assert one.shape == (1,) and abs(one[0] - torch_scores[0]) < 1e-5
    assert json.loads((directory / "metrics.json").read_text())["auc"] > 0.8


def test_tampered_artifact_is_never_loaded(tmp_path, trained, keys):
    directory = make_artifact(tmp_path, trained, keys)
    onnx = bytearray((directory / "model.onnx").read_bytes())
    onnx[len(onnx) // 2] ^= 0xFF
    (directory / "model.onnx").write_bytes(bytes(onnx))
    with pytest.raises(SignatureError, match="changed: model.onnx"):
        load_artifact(directory, keys[1])


def test_wrong_inputs_are_named(tmp_path, trained, keys):
    loaded = load_artifact(make_artifact(tmp_path, trained, keys), keys[1])
    with pytest.raises(ValueError, match=r"rows: expected shape \(n, 14\)"):
        loaded.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="rows: missing feature"):
        loaded.predict({"A1": 1.0})
    with pytest.raises(ValueError, match="must be a number"):
        loaded.predict({f: "x" for f in loaded.features})


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
    provenance = {"training_data": {"source": str(shared_path("credit", "australian_credit.csv")), "label": "class",
                                    "categorical": [], "split": {"validation_fraction": 0.2, "test_fraction": 0.2,
                                                                 "seed": 0}}}
    (source / "provenance.json").write_text(json.dumps(provenance))
    from runtime.artifacts.signing import sign_directory

    sign_directory(source, keys[0])
    report = compress(source, tmp_path / "compressed", private_key=keys[0], public_key=keys[1])
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

    from runtime.training.loop import file_sha256

    checkpoint, splits, scores = trained
    copy = tmp_path / "ckpt"
    shutil.copytree(checkpoint, copy)
    recorded = file_sha256(copy / "state.pt")
    with (copy / "state.pt").open("ab") as f:
        f.write(b"\0")  # the bytes change after the store recorded them
    with pytest.raises(ValueError, match="does not match the sha256 recorded"):
        build_artifact(copy, binary_metrics(splits.y_test, scores), {}, tmp_path / "out", "x", keys[0],
                       checkpoint_sha256=recorded)
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
