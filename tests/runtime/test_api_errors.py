"""The API's one error mapping: domain errors come out as their status with one bounded,
sanitised line; an unexpected exception is a 500 whose answer holds only an error id, its text
going to the server log under that id. Checked on the real mapping of `runtime.server.app`."""

import logging
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtime.server.app import install_error_mapping
from runtime.server.domain.errors import MAX_MESSAGE_CHARS, Conflict, Invalid, NotFound, one_line

SECRET = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


@pytest.fixture()
def client():
    app = FastAPI()
    install_error_mapping(app)

    @app.get("/invalid")
    def invalid():
        raise Invalid("dataset: " + "line\n\r\x00\x1b[31m\u2028" * 1000 + "x" * 10_000)

    @app.get("/missing")
    def missing():
        raise NotFound("job: no job 'a'\nsecond line")

    @app.get("/conflict")
    def conflict():
        raise Conflict("job: it ended")

    @app.get("/crash")
    def crash():
        raise RuntimeError(f"upstream answered 502 with body {SECRET}")

    @app.get("/typed")
    def typed(n: int):
        return {"n": n}

    return TestClient(app, raise_server_exceptions=False)


def test_a_domain_error_of_10_kb_with_control_characters_comes_out_as_one_bounded_line(client):
    r = client.get("/invalid")
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("dataset: line line") and detail.endswith("...")
    assert len(detail) <= MAX_MESSAGE_CHARS
    assert all(ch.isprintable() for ch in detail) and "\x1b" not in detail and "  " not in detail


def test_each_domain_error_has_its_status(client):
    assert client.get("/missing").status_code == 404
    assert client.get("/missing").json()["detail"] == "job: no job 'a' second line"
    assert client.get("/conflict").status_code == 409
    assert client.get("/conflict").json() == {"detail": "job: it ended"}
    r = client.get("/typed", params={"n": "x" * 5000})
    assert r.status_code == 422 and r.json()["detail"].startswith("query.n: ")
    assert len(r.json()["detail"]) <= MAX_MESSAGE_CHARS


def test_an_unexpected_exception_never_reaches_the_client_and_is_logged_under_its_id(client, caplog):
    with caplog.at_level(logging.ERROR, logger="runtime.server.app"):
        r = client.get("/crash")
    assert r.status_code == 500
    detail = r.json()["detail"]
    assert "PRIVATE KEY" not in r.text and "502" not in r.text and "RuntimeError" not in r.text
    error_id = re.fullmatch(r"internal error ([0-9a-f]{12}): .*", detail).group(1)
    logged = [rec for rec in caplog.records if error_id in rec.getMessage()]
    assert logged and "RuntimeError" in logged[0].getMessage() and "PRIVATE KEY" in str(logged[0].exc_info[1])


def test_one_line_bounds_its_work_and_its_output():
    assert one_line("a\nb\tc\u202ed") == "a b c d"  # a bidi override is a format character: removed
    huge = "x" * 10_000_000
    assert one_line(huge) == "x" * (MAX_MESSAGE_CHARS - 3) + "..."
    assert one_line("short") == "short"


@pytest.mark.ray
def test_a_real_server_answers_a_hostile_path_with_one_bounded_line(tmp_path):
    """A dataset path of 10 KB with newlines once made the file system's ENAMETOOLONG a 500; it is
    a 422 naming the field, one line of at most MAX_MESSAGE_CHARS, and the server keeps serving."""
    import httpx

    from runtime.server.local import start_server

    emulation = tmp_path / "one.yaml"
    emulation.write_text("name: errors\nnodes:\n  - {tier: center, site: dc1, count: 1, cpu: 1}\n")
    proc, url = start_server(tmp_path / "state", "--emulate", str(emulation))
    try:
        admin = (tmp_path / "state" / "admin.token").read_text().strip()
        headers = {"Authorization": f"Bearer {admin}"}
        spec = {"name": "hostile", "dataset": "/data/" + "part\n\x1b[2J" * 1000, "label": "y", "epochs": 1}
        r = httpx.post(url + "/jobs", headers=headers, json={"spec": spec}, timeout=60)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert detail.startswith("dataset: ") and len(detail) <= MAX_MESSAGE_CHARS
        assert all(ch.isprintable() for ch in detail)
        assert httpx.get(url + "/jobs", headers=headers, timeout=30).json() == []  # nothing stored
        r = httpx.post(url + "/jobs", headers=headers, json={"spec": {"name": "x", "epochs": "many\n" * 2000}},
                       timeout=60)
        assert r.status_code == 422 and r.json()["detail"].startswith("spec.epochs: ")
        assert len(r.json()["detail"]) <= MAX_MESSAGE_CHARS
    finally:
        proc.terminate()
        proc.wait(timeout=120)
