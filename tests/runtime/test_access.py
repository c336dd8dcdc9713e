"""Access control and the audit log on a real server (over a one-node emulated cluster it starts
itself): every route of /openapi.json without a token, with an expired or revoked token, and with
each role, against the permission table; another user's job; the actor recorded; the audit log
of the session verifies, and a flipped byte is named by `suanli audit verify`. Identity-provider
(JWT) users are not the local users of the same name; registry stage changes are made by the
server as the caller; feature jobs and datasets reach no file or endpoint the server was not given."""

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from runtime.server.auth import PERMISSIONS, ROLES
from tests.conftest import REPO, shared_path
from tests.runtime.test_artifacts import keys, make_artifact, trained  # noqa: F401 - fixtures

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
    ("POST", "/registry/{action}"): "artifacts:promote",  # called as /registry/promote; withdraw is tested below
    ("POST", "/deployments/{name}/token"): "endpoints:score",
}
ISSUER = "https://idp.bank.example"


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    """A bank's identity provider: its ES256 key (the server is given the public half)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = tmp_path_factory.mktemp("idp") / "idp.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, public


def idp_token(idp, sub, role, tenant="risk", **extra):
    import jwt

    claims = {"sub": sub, "iss": ISSUER, "aud": "suanli", "exp": time.time() + 300, "suanli_role": role,
              "suanli_tenant": tenant, **extra}
    return jwt.encode(claims, idp[0], algorithm="ES256")


@pytest.fixture(scope="module")
def server(tmp_path_factory, idp, keys):  # noqa: F811
    from runtime.server.local import start_server

    state = tmp_path_factory.mktemp("state")
    emulation = state / "one.yaml"
    emulation.write_text("name: acl\nnodes:\n  - {tier: center, site: dc1, count: 1, cpu: 1}\n")
    (state / "signing").mkdir()  # the artifacts' trusted key, pinned in the server's own state directory
    (state / "signing" / "trusted-public.pem").write_bytes(keys[1].read_bytes())
    proc, url = start_server(state, "--emulate", str(emulation), "--jwt-public-key", str(idp[1]),
                             "--jwt-issuer", ISSUER)
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
            .replace("{scope}", "planet").replace("{action}", "promote"))


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


def test_a_jwt_is_never_the_local_user_of_the_same_name(server, people, idp):
    url, state, admin = server
    tokens, job_id = people  # alice's job
    as_alice = idp_token(idp, "alice", "algorithm-engineer")
    who = call(url, "GET", "/whoami", as_alice).json()
    assert who["name"] == f"jwt:{ISSUER}/alice" and who["role"] == "algorithm-engineer" and who["tenant"] == "risk"
    assert call(url, "GET", f"/jobs/{job_id}", as_alice).status_code == 403  # not alice's to read
    assert call(url, "POST", f"/jobs/{job_id}/cancel", as_alice, {}).status_code == 403
    assert job_id not in [j["id"] for j in call(url, "GET", "/jobs", as_alice).json()]
    for body in ({}, {"user": "alice"}):  # no local token, neither in its own name nor in alice's
        minted = call(url, "POST", "/tokens", as_alice, body)
        assert minted.status_code == 403 and "a JWT identity: get tokens from your identity provider" in \
            minted.json()["detail"], minted.text
    local_admin = call(url, "GET", "/whoami", admin).json()["name"]
    as_admin = idp_token(idp, local_admin, "admin", tenant="default")  # an admin JWT named like the local admin
    assert call(url, "GET", "/whoami", as_admin).json()["name"] == f"jwt:{ISSUER}/{local_admin}"
    for body in ({}, {"user": "alice"}, {"user": local_admin}):
        assert call(url, "POST", "/tokens", as_admin, body).status_code == 403
    bad_tenant = call(url, "GET", "/whoami", idp_token(idp, "eve", "auditor", tenant="../cards"))
    assert bad_tenant.status_code == 401 and "suanli_tenant '../cards' is not a tenant name" in bad_tenant.text
    r = call(url, "POST", "/users", admin, {"name": "jwt:x/alice", "role": "auditor"})
    assert r.status_code == 422 and r.json()["detail"].startswith("name:")  # the namespace is not a local name
    tail = call(url, "GET", "/audit/tail?n=500", admin).json()
    refused = [r for r in tail if r["type"] == "request-refused" and r["detail"]["path"] == "/tokens"]
    assert {r["actor"] for r in refused} >= {f"jwt:{ISSUER}/alice", f"jwt:{ISSUER}/{local_admin}"}
    assert not [r for r in tail if r["type"] == "token-created" and r["actor"].startswith("jwt:")]


def test_feature_jobs_and_datasets_reach_no_file_or_endpoint_the_server_was_not_given(server, tmp_path):
    url, _, admin = server
    (tmp_path / "in.csv").write_text("ts,card,amount\n1,1,2.0\n")
    body = {"kind": "features", "spec": {"name": "f", "input": str(tmp_path / "in.csv"), "keys": ["card"],
                                         "time_column": "ts", "amount_column": "amount",
                                         "output": str(tmp_path / "out.parquet")}}
    r = call(url, "POST", "/jobs", admin, body)  # this server has no --data-dir
    assert r.status_code == 422 and r.json()["detail"].startswith("input: this server has no --data-dir"), r.text
    for dataset, why in [("s3://risk/tx.csv?endpoint_override=attacker.example:9000", "https://attacker.example:9000"),
                         ("s3://risk/tx.csv", "allow-list (none)")]:
        r = call(url, "POST", "/jobs", admin, {"spec": {"name": "s3", "dataset": dataset, "label": "y"}})
        assert r.status_code == 403 and r.json()["detail"].startswith("dataset: ") and why in r.text, r.text
        assert "--s3-endpoint" in r.text
    assert not (tmp_path / "out.parquet").exists()


def test_registry_changes_are_made_by_the_server_as_the_caller(server, trained, keys, tmp_path):  # noqa: F811
    from runtime.artifacts.registry import Registry
    from runtime.client import Client, SpecError

    url, _, admin = server
    tokens = {}  # users of its own: the fuzzing above may have revoked the module's
    for name, role in (("amy", "algorithm-engineer"), ("otto", "operator"), ("aude", "auditor")):
        r = call(url, "POST", "/users", admin, {"name": name, "role": role, "tenant": "risk"})
        assert r.status_code == 201, r.text
        tokens[role] = r.json()["token"]
    registry = Registry(tmp_path / "registry", public_key=keys[1])
    for version in ("v1", "v2", "v3"):
        registry.register(make_artifact(tmp_path, trained, keys, version), "fraud", actor="alice")
    with Client(address=url, token=tokens["algorithm-engineer"]) as amy:
        with pytest.raises(SpecError, match=r"amy \(algorithm-engineer\) may not artifacts:promote"):
            amy.registry(registry.root, keys[1]).promote("fraud", 1)
        with pytest.raises(SpecError, match="type"):  # a promotion is no longer something the SDK reports
            amy.report("artifact-promoted", model="fraud", version=1)
    with Client(address=url, token=tokens["auditor"]) as auditor:
        with pytest.raises(SpecError, match="may not artifacts:withdraw"):
            auditor.withdraw(registry.root, "fraud", 1, "because")
    assert {v.stage for v in registry.versions("fraud")} == {"staging"}  # nothing changed
    with Client(address=url, token=tokens["operator"]) as operator:
        stages = operator.registry(registry.root, keys[1])
        assert stages.promote("fraud", 1).stage == "production"
        assert stages.promote("fraud", 2).stage == "production"
        assert stages.rollback("fraud").version == 1
        with pytest.raises(SpecError, match="reason: say why"):
            stages.withdraw("fraud", 2, " ")
        assert stages.withdraw("fraud", 2, "drift").stage == "withdrawn"
        with pytest.raises(SpecError, match="fraud:v2 was withdrawn and cannot be promoted"):
            operator.promote(registry.root, "fraud", 2)
        with pytest.raises(SpecError, match="no 'fraud' version 9"):
            operator.promote(registry.root, "fraud", 9)
        metrics = registry.root / "fraud" / "v3" / "metrics.json"
        metrics.write_text(metrics.read_text().replace("auc", "AUC", 1))  # v3 changed on disk since it was signed
        with pytest.raises(SpecError, match="signature check failed; changed: metrics.json"):
            operator.promote(registry.root, "fraud", 3)
    assert registry.version("fraud", 3).stage == "staging"
    changes = [(e["actor"], e["action"], e["version"]) for e in registry.events("fraud") if e["action"] != "register"]
    assert changes == [("otto", "promote", 1), ("otto", "promote", 2), ("otto", "promote", 1), ("otto", "withdraw", 2)]
    tail = call(url, "GET", "/audit/tail?n=500", admin).json()
    recorded = [(r["type"], r["actor"], r["detail"]["model"]) for r in tail
                if r["type"] in ("artifact-promoted", "artifact-rolled-back", "artifact-withdrawn")]
    assert recorded == [("artifact-promoted", "otto", "fraud:v1"), ("artifact-promoted", "otto", "fraud:v2"),
                        ("artifact-rolled-back", "otto", "fraud:v1"), ("artifact-withdrawn", "otto", "fraud:v2")]
    assert all(r["source"]["component"] == "server" for r in tail if r["type"] == "artifact-promoted")
