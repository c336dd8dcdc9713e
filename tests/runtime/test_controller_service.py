"""The controller's metrics and health endpoints, served on loopback."""

import threading
import time
import urllib.error
import urllib.request

import pytest

from runtime.cli.controller import ControllerService
from tests.schedulers.helpers import gpu, node, state


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_metrics_and_health_follow_the_snapshots():
    snapshots = [state(node("n1", gpu("A100", 4, in_use=3)), taken_at=1.0)]
    calls = {"n": 0}

    def take():
        calls["n"] += 1
        if calls["n"] > 2:
            raise ConnectionError("Ray head unreachable")
        return snapshots[0]

    service = ControllerService(take, "127.0.0.1", 0, interval_s=0.2)
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        deadline = time.time() + 5
        while calls["n"] < 1 and time.time() < deadline:
            time.sleep(0.05)
        status, body = get(service.port, "/metrics")
        assert status == 200
        assert 'suanli_devices_in_use{cluster="c1",emulated="false",kind="gpu",model="A100"' in body
        assert " 3.0" in body
        assert get(service.port, "/healthz")[0] == 200
        assert get(service.port, "/nothing")[0] == 404
        deadline = time.time() + 5
        while time.time() < deadline and get(service.port, "/healthz")[0] == 200:
            time.sleep(0.1)
        status, body = get(service.port, "/healthz")
        assert status == 503 and "Ray head unreachable" in body
    finally:
        service.stop()
        thread.join(timeout=5)


def test_interval_must_be_positive():
    with pytest.raises(ValueError, match="interval"):
        ControllerService(lambda: None, "127.0.0.1", 0, interval_s=0)
