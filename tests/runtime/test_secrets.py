"""The server's secrets store and the cluster registry's tokens (real files, real SQLite), and the
client's reading of --token-file."""

import os
import stat

import pytest

from cluster.federation import check_entry
from runtime.client import read_token_file
from runtime.store import open_store
from runtime.store.clusters import ClusterStore, token_secret
from runtime.store.secrets import SecretError, SecretStore

TOKEN = "0f3c9a2b7d1e4f5a6b7c8d9e0f1a2b3c"


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_secrets_are_stored_by_name_0600_atomically_and_only_by_name(tmp_path):
    store = SecretStore(tmp_path / "secrets")
    assert mode(tmp_path / "secrets") == 0o700
    store.put("cluster/bj-dc1/ray-token", TOKEN)
    store.put("cluster/bj-dc1/ray-token", TOKEN + "2")  # replaced, not appended
    assert store.get("cluster/bj-dc1/ray-token") == TOKEN + "2" and store.names() == ["cluster/bj-dc1/ray-token"]
    files = list((tmp_path / "secrets").iterdir())
    assert len(files) == 1 and mode(files[0]) == 0o600 and files[0].parent == tmp_path / "secrets"
    assert store.get("cluster/sh/ray-token") is None
    for name in ("../admin.token", "/etc/passwd", "cluster/../../x", "Cluster/X", "", "a/b/c/d/e", "cluster/.hidden"):
        with pytest.raises(ValueError, match="^secret name"):
            store.get(name)
        with pytest.raises(ValueError, match="^secret name"):
            store.put(name, TOKEN)
    assert store.delete("cluster/bj-dc1/ray-token") and not store.delete("cluster/bj-dc1/ray-token")
    assert store.names() == []


def test_a_planted_symlink_or_oversize_file_is_refused_without_its_content(tmp_path):
    store = SecretStore(tmp_path / "secrets")
    target = tmp_path / "admin.token"
    target.write_text("the-admin-token")
    os.symlink(target, tmp_path / "secrets" / "cluster%2Fbj%2Fray-token")
    with pytest.raises(SecretError, match="^secret cluster/bj/ray-token: cannot be opened") as refused:
        store.get("cluster/bj/ray-token")
    assert "the-admin-token" not in str(refused.value)
    store.put("cluster/bj/ray-token", TOKEN)  # storing again replaces the link by a file of the store's own
    assert store.get("cluster/bj/ray-token") == TOKEN and target.read_text() == "the-admin-token"
    (tmp_path / "secrets" / "cluster%2Fsh%2Fray-token").write_bytes(b"x" * 20000)
    with pytest.raises(SecretError, match="not a regular file of at most"):
        store.get("cluster/sh/ray-token")
    with pytest.raises(SecretError, match="a value of 1 to"):
        store.put("cluster/sh/ray-token", "")


def test_a_clusters_token_lives_and_dies_with_its_entry(tmp_path):
    secrets = SecretStore(tmp_path / "state" / "secrets")
    registry = ClusterStore(open_store(tmp_path / "state").db, secrets)
    entry = check_entry("bj", "http://127.0.0.1:8265", None, "center", None)
    added = registry.add(entry, TOKEN, "admin")
    assert added.token_secret == token_secret("bj") == "cluster/bj/ray-token" and registry.token("bj") == TOKEN
    with pytest.raises(ValueError, match="^name: a cluster named 'bj' is already registered"):
        registry.add(entry, "another-token", "mallory")
    assert registry.token("bj") == TOKEN  # the refused registration touched nothing
    assert registry.remove("bj") and registry.token("bj") is None and secrets.names() == []
    secrets.put(token_secret("sh"), "left-over")  # e.g. a crash between the row's removal and the secret's
    plain = registry.add(check_entry("sh", "http://127.0.0.1:8266", None, "center", None), None, "admin")
    assert plain.token_secret is None and registry.token("sh") is None


def test_the_token_file_is_read_on_the_client_and_must_be_one_line(tmp_path):
    good = tmp_path / "token"
    good.write_text(TOKEN + "\n")
    assert read_token_file(good) == TOKEN
    (tmp_path / "two").write_text(f"{TOKEN}\nsecond line of something else\n")
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "binary").write_bytes(b"\xff\xfe" + TOKEN.encode())
    (tmp_path / "huge").write_bytes(b"x" * 70000)
    expected = {"missing": "does not exist", "two": "is not a single line (2 lines)", "empty": "is empty",
                "binary": "is not text", "huge": "is larger than 64 KiB", ".": "is a directory"}
    for name, said in expected.items():
        path = tmp_path / name if name != "." else tmp_path
        with pytest.raises(ValueError) as refused:
            read_token_file(path)
        message = str(refused.value)
        assert message.startswith(f"--token-file {path}: {said}"), message
        assert "ray get-auth-token" in message and "second line" not in message and TOKEN not in message
