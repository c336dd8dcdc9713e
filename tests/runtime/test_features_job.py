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
    proc, url = start_server(state, "--emulate", str(DEMO_EMULATION))
    yield url, (state / "admin.token").read_text().strip(), tmp_path_factory.mktemp("data")
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
