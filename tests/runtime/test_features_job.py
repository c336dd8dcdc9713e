"""Feature jobs through the control plane on the emulated demo cluster (2 GPU nodes and an NPU node
at dc1, a CPU edge node at branch-sh), as a user runs them with `suanli features`: a 10k-event
input at branch-sh is placed on the edge CPU beside it, a 5M-event input at dc1 on a (logical)
GPU node, each for the reason the placement states; both outputs equal the references."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from benchmarks._reference import pandas_sliding_window, polars_sliding_window
from tests.conftest import DEMO_EMULATION

pytestmark = pytest.mark.ray
WINDOWS = (60.0, 3600.0, 86400.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from runtime.server.local import start_server

    state = tmp_path_factory.mktemp("state")
    data_dir = tmp_path_factory.mktemp("data")
    (data_dir / "default").mkdir()  # the admin's tenant's data root
    proc, url = start_server(state, "--emulate", str(DEMO_EMULATION), "--data-dir", str(data_dir))
    yield url, (state / "admin.token").read_text().strip(), data_dir / "default"
    proc.terminate()
    proc.wait(timeout=120)


def events(n, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"ts": np.sort(rng.uniform(0, 7 * 86400, n)).round(3),
                         "card": rng.integers(0, max(2, n // 20), n), "merchant": rng.integers(0, 50, n),
                         "amount": rng.lognormal(3, 1, n).round(2)})


def run_features(url, token, spec_path):
    from runtime.cli.main import app

    env = {"SUANLI_SERVER": url, "SUANLI_TOKEN": token, "SUANLI_CONFIG": ""}
    out = CliRunner().invoke(app, ["features", str(spec_path), "--wait", "--timeout", "600"], env=env)
    assert out.exit_code == 0, out.stdout + out.stderr
    return out.stdout


def placement_of(url, token, stdout):
    import httpx

    job_id = stdout.split()[1].rstrip(":")
    info = httpx.get(f"{url}/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"}).json()
    return info["result"]["placement"], info["result"]


def test_a_small_input_runs_on_the_cpu_at_its_site(server):
    url, token, data = server
    frame = events(10_000, 1)
    frame.to_csv(data / "small.csv", index=False)
    (data / "small.yaml").write_text(
        "name: small-features\ninput: small.csv\nkeys: [card, merchant]\ntime_column: ts\namount_column: amount\n"
        "output: small-out.parquet\ndata_site: branch-sh\n")
    stdout = run_features(url, token, data / "small.yaml")
    assert "placed on cpu(" in stdout and "at branch-sh (edge)" in stdout and "data at branch-sh" in stdout
    placement, result = placement_of(url, token, stdout)
    assert placement["kind"] == "cpu" and result["rows"] == 10_000
    out = pd.read_parquet(data / "small-out.parquet")
    assert list(out.columns[:4]) == ["ts", "card", "merchant", "amount"]
    for key in ("card", "merchant"):
        for w in WINDOWS:
            ref = pandas_sliding_window(frame["ts"].to_numpy(), frame[key].to_numpy(), frame["amount"].to_numpy(), w)
            np.testing.assert_array_equal(out[f"{key}_count_{w:g}s"], ref["count"].to_numpy())
            np.testing.assert_array_equal(out[f"{key}_max_{w:g}s"], ref["max"].to_numpy())
            np.testing.assert_allclose(out[f"{key}_sum_{w:g}s"], ref["sum"].to_numpy(), rtol=1e-9)


def test_a_large_input_runs_on_a_gpu_node_beside_it(server):
    url, token, data = server
    frame = events(5_000_000, 2)[["ts", "card", "amount"]]
    frame.to_parquet(data / "large.parquet", index=False)
    (data / "large.yaml").write_text(
        "name: large-features\ninput: large.parquet\nkeys: [card]\ntime_column: ts\namount_column: amount\n"
        "output: large-out.parquet\ndata_site: dc1\nstatistics: [count, sum, max]\n")
    stdout = run_features(url, token, data / "large.yaml")
    assert "placed on gpu(A100)" in stdout and "at dc1 (center)" in stdout
    placement, result = placement_of(url, token, stdout)
    assert placement["kind"] == "gpu" and placement["compute_s"] < 1 and result["rows"] == 5_000_000
    assert "emulated" in result["device"]  # a logical GPU: the kernel's CPU path ran there, and says so
    out = pd.read_parquet(data / "large-out.parquet")
    assert not any(c.startswith("card_mean") for c in out.columns)  # only the statistics asked for
    ref = polars_sliding_window(frame["ts"].to_numpy(), frame["card"].to_numpy(), frame["amount"].to_numpy(), WINDOWS)
    for w in WINDOWS:
        np.testing.assert_array_equal(out[f"card_count_{w:g}s"].to_numpy(), ref[f"count_{w:g}s"])
        np.testing.assert_array_equal(out[f"card_max_{w:g}s"].to_numpy(), ref[f"max_{w:g}s"])
        np.testing.assert_allclose(out[f"card_sum_{w:g}s"].to_numpy(), ref[f"sum_{w:g}s"], rtol=1e-9)


def test_bad_feature_specs_name_the_field(server):
    from runtime.cli.main import app

    url, token, data = server
    env = {"SUANLI_SERVER": url, "SUANLI_TOKEN": token, "SUANLI_CONFIG": ""}
    events(100, 3).to_csv(data / "tiny.csv", index=False)
    cases = {"keys: [iban]\n": "keys: column 'iban' is not in tiny.csv",
             "keys: [card]\noutput: out.csv\n": "output: must be a .parquet file",
             "keys: [card]\nwindows_s: [0]\n": "windows_s"}
    for extra, message in cases.items():
        spec = data / "bad.yaml"
        body = "name: bad\ninput: tiny.csv\ntime_column: ts\namount_column: amount\n" + extra
        if "output" not in extra:
            body += "output: out.parquet\n"
        spec.write_text(body)
        out = CliRunner().invoke(app, ["features", str(spec)], env=env)
        assert out.exit_code == 2 and message in out.stderr, (extra, out.stderr)
    listed = json.loads(CliRunner().invoke(app, ["jobs", "--json"], env=env).stdout)
    assert not any(j["name"] == "bad" for j in listed)  # nothing refused was stored


def submit_features(url, token, **spec):
    import httpx

    body = {"kind": "features", "spec": {"name": "paths", "keys": ["card"], "time_column": "ts",
                                         "amount_column": "amount", **spec}}
    return httpx.post(f"{url}/jobs", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_feature_jobs_stay_in_their_tenants_data_root(server):
    url, token, data = server
    other = data.parent / "cards"  # another tenant's data root beside ours
    other.mkdir(exist_ok=True)
    events(50, 4).to_csv(other / "theirs.csv", index=False)
    events(50, 5).to_csv(data / "ours.csv", index=False)
    (other / "theirs.parquet").write_bytes(b"their output")
    (data / "kept.parquet").write_bytes(b"an earlier output")
    (data / "link.csv").symlink_to(other / "theirs.csv")  # a link inside our root into theirs
    (data / "out-link.parquet").symlink_to(other / "theirs.parquet")
    (data / "subdir").symlink_to(other, target_is_directory=True)
    ours, out = str(data / "ours.csv"), str(data / "new.parquet")
    cases = [
        ({"input": str(other / "theirs.csv"), "output": out}, 403, "input: ", "tenant 'cards''s data root"),
        ({"input": str(data / "link.csv"), "output": out}, 403, "input: ", "tenant 'cards''s data root"),
        ({"input": ours, "output": str(other / "mine.parquet")}, 403, "output: ", f"use a file under {data}/"),
        ({"input": ours, "output": str(data / "subdir" / "mine.parquet")}, 403, "output: ", "tenant 'cards'"),
        ({"input": ours, "output": str(other / "theirs.parquet")}, 403, "output: ", "tenant 'cards'"),
        ({"input": ours, "output": str(data / "kept.parquet")}, 409, "output: ", "outputs never overwrite"),
        ({"input": ours, "output": str(data / "out-link.parquet")}, 409, "output: ", "symbolic link"),
        ({"input": f"{data}/../cards/theirs.csv", "output": out}, 422, "input: ", "holds '..'"),
        ({"input": "/etc/passwd", "output": out}, 403, "input: ", f"outside tenant 'default''s data root {data}"),
        ({"input": "s3://bucket/ours.csv", "output": out}, 422, "input: ", "copy the data there"),
        ({"input": ours, "output": out, "tenant": "../cards"}, 403, "", "submit for tenant"),
    ]
    for spec, status, field, message in cases:
        answer = submit_features(url, token, **spec)
        if spec.get("tenant"):  # the admin may name another tenant: the name itself is checked
            assert answer.status_code == 422 and answer.json()["detail"].startswith("tenant: '../cards' is not"), \
                answer.text
            continue
        detail = answer.json()["detail"]
        assert answer.status_code == status and detail.startswith(field) and message in detail, (spec, answer.text)
    assert (other / "theirs.parquet").read_bytes() == b"their output"  # nothing written anywhere
    assert (data / "kept.parquet").read_bytes() == b"an earlier output"
    assert sorted(p.name for p in other.iterdir()) == ["theirs.csv", "theirs.parquet"]
    accepted = submit_features(url, token, input=ours, output=out)
    assert accepted.status_code == 201, accepted.text


def test_without_a_data_dir_feature_jobs_are_refused_naming_the_setting(tmp_path):
    from runtime.data.roots import DataPathError
    from runtime.features import feature_paths
    from runtime.specs import FeatureJob

    events(10, 6).to_csv(tmp_path / "in.csv", index=False)
    job = FeatureJob(name="x", input=str(tmp_path / "in.csv"), keys=["card"], time_column="ts",
                     amount_column="amount", output=str(tmp_path / "out.parquet"))
    with pytest.raises(DataPathError, match="input: this server has no --data-dir") as refused:
        feature_paths(job, [])
    assert refused.value.status == 422 and "start it with --data-dir DIR" in str(refused.value)


def test_an_output_written_or_a_link_swapped_in_after_admission_is_not_overwritten(tmp_path):
    from runtime.data.roots import DataPathError, open_input, publish_output

    root, elsewhere = tmp_path / "data" / "risk", tmp_path / "elsewhere"
    root.mkdir(parents=True)
    elsewhere.mkdir()
    assert publish_output(root / "a.parquet", root, lambda f: f.write(b"new")).read_bytes() == b"new"
    (root / "b.parquet").write_bytes(b"someone else's")  # appeared between admission and the run
    with pytest.raises(DataPathError, match="outputs never overwrite"):
        publish_output(root / "b.parquet", root, lambda f: f.write(b"ours"))
    assert (root / "b.parquet").read_bytes() == b"someone else's"
    (root / "out").symlink_to(elsewhere, target_is_directory=True)  # the output's folder swapped for a link
    with pytest.raises(DataPathError, match="outside the data root"):
        publish_output(root / "out" / "c.parquet", root, lambda f: f.write(b"ours"))
    assert list(elsewhere.iterdir()) == []
    (elsewhere / "secret.csv").write_text("x\n1\n")
    (root / "in.csv").symlink_to(elsewhere / "secret.csv")  # the input swapped for a link out
    with pytest.raises(DataPathError, match="outside the data root"):
        open_input(root / "in.csv", root)
    assert sorted(p.name for p in root.iterdir()) == ["a.parquet", "b.parquet", "in.csv", "out"]  # no partial left


def test_s3_endpoints_come_from_the_allow_list():
    from runtime.data.roots import DataPathError, check_remote_uri

    allowed = ["https://minio.bank.internal:9000", "aws"]
    assert check_remote_uri("s3://risk/tx.parquet", allowed, "dataset") == "s3://risk/tx.parquet"
    assert check_remote_uri("s3://risk/tx?endpoint_override=minio.bank.internal:9000", allowed, "dataset")
    for uri, status, message in [
            ("s3://risk/tx?endpoint_override=evil.example:9000", 403, "S3 endpoint https://evil.example:9000 is not in"),
            ("s3://risk/tx?endpoint_override=minio.bank.internal:9000&scheme=http", 403, "http://minio.bank.internal"),
            ("s3://key:secret@risk/tx", 422, "carries credentials"),
            ("gs://risk/tx", 422, "gs:// scheme is not read")]:
        with pytest.raises(DataPathError, match=message) as refused:
            check_remote_uri(uri, allowed, "dataset")
        assert refused.value.status == status and str(refused.value).startswith("dataset: ")
        assert "secret" not in str(refused.value)
    with pytest.raises(DataPathError, match=r"allow-list \(none\).*--s3-endpoint"):
        check_remote_uri("s3://risk/tx.parquet", [], "dataset")
