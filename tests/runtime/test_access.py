"""Access control and the audit log on a real server (over a one-node emulated cluster it starts
itself): every route of /openapi.json without a token, with an expired or revoked token, and with
each role, against the permission table; another user's job; the actor recorded; the audit log
of the session verifies, and a flipped byte is named by `suanli audit verify`."""

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from runtime.server.auth import PERMISSIONS, ROLES
from tests.conftest import REPO, shared_path

pytestmark = pytest.mark.ray

# Every route and what it needs: a permission, "any" (a valid token), or "jobs:<action>" scoped
# by ownership. A route missing here fails the test, so no new route escapes the matrix.
ROUTES = {
    ("GET", "/openapi.json"): "any", ("GET", "/docs"): "any", ("GET", "/docs/oauth2-redirect"): "any",
    ("GET", "/redoc"): "any", ("GET", "/whoami"): "any", ("POST", "/tokens"): "any",
    ("GET", "/metrics"): "metrics:read", ("POST", "/jobs"): "jobs:submit", ("GET", "/jobs"): "jobs:read",
    ("GET", "/jobs/{job_id}"): "jobs:read", ("GET", "/jobs/{job_id}/events"): "jobs:read",
    ("GET", "/jobs/{job_id}/logs"): "jobs:read", ("GET", "/jobs/{job_id}/provenance"): "jobs:read",
    ("GET", "/jobs/{job_id}/checkpoints"): "jobs:read", ("GET", "/jobs/{job_id}/placement"): "jobs:read",
    ("POST", "/jobs/{job_id}/cancel"): "jobs:cancel", ("GET", "/capacity"): "capacity:read",
    ("POST", "/users"): "users:manage", ("GET", "/users"): "users:manage",
    ("POST", "/users/{name}/revoke"): "users:manage", ("POST", "/tokens/{token_id}/revoke"): "own-token",
    ("GET", "/audit/tail"): "audit:read", ("GET", "/audit/verify"): "audit:read",
    ("POST", "/audit/events"): "any",  # the event's own permission is checked in the handler (below)
    ("GET", "/quotas"): "capacity:read", ("PUT", "/quotas/{scope}/{name}"): "users:manage",
    ("POST", "/deployments"): "models:deploy", ("GET", "/deployments"): "models:deploy",
    ("DELETE", "/deployments/{name}"): "models:deploy",
    ("POST", "/clusters"): "clusters:manage", ("GET", "/clusters"): "capacity:read",
    ("DELETE", "/clusters/{name}"): "clusters:manage", ("GET", "/ui/state"): "capacity:read",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from runtime.server.local import start_server

    state = tmp_path_factory.mktemp("state")
    emulation = state / "one.yaml"
    emulation.write_text("name: acl\nnodes:\n  - {tier: center, site: dc1, count: 1, cpu: 1}\n")
    proc, url = start_server(state, "--emulate", str(emulation))
    admin = (state / "admin.token").read_text().strip()
    assert (state / "admin.token").stat().st_mode & 0o777 == 0o600 and state.stat().st_mode & 0o777 == 0o700
    yield url, state, admin
    proc.terminate()
    proc.wait(timeout=120)


def call(url, method, path, token=None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, url + path, headers=headers, json=body, timeout=30)


@pytest.fixture(scope="module")
def people(server):
    """One user per role (tenant risk), a second algorithm engineer (bob), and alice's job."""
    url, _, admin = server
    tokens = {}
    for role in ROLES:
        name = {"algorithm-engineer": "alice"}.get(role, role.replace("-", ""))
        if role == "admin":
            tokens[role] = admin
            continue
        r = call(url, "POST", "/users", admin, {"name": name, "role": role, "tenant": "risk"})
        assert r.status_code == 201, r.text
        tokens[role] = r.json()["token"]
    r = call(url, "POST", "/users", admin, {"name": "bob", "role": "algorithm-engineer", "tenant": "risk"})
    tokens["bob"] = r.json()["token"]
    body = {"spec": {"name": "alices", "dataset": str(shared_path("credit", "australian_credit.csv")),
                     "label": "class", "device": "cpu", "epochs": 1, "hidden": [8], "user": "mallory"}}
    r = call(url, "POST", "/jobs", tokens["algorithm-engineer"], body)
    assert r.status_code == 201, r.text
    return tokens, r.json()["id"]


def allowed(role, need):
    if need == "any":
        return True
    if need == "own-token":  # the route is called with a token id that is not the caller's
        return role == "admin"
    if need.startswith("jobs:") and need != "jobs:submit":
        action = need.split(":")[1]
        return any(f"jobs:{action}:{scope}" in PERMISSIONS[role] for scope in ("all", "tenant", "own"))
    return need in PERMISSIONS[role]


def concrete(path, job_id, token_id):
    return (path.replace("{job_id}", job_id).replace("{name}", "nobody").replace("{token_id}", token_id)
            .replace("{scope}", "planet"))


def test_every_route_against_the_permission_table(server, people):
    url, _, admin = server
    tokens, job_id = people
    spec = call(url, "GET", "/openapi.json", admin).json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops} | {
        ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc")}
    routes.discard(("GET", "/healthz"))
    assert routes == set(ROUTES), routes ^ set(ROUTES)
    expired = call(url, "POST", "/tokens", tokens["auditor"], {"expires_s": 0.5}).json()["token"]
    revoked = call(url, "POST", "/tokens", tokens["auditor"], {}).json()
    assert call(url, "POST", f"/tokens/{revoked['id']}/revoke", tokens["auditor"]).status_code == 200
    time.sleep(2.5)  # past the expiry, and past the server's identity cache
    results = []
    for (method, path), need in sorted(ROUTES.items()):
        target = concrete(path, job_id, "0000")
        for label, token in (("none", None), ("expired", expired), ("revoked", revoked["token"]),
                             ("garbage", "sl_x_y")):
            status = call(url, method, target, token, {} if method in ("POST", "PUT") else None).status_code
            results.append((method, path, label, status, 401))
        for role in ROLES:
            status = call(url, method, target, tokens[role], {} if method in ("POST", "PUT") else None).status_code
            if allowed(role, need):
                results.append((method, path, role, status, "not 401/403") if status in (401, 403) else None)
            else:
                results.append((method, path, role, status, 403))
    wrong = [r for r in results if r is not None and r[3] != r[4]]
    assert wrong == [], wrong
    r = call(url, "POST", "/jobs", tokens["business-analyst"], {"spec": {"name": "x"}})
    assert r.status_code == 403 and "business-analyst" in r.json()["detail"]


def test_another_users_job_is_refused_and_audited(server, people):
    url, state, admin = server
    tokens, job_id = people
    assert call(url, "GET", f"/jobs/{job_id}", tokens["algorithm-engineer"]).json()["user"] == "alice"  # not mallory
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/logs", f"/jobs/{job_id}/events"):
        assert call(url, "GET", path, tokens["bob"]).status_code == 403
    r = call(url, "POST", f"/jobs/{job_id}/cancel", tokens["bob"], {})
    assert r.status_code == 403 and "bob" in r.json()["detail"]
    assert [j["id"] for j in call(url, "GET", "/jobs", tokens["bob"]).json()] == []  # bob sees only his own
    assert job_id in [j["id"] for j in call(url, "GET", "/jobs", tokens["data-engineer"]).json()]  # same tenant
    other = call(url, "POST", "/jobs", tokens["bob"], {"spec": {"name": "x", "tenant": "cards"}})
    assert other.status_code == 403 and "tenant 'cards'" in other.json()["detail"]
    body = {"spec": {"name": "alices-second", "dataset": str(shared_path("credit", "australian_credit.csv")),
                     "label": "class", "device": "cpu", "epochs": 1, "hidden": [8]}}
    second = call(url, "POST", "/jobs", tokens["algorithm-engineer"], body).json()["id"]
    assert call(url, "POST", f"/jobs/{second}/cancel", tokens["bob"], {}).status_code == 403
    assert call(url, "POST", f"/jobs/{second}/cancel", tokens["algorithm-engineer"], {}).status_code == 200
    tail = call(url, "GET", "/audit/tail?n=2000", tokens["auditor"]).json()
    refused = [r for r in tail if r["type"] == "request-refused" and r["actor"] == "bob"]
    assert any(r["detail"]["path"] == f"/jobs/{second}/cancel" and r["detail"]["status"] == 403 for r in refused)
    cancels = [r for r in tail if r["type"] == "job-cancel-requested"]
    assert cancels and cancels[-1]["actor"] == "alice"
    assert any(r["type"] == "login" and r["actor"] == "bob" for r in tail)
    assert any(r["type"] == "user-added" and r["detail"]["user"] == "bob" for r in tail)
    revoked = call(url, "POST", "/users/bob/revoke", admin, {})
    assert revoked.status_code == 200
    time.sleep(0.1)
    assert call(url, "GET", "/whoami", tokens["bob"]).status_code == 401


def test_the_audit_log_of_the_session_verifies_and_a_flipped_byte_is_named(server, tmp_path):
    import shutil

    url, state, admin = server
    assert call(url, "GET", "/audit/verify", admin).json()["ok"] is True
    copy = tmp_path / "state"
    shutil.copytree(state / "audit", copy / "audit")
    pinned = shutil.copy(state / "audit" / "audit-key.pub.pem", tmp_path / "pinned.pem")

    def verify():
        return subprocess.run([sys.executable, "-m", "runtime.cli.main", "audit", "verify", "--state-dir", str(copy),
                               "--public-key", str(pinned), "--no-store"],  # the live store's head moves on
                              capture_output=True, text=True, cwd=REPO, timeout=120)

    out = verify()
    assert out.returncode == 0 and "audit log OK" in out.stdout, out.stderr
    segment = sorted((copy / "audit").glob("audit-*.jsonl"))[0]
    lines = segment.read_bytes().splitlines()
    record = json.loads(lines[2])
    data = bytearray(segment.read_bytes())
    offset = sum(len(line) + 1 for line in lines[:2]) + lines[2].index(b'"actor":"') + 9
    data[offset] ^= 0x01
    segment.write_bytes(bytes(data))
    out = verify()
    assert out.returncode == 1 and f"FAILED at record {record['seq']}" in out.stderr, out.stderr


def test_a_job_over_its_quota_waits_with_the_quota_named(server, people):
    from typer.testing import CliRunner

    from runtime.cli.main import app

    url, state, admin = server
    tokens, _ = people
    env = {"SUANLI_SERVER": url, "SUANLI_TOKEN": admin, "SUANLI_CONFIG": ""}
    runner = CliRunner()
    out = runner.invoke(app, ["quota", "set", "--tenant", "risk", "--cpu", "0", "--jobs", "3"], env=env)
    assert out.exit_code == 0 and "tenant:risk" in out.stdout, out.stdout + out.stderr
    body = {"spec": {"name": "capped", "dataset": str(shared_path("credit", "australian_credit.csv")),
                     "label": "class", "device": "cpu", "epochs": 1, "hidden": [8]}}
    job_id = call(url, "POST", "/jobs", tokens["algorithm-engineer"], body).json()["id"]
    deadline = time.time() + 60
    while "quota tenant:risk allows 0 cpu" not in call(url, "GET", f"/jobs/{job_id}/logs", admin).text:
        assert time.time() < deadline, call(url, "GET", f"/jobs/{job_id}/logs", admin).text
        time.sleep(0.5)
    assert call(url, "GET", f"/jobs/{job_id}", admin).json()["state"] == "QUEUED"
    listed = json.loads(runner.invoke(app, ["quota", "list", "--json"], env=env).stdout)
    [risk] = [q for q in listed if q["key"] == "tenant:risk"]
    assert risk["limits"] == {"cpu": 0.0, "jobs": 3}  # in use: earlier jobs of risk that are still stopping, if any
    assert set(risk["used"]) == {"cpu", "jobs"} and risk["used"]["cpu"] == risk["used"]["jobs"]
    assert "tenant:risk" in runner.invoke(app, ["capacity"], env=env).stdout
    bad = runner.invoke(app, ["quota", "set", "--tenant", "risk", "--gpu", "-1"], env=env)
    assert bad.exit_code == 2 and "gpu" in bad.stderr
    call(url, "POST", f"/jobs/{job_id}/cancel", admin, {})
    assert runner.invoke(app, ["quota", "set", "--tenant", "risk"], env=env).exit_code == 0  # removed
    assert call(url, "GET", "/quotas", admin).json() == []


def test_artifact_events_reach_the_audit_log_as_the_caller(server, people, tmp_path):
    from runtime.artifacts.signing import SignatureError
    from runtime.client import Client, SpecError

    url, _, admin = server
    tokens, _ = people
    with Client(address=url, token=tokens["algorithm-engineer"]) as alice:
        registry = alice.registry(tmp_path / "registry")
        (tmp_path / "unsigned").mkdir()
        (tmp_path / "unsigned" / "model.onnx").write_bytes(b"not a model")
        with pytest.raises(SignatureError, match="unsigned models are never loaded"):
            registry.register(tmp_path / "unsigned", "fraud", "typed-name")
        alice.report("artifact-signed", job="j1")
    with Client(address=url, token=tokens["business-analyst"]) as analyst:
        with pytest.raises(SpecError, match="artifacts:register"):
            analyst.report("artifact-signed", job="j1")
    tail = call(url, "GET", "/audit/tail?n=200", admin).json()
    failed = [r for r in tail if r["type"] == "artifact-verify-failed"]
    assert failed and failed[-1]["actor"] == "alice" and failed[-1]["level"] == "error"  # not "typed-name"
    assert "unsigned models are never loaded" in failed[-1]["detail"]["detail"]
    assert any(r["type"] == "artifact-signed" and r["actor"] == "alice" for r in tail)
    assert not any(r["type"] == "artifact-signed" and r["actor"] == "businessanalyst" for r in tail)


def test_accounts_from_the_command_line(server):
    from typer.testing import CliRunner

    from runtime.cli.main import app

    url, _, admin = server
    runner = CliRunner()
    env = {"SUANLI_SERVER": url, "SUANLI_TOKEN": admin, "SUANLI_CONFIG": ""}
    added = runner.invoke(app, ["users", "add", "carol", "--role", "auditor", "--tenant", "cards"], env=env)
    assert added.exit_code == 0, added.stdout + added.stderr
    carol = added.stdout.strip().splitlines()[-1]
    assert carol.startswith("sl_")
    listed = json.loads(runner.invoke(app, ["users", "list", "--json"], env=env).stdout)
    assert {"name": "carol", "role": "auditor", "tenant": "cards"}.items() <= next(
        u for u in listed if u["name"] == "carol").items()
    own = runner.invoke(app, ["token", "create", "--expires", "1h"], env={**env, "SUANLI_TOKEN": carol})
    assert own.exit_code == 0 and own.stdout.strip().splitlines()[-1].startswith("sl_")
    token_id = own.stdout.split()[1]
    assert runner.invoke(app, ["token", "revoke", token_id], env={**env, "SUANLI_TOKEN": carol}).exit_code == 0
    bad = runner.invoke(app, ["users", "add", "dave", "--role", "root"], env=env)
    assert bad.exit_code == 2 and "role: 'root' is not one of" in bad.stderr
    bad = runner.invoke(app, ["token", "create", "--expires", "soon"], env=env)
    assert bad.exit_code == 2 and "--expires" in bad.stderr
    denied = runner.invoke(app, ["users", "list"], env={**env, "SUANLI_TOKEN": carol})
    assert denied.exit_code == 2 and "may not users:manage" in denied.stderr
    assert runner.invoke(app, ["users", "revoke", "carol"], env=env).exit_code == 0
    time.sleep(2.1)  # past the identity cache
    assert "revoked token" in runner.invoke(app, ["jobs"], env={**env, "SUANLI_TOKEN": carol}).stderr


def test_schemathesis_finds_no_server_error(server):
    """A bounded property-based run over every operation of /openapi.json: no 5xx, whatever it
    sends. (An admin cannot revoke themselves, so the run keeps its token to the end.)"""
    import shutil

    url, _, admin = server
    me = call(url, "GET", "/whoami", admin).json()["name"]
    assert call(url, "POST", f"/users/{me}/revoke", admin, {}).status_code == 409
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    out = subprocess.run([st, "run", f"{url}/openapi.json", "-H", f"Authorization: Bearer {admin}", "-n", "15",
                          "-c", "not_a_server_error", "--phases", "examples,fuzzing", "--seed", "20261122"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]
    assert " passed" in out.stdout and "failed" not in out.stdout.split("Test cases:")[-1]
    assert call(url, "GET", "/whoami", admin).status_code == 200


def test_oversized_bodies_are_refused_and_a_tampered_live_log_is_reported(server):
    url, state, admin = server
    big = httpx.post(url + "/jobs", headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
                     content=b"{" + b" " * (33 * 2**20) + b"}", timeout=60)
    assert big.status_code == 413 and "body" in big.json()["detail"]
    assert httpx.get(url + "/healthz").json()["audit_chain_ok"] is True
    call(url, "GET", "/audit/verify", admin)  # a checkpoint now covers every record so far
    segment = sorted((state / "audit").glob("audit-*.jsonl"))[0]
    data = bytearray(segment.read_bytes())
    data[data.index(b'"actor":"') + 9] ^= 0x01  # the first record's actor, edited in place
    segment.write_bytes(bytes(data))
    verdict = call(url, "GET", "/audit/verify", admin).json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] == 1
    assert httpx.get(url + "/healthz").json()["audit_chain_ok"] is False
    metrics = call(url, "GET", "/metrics", admin).text
    assert "suanli_audit_chain_ok 0.0" in metrics
    assert 'suanli_devices{cluster="acl"' in metrics  # capacity, refreshed by the server itself
