"""The SDK against servers it cannot use: another API version, nothing listening; and the
controller's count of failed steps that /healthz shows."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runtime.client import Client, ServerUnavailable


class OtherVersion(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = json.dumps({"status": "ok", "api_version": 99, "version": "9.0.0", "role": "active"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return


def test_a_server_of_another_api_version_is_refused_with_both_versions():
    server = ThreadingHTTPServer(("127.0.0.1", 0), OtherVersion)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(ServerUnavailable, match=r"speaks API version 99; this client speaks 1 \(suanli 9.0.0"):
            Client(address=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()


def test_nothing_listening_names_the_address():
    with pytest.raises(ServerUnavailable, match=r"cannot reach http://127.0.0.1:9 .*SUANLI_SERVER"):
        Client(address="http://127.0.0.1:9")


def test_a_failing_controller_step_is_counted_and_kept(tmp_path):
    from runtime.controller.controller import JobController
    from runtime.controller.lease_keeper import LeaseKeeper
    from runtime.store import open_store

    store = open_store(tmp_path)
    keeper = LeaseKeeper(store.leases, holder="me")
    keeper.renew()

    def unreachable():
        raise ConnectionError("Ray head unreachable")

    controller = JobController(store, backend=None, lease=keeper, runs_dir=tmp_path / "runs", poll_s=0.05,
                               snapshot=unreachable)
    controller.start()
    try:
        deadline = time.time() + 10
        while controller.step_failures < 3 and time.time() < deadline:
            time.sleep(0.05)
    finally:
        controller.stop()
    assert controller.step_failures >= 3  # the loop survived each failed step and counted it
    assert controller.last_error == "ConnectionError: Ray head unreachable"


def test_jwts_from_an_identity_provider_carry_role_and_tenant(tmp_path):
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from runtime.server.auth import Accounts, AuthError, JwtIssuer
    from runtime.store import open_store

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    accounts = Accounts(open_store(tmp_path).accounts, JwtIssuer(public, "https://idp.bank.example", "suanli"))
    claims = {"sub": "wang.li", "iss": "https://idp.bank.example", "aud": "suanli", "exp": time.time() + 300,
              "suanli_role": "auditor", "suanli_tenant": "cards"}
    identity = accounts.authenticate(jwt.encode(claims, key, algorithm="ES256"))
    assert (identity.name, identity.role, identity.tenant) == ("jwt:https://idp.bank.example/wang.li", "auditor", "cards")
    assert identity.may("audit:read") and not identity.may("jobs:submit")
    other = ec.generate_private_key(ec.SECP256R1())
    for bad, why in [(jwt.encode(claims, other, algorithm="ES256"), "Signature verification failed"),
                     (jwt.encode({**claims, "exp": time.time() - 5}, key, algorithm="ES256"), "expired"),
                     (jwt.encode({**claims, "aud": "other"}, key, algorithm="ES256"), "Audience"),
                     (jwt.encode({**claims, "suanli_role": "root"}, key, algorithm="ES256"), "suanli_role 'root'")]:
        with pytest.raises(AuthError, match=why):
            accounts.authenticate(bad)


def test_a_container_user_without_a_passwd_entry_still_gets_the_admin_token(monkeypatch, tmp_path):
    import getpass
    import os

    from runtime.server.auth import Accounts, ensure_local_admin
    from runtime.server.service import os_user
    from runtime.store import open_store

    def no_entry():
        raise KeyError("getpwuid(): uid not found: 1000")

    monkeypatch.setattr(getpass, "getuser", no_entry)
    assert os_user() == f"uid{os.getuid()}"
    accounts = Accounts(open_store(tmp_path).accounts)
    assert ensure_local_admin(accounts, tmp_path, os_user()) is not None
    identity = accounts.authenticate((tmp_path / "admin.token").read_text().strip())
    assert identity.role == "admin" and identity.name == os_user()
    assert ensure_local_admin(accounts, tmp_path, os_user()) is None  # still valid: not rewritten
