"""`suanli controller`: the long-running process of a suanli installation.

It connects to the configured Ray cluster, drives the job queue in the state directory
(`runtime.controller.JobController`), takes a capacity snapshot every `--interval` seconds, and
serves `/metrics` (Prometheus) and `/healthz` (200 while snapshots succeed, 503 otherwise).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import typer

from cluster.metrics import CapacityMetrics
from runtime.cli.common import cluster_session, console
from schedulers.types import ClusterState


class ControllerService:
    """Snapshots on a timer, metrics over HTTP. `stop()` ends both."""

    def __init__(self, take_snapshot: Callable[[], ClusterState], host: str, port: int, interval_s: float):
        if interval_s <= 0:
            raise ValueError(f"interval: must be > 0 seconds, got {interval_s}")
        self.take_snapshot = take_snapshot
        self.interval_s = interval_s
        self.metrics = CapacityMetrics()
        self.last_ok = 0.0
        self.last_error = ""
        self._stop = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                if self.path == "/metrics":
                    body, status, kind = service.metrics.exposition(), 200, "text/plain; version=0.0.4"
                elif self.path == "/healthz":
                    healthy = time.time() - service.last_ok < 3 * service.interval_s
                    body = b"ok\n" if healthy else f"unhealthy: {service.last_error or 'no snapshot yet'}\n".encode()
                    status, kind = (200 if healthy else 503), "text/plain"
                else:
                    body, status, kind = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                return

        self.server = ThreadingHTTPServer((host, port), Handler)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def refresh(self) -> None:
        """Take one snapshot and update the metrics; record the error instead of raising."""
        try:
            self.metrics.update(self.take_snapshot())
            self.last_ok = time.time()
            self.last_error = ""
        except Exception as exc:  # noqa: BLE001 - a failed snapshot makes /healthz fail, not the process
            self.last_error = f"{type(exc).__name__}: {exc}"

    def run(self) -> None:
        """Serve HTTP in a thread and refresh until `stop()`."""
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            while not self._stop.is_set():
                self.refresh()
                self._stop.wait(self.interval_s)
        finally:
            self.server.shutdown()
            self.server.server_close()

    def stop(self) -> None:
        self._stop.set()


def controller(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (0.0.0.0 inside a pod)."),
    port: int = typer.Option(8080, "--port", min=1, max=65535),
    interval: float = typer.Option(15.0, "--interval", help="Seconds between capacity snapshots."),
    policy: str = typer.Option("hetero", "--policy", help="Placement policy for the job queue."),
) -> None:
    """Run the controller: the job queue, capacity snapshots, and /metrics, /healthz over HTTP."""
    import cluster
    from runtime.controller import JobController
    from runtime.store import JobStore

    with cluster_session():
        store = JobStore(cluster.load_config().state_path)
        jobs = JobController(store, policy=policy)
        jobs.start()
        service = ControllerService(cluster.snapshot, host, port, interval)
        console.print(f"suanli controller: jobs from {store.state_dir}, metrics at http://{host}:{service.port}/metrics")
        try:
            service.run()
        except KeyboardInterrupt:
            service.stop()
        finally:
            jobs.stop()
