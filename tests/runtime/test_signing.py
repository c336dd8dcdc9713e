"""Signed model directories: suanli and the model_signing CLI verify each other's signatures, and
any change to any file, the signature, or the set of files makes verification fail."""

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from runtime.artifacts.signing import SignatureError, generate_keypair, sign_directory, verify_directory
from runtime.cli.main import app

MODEL_SIGNING = str(Path(sys.executable).parent / "model_signing")
FILES = {"model.onnx": bytes(range(256)) * 8, "metrics.json": b'{"auc": 0.91}', "provenance.json": b'{"job": "x"}',
         "compression.json": b"[]", "MODEL_CARD.md": b"# fraud model\n"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return generate_keypair(tmp_path_factory.mktemp("keys"))


def model_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in FILES.items():
        (root / name).write_bytes(data)
    return root


def test_round_trip_and_key_mismatch(tmp_path, keys):
    private, public = keys
    directory = model_dir(tmp_path / "m")
    assert sign_directory(directory, private).name == "model.sig"
    verify_directory(directory, public)
    _, other_public = generate_keypair(tmp_path / "other")
    with pytest.raises(SignatureError, match="does not match the public key"):
        verify_directory(directory, other_public)
    with pytest.raises(SignatureError, match="has no model.sig"):
        verify_directory(model_dir(tmp_path / "unsigned"), public)


def test_suanli_signature_verifies_with_model_signing_cli(tmp_path, keys):
    private, public = keys
    directory = model_dir(tmp_path / "m")
    sign_directory(directory, private)
    out = subprocess.run([MODEL_SIGNING, "verify", "key", str(directory), "--signature", str(directory / "model.sig"),
                          "--public_key", str(public)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_model_signing_cli_signature_verifies_in_suanli(tmp_path, keys):
    private, public = keys
    directory = model_dir(tmp_path / "m")
    out = subprocess.run([MODEL_SIGNING, "sign", "key", str(directory), "--signature", str(directory / "model.sig"),
                          "--private_key", str(private)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    verify_directory(directory, public)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutation_makes_verification_fail(tmp_path_factory, keys, data):
    private, public = keys
    directory = model_dir(tmp_path_factory.mktemp("mut"))
    sign_directory(directory, private)
    kind = data.draw(st.sampled_from(["flip", "flip-signature", "add", "remove", "truncate"]))
    if kind in ("flip", "flip-signature", "truncate"):
        name = "model.sig" if kind == "flip-signature" else data.draw(st.sampled_from(sorted(FILES)))
        content = bytearray((directory / name).read_bytes())
        if kind == "truncate":
            content = content[: data.draw(st.integers(0, 10**6)) % len(content)]
        else:  # positions drawn from a fixed range: the signature's length varies between signings
            position = data.draw(st.integers(0, 10**6)) % len(content)
            content[position] ^= data.draw(st.integers(1, 255))
        (directory / name).write_bytes(bytes(content))
        expected = name if name != "model.sig" else "model.sig"
    elif kind == "add":
        name = data.draw(st.sampled_from(["extra.bin", "sub/backdoor.onnx", ".hidden"]))
        (directory / name).parent.mkdir(exist_ok=True)
        (directory / name).write_bytes(b"x")
        expected = "not signed"
    else:
        name = data.draw(st.sampled_from(sorted(FILES)))
        (directory / name).unlink()
        expected = f"missing: {name}"
    with pytest.raises(SignatureError) as err:
        verify_directory(directory, public)
    assert expected in str(err.value)


def test_cli_keys_sign_verify(tmp_path):
    runner = CliRunner()
    out = runner.invoke(app, ["keys", "init", "--dir", str(tmp_path / "k")])
    assert out.exit_code == 0 and (tmp_path / "k" / "private.pem").stat().st_mode & 0o777 == 0o600
    directory = model_dir(tmp_path / "m")
    assert runner.invoke(app, ["sign", str(directory), "--key", str(tmp_path / "k" / "private.pem")]).exit_code == 0
    ok = runner.invoke(app, ["verify", str(directory), "--public-key", str(tmp_path / "k" / "public.pem")])
    assert ok.exit_code == 0
    (directory / "metrics.json").write_text('{"auc": 0.99}')
    bad = runner.invoke(app, ["verify", str(directory), "--public-key", str(tmp_path / "k" / "public.pem")])
    assert bad.exit_code == 1 and "changed: metrics.json" in bad.stderr
    again = runner.invoke(app, ["keys", "init", "--dir", str(tmp_path / "k")])
    assert again.exit_code == 2 and "already holds keys" in again.stderr
    wrong_key = runner.invoke(app, ["sign", str(directory), "--key", str(tmp_path / "k" / "public.pem")])
    assert wrong_key.exit_code == 2 and "not a PEM private key" in wrong_key.stderr
