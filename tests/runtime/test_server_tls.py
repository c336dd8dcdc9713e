"""`suanli server --ssl-certfile/--ssl-keyfile` (the Helm chart's `controller.tls`): a real server
over a one-node emulated cluster answers HTTPS with the given certificate and nothing in plain
HTTP; a wrong pair is refused before anything starts, naming the flags."""

import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from runtime.cli.main import app

pytestmark = pytest.mark.ray


def self_signed(tmp_path, name="tls"):
    """A certificate for 127.0.0.1 and its key, as a kubernetes.io/tls Secret holds them."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "suanli-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    crt, pem = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def test_server_serves_https_with_the_given_certificate_and_no_plain_http(tmp_path):
    crt, key = self_signed(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    emulation = tmp_path / "one.yaml"
    emulation.write_text("name: tls\nnodes:\n  - {tier: center, site: dc1, count: 1, cpu: 1}\n")
    env = {**os.environ, "HOME": str(tmp_path), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli.main", "server", "--state-dir", str(state),
                             "--emulate", str(emulation), "--ssl-certfile", str(crt), "--ssl-keyfile", str(key)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    trusted = ssl.create_default_context(cafile=str(crt))
    try:
        url, health = None, None
        deadline = time.time() + 240
        while health is None and time.time() < deadline and proc.poll() is None:
            record = state / "server.json"
            if record.exists():
                url = json.loads(record.read_text())["url"]
                try:
                    health = httpx.get(url + "/healthz", verify=trusted, timeout=5)
                except httpx.HTTPError:
                    pass
            time.sleep(0.5)
        assert health is not None and health.status_code == 200, (tmp_path / "server.log").read_text()[-2000:]
        assert url.startswith("https://127.0.0.1:") and health.json()["pid"] == proc.pid
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(url + "/healthz", timeout=5)  # the system's trust store does not know this certificate
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https://", "http://") + "/healthz", timeout=5)  # no plain-HTTP answer
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        log.close()


def test_a_wrong_certificate_or_key_is_refused_naming_the_flag(tmp_path):
    crt, key = self_signed(tmp_path)
    _, other_key = self_signed(tmp_path, "other")
    runner = CliRunner()
    cases = [
        (["--ssl-certfile", str(crt)], "--ssl-certfile and --ssl-keyfile go together"),
        (["--ssl-certfile", str(tmp_path / "missing.crt"), "--ssl-keyfile", str(key)], "--ssl-certfile:"),
        (["--ssl-certfile", str(crt), "--ssl-keyfile", str(other_key)], "are not a PEM certificate and its private key"),
        (["--ssl-certfile", str(key), "--ssl-keyfile", str(key)], "are not a PEM certificate and its private key"),
    ]
    for flags, named in cases:
        out = runner.invoke(app, ["server", "--state-dir", str(tmp_path / "state"), *flags])
        assert out.exit_code != 0 and named in out.output, (flags, out.output)
        assert "PRIVATE KEY" not in out.output
    assert not (tmp_path / "state").exists()  # refused before the server made anything
