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
    from runtime.store import LeaseStore, open_store

    store = open_store(tmp_path)
    keeper = LeaseKeeper(LeaseStore(store), holder="me")
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
