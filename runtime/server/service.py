"""`suanli server`: the one process that connects to Ray, owns the store and runs the controller.

Start-up: open the store (refusing a corrupt one), join Ray (the configured address, an emulated
cluster, or the state directory's own local head), start the lease keeper and the controller,
then serve the API on loopback unless told otherwise. `state_dir/server.json` tells local
clients where it listens. SIGTERM/SIGINT stop it cleanly and release the lease.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Counter, Gauge

import cluster
from cluster.federation import HEALTHY_AFTER_ANSWERS, LOST_AFTER_MISSED, Federation
from cluster.metrics import CapacityMetrics
from runtime.audit.witness import open_server_log
from runtime.backends.federated import FederatedBackend
from runtime.backends.ray_local import RayBackend
from runtime.controller.controller import JobController
from runtime.controller.lease_keeper import LeaseKeeper
from runtime.log_context import log_job_event
from runtime.profiles import load_throughput_model
from runtime.server.auth import Accounts, Identity, JwtIssuer, ensure_local_admin
from runtime.server.domain.admission import Admission
from runtime.server.domain.events import AuditEvents
from runtime.store import open_store
from runtime.store.clusters import ClusterStore
from runtime.store.secrets import SecretStore
from schedulers.engine import SchedulerConfig
from schedulers.types import ClusterState

SERVER_FILE = "server.json"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
IDENTITY_CACHE_S = 2.0
METRICS_INTERVAL_S = 2.0
ADMIN_TOKEN_CHECK_S = 60.0  # the token lasts 24 h and is renewed with an hour left
SNAPSHOT_MAX_AGE_S = 2.0
log = logging.getLogger(__name__)


@dataclass
class ServerOptions:
    """What `suanli server` was started with."""

    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    store_url: str | None = None
    ray_address: str | None = None
    emulate: Path | None = None
    policy: str = "hetero"
    lease_ttl_s: float = 8.0
    lease_renew_s: float = 2.0
    profile: Path | None = None
    data_dirs: list[Path] = field(default_factory=list)
    s3_endpoints: list[str] = field(default_factory=list)  # the S3 endpoints datasets may name ("aws": AWS's own)
    signing_public_key: Path | None = None  # artifacts' trusted key (default state_dir/signing/trusted-public.pem)
    metrics_public: bool = False
    runs_dir: Path | None = None  # checkpoints and run files (default state_dir/runs); Ray's workers write here
    jwt: JwtIssuer | None = None
    audit_verify_s: float = 600.0
    serve_port: int = 8000  # Ray Serve's HTTP entry for deployed models (loopback, head node)
    cluster_lost_after: int = LOST_AFTER_MISSED  # missed probes (2 s apart) before a registered cluster is lost
    cluster_healthy_after: int = HEALTHY_AFTER_ANSWERS  # answers in a row before it is healthy again
    ssl_certfile: Path | None = None  # with ssl_keyfile: serve the API over HTTPS
    ssl_keyfile: Path | None = None


def os_user() -> str:
    """The OS user running the server (uid<N> in a container whose uid has no passwd entry)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


class Server:
    """The wiring of one server process; `serve()` blocks until stopped."""

    def __init__(self, options: ServerOptions):
        self.options = options
        self.state_dir = options.state_dir.expanduser().resolve()
        self.store = open_store(self.state_dir, options.store_url)  # StoreError on a corrupt store: refuse to start
        self.accounts = Accounts(self.store.accounts, options.jwt)
        self.audit = open_server_log(self.state_dir / "audit", self.store.db)  # witnessed by the store; key pinned
        self.audit_ok: bool | None = None
        self._identities: dict[str, tuple[float, Identity]] = {}
        self._seen_tokens: set[str] = set()
        self.lease = LeaseKeeper(self.store.leases, ttl_s=options.lease_ttl_s, renew_s=options.lease_renew_s)
        self.metrics = CapacityMetrics()
        self.submissions = Counter("suanli_jobs_submitted", "Jobs accepted by this server", registry=self.metrics.registry)
        self.step_failures = Gauge("suanli_controller_step_failures", "Controller steps that raised",
                                   registry=self.metrics.registry)
        self.is_active = Gauge("suanli_controller_active", "1 while this server holds the controller lease",
                               registry=self.metrics.registry)
        self.audit_chain_ok = Gauge("suanli_audit_chain_ok", "1 when the last audit-log verification passed",
                                    registry=self.metrics.registry)
        self.refused = Counter("suanli_requests_refused", "Requests refused (401/403)", ["status"],
                               registry=self.metrics.registry)
        self.events = AuditEvents(self.audit, self.refused)
        self.store.db.listeners.append(self.events.job_event)
        self.store.db.listeners.append(log_job_event)
        self.admission = Admission(self)
        self.emulated = None
        self.started_head = False  # True when this server started the state directory's Ray head
        self.ray_address = ""
        self.controller: JobController | None = None
        self.clusters = ClusterStore(self.store.db, SecretStore(self.state_dir / "secrets"))
        self.federation = Federation(self.clusters.list, lost_after=options.cluster_lost_after,
                                     healthy_after=options.cluster_healthy_after, on_change=self.events.cluster_health,
                                     token_for=self.clusters.token)
        self.backends: FederatedBackend | None = None
        self._snapshot_lock = threading.Lock()
        self._uvicorn = None

    # ---- identities and the audit log ------------------------------------------------------
    def authenticate(self, token: str | None) -> Identity:
        """The caller's identity (cached for IDENTITY_CACHE_S; revocations clear the cache)."""
        key = hashlib.sha256(token.encode()).hexdigest() if token else ""
        cached = self._identities.get(key)
        if cached and time.monotonic() - cached[0] < IDENTITY_CACHE_S:
            return cached[1]
        identity = self.accounts.authenticate(token)
        self._identities[key] = (time.monotonic(), identity)
        if identity.token_id not in self._seen_tokens:
            self._seen_tokens.add(identity.token_id)
            self.events.login(identity)
        return identity

    def forget_identities(self) -> None:
        self._identities.clear()

    def verify_audit(self):
        """Verify the audit log now; update the metric and log a failure."""
        self.audit.checkpoint()
        verdict = self.audit.verify()
        self.audit_ok = verdict.ok
        self.audit_chain_ok.set(1 if verdict.ok else 0)
        if not verdict.ok:
            log.error("AUDIT LOG VERIFICATION FAILED: %s", verdict.line())
        return verdict

    def _verify_audit_periodically(self) -> None:
        while True:
            try:
                self.verify_audit()
            except Exception as exc:  # noqa: BLE001 - whatever broke the log is logged and shown in the metric, never fatal here
                self.audit_ok = False
                self.audit_chain_ok.set(0)
                log.error("audit log verification raised: %s", exc)
            time.sleep(self.options.audit_verify_s)

    @property
    def runs_dir(self) -> Path:
        """Checkpoints and run files: every cluster's workers must reach this directory."""
        return (self.options.runs_dir or self.state_dir / "runs").resolve()

    # ---- Ray -----------------------------------------------------------------------------
    def connect_ray(self) -> None:
        """Connect to Ray: the emulated cluster, the configured cluster (its token as Ray documents),
        or the state directory's own head, started when none runs, with the state directory's token
        (never the user's `~/.ray`). A head this call started is stopped again if connecting fails."""
        cluster.prepare_loopback()
        import ray

        from cluster.ray_auth import ensure_token, use_token

        config = cluster.load_config()
        address = self.options.ray_address or config.ray_address
        if not address:
            use_token(ensure_token(self.state_dir))
        if self.options.emulate:
            from cluster.emulation import EmulatedCluster, load_emulation

            self.emulated = EmulatedCluster(load_emulation(self.options.emulate), ensure_token(self.state_dir))
            self.ray_address = self.emulated.address
            return
        if not address:
            from cluster.local_head import ensure_local_head

            address, self.started_head = ensure_local_head(self.state_dir, config)
        ray.init(address=address, log_to_driver=False, namespace="suanli")
        self.ray_address = ray.get_runtime_context().gcs_address

    def stop_started_ray(self) -> None:
        """Stop the Ray this server started (the emulated cluster, or the state directory's head
        when this server started it): after a failed start, so that no Ray process is orphaned."""
        import ray

        ray.shutdown()
        if self.emulated is not None:
            self.emulated.shutdown()
            self.emulated = None
        if self.started_head:
            from cluster.local_head import stop_local_head

            stop_local_head(self.state_dir)
            self.started_head = False

    def current_snapshot(self) -> ClusterState:
        """A snapshot at most SNAPSHOT_MAX_AGE_S old (the controller's, or a fresh one)."""
        with self._snapshot_lock:
            latest = self.controller.last_state if self.controller else None
            if latest is None or time.time() - latest.taken_at > SNAPSHOT_MAX_AGE_S:
                held = self.controller.held_devices() if self.controller else {}
                latest = self.federation.merged_state(cluster.snapshot(include_local_telemetry=False), held)
            return latest

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        # The controller thread computes while API threads answer: hand the GIL over every 1 ms
        # (Python's default is 5 ms) so a request waits less behind a scheduling round.
        sys.setswitchinterval(0.001)
        written = ensure_local_admin(self.accounts, self.state_dir, os_user())
        if written:
            self.events.token_created("local-bootstrap", os_user(), written, file=str(self.state_dir / "admin.token"))
        self.events.server_started(os_user(), {"pid": os.getpid(), "host": self.options.host, "port": self.options.port,
                                               "store": self.store.db.where, "policy": self.options.policy})
        self.audit.start()
        try:
            self.connect_ray()
            self._start_control()
        except BaseException:
            self.stop_started_ray()  # a failed start leaves no Ray process behind
            raise
        threading.Thread(target=self._watch, name="suanli-watch", daemon=True).start()
        threading.Thread(target=self._verify_audit_periodically, name="suanli-audit-verify", daemon=True).start()

    def _start_control(self) -> None:
        config = SchedulerConfig(throughput=load_throughput_model(self.options.profile),
                                 min_run_before_preempt_s=120.0)
        self.backends = FederatedBackend(RayBackend(), self.federation, self.runs_dir, self.clusters.list,
                                         self.clusters.token)
        self.controller = JobController(self.store, self.backends, self.lease, self.runs_dir,
                                        policy=self.options.policy, config=config, federation=self.federation)
        self.federation.probe_all()  # health known before the first scheduling round
        self.federation.start()
        self.lease.start()
        self.controller.start()

    def _watch(self) -> None:
        """Metrics every METRICS_INTERVAL_S; the state directory's admin token checked every
        ADMIN_TOKEN_CHECK_S and renewed before it expires."""
        token_checked = 0.0
        while True:
            self.is_active.set(1 if self.lease.role == "active" else 0)
            self.step_failures.set(self.controller.step_failures if self.controller else 0)
            try:
                self.metrics.update(self.current_snapshot())
            except Exception as exc:  # noqa: BLE001 - Ray (or a cluster) unreachable, logged: the metrics keep their last values
                log.warning("could not take a capacity snapshot for the metrics: %s", exc)
            if time.monotonic() - token_checked > ADMIN_TOKEN_CHECK_S:
                try:
                    ensure_local_admin(self.accounts, self.state_dir, os_user())
                    token_checked = time.monotonic()
                except Exception as exc:  # noqa: BLE001 - a store or disk error, logged: retried at the next pass
                    log.warning("could not renew the local admin token: %s", exc)
            time.sleep(METRICS_INTERVAL_S)

    def serve(self) -> None:
        """Serve the API until SIGTERM/SIGINT; then stop the controller and release the lease."""
        import uvicorn

        from runtime.server.app import create_app

        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only for sockets that
        # say so; without it every keep-alive response waits 40 ms for the client's delayed ACK
        sock = socket.socket(socket.AF_INET6 if ":" in self.options.host else socket.AF_INET, socket.SOCK_STREAM,
                             socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.options.host, self.options.port))
        port = sock.getsockname()[1]
        scheme = "https" if self.options.ssl_certfile else "http"
        url = f"{scheme}://{self.options.host}:{port}"
        # log_config=None: uvicorn's own lines go through the server's handler too (with the ids' fields)
        config = uvicorn.Config(create_app(self), log_config=None, log_level="warning", access_log=False,
                                timeout_keep_alive=30,
                                ssl_certfile=self.options.ssl_certfile, ssl_keyfile=self.options.ssl_keyfile)
        self._uvicorn = uvicorn.Server(config)
        info = {"url": url, "pid": os.getpid(), "started": time.time(), "ray_address": self.ray_address}
        record = self.state_dir / SERVER_FILE
        if self.options.host in LOOPBACK_HOSTS:
            tmp = record.with_suffix(".tmp")
            tmp.write_text(json.dumps(info))
            tmp.replace(record)
        log.info("suanli server %s: %s, store %s, Ray %s", os.getpid(), url, self.store.db.where, self.ray_address)
        try:
            self._uvicorn.run(sockets=[sock])
        finally:
            self.shutdown()
            if record.exists() and json.loads(record.read_text()).get("pid") == os.getpid():
                record.unlink(missing_ok=True)

    def shutdown(self) -> None:
        self.federation.stop()
        if self.controller:
            self.controller.stop()
        self.lease.stop(release=True)
        self.events.server_stopped(os_user(), os.getpid())
        self.audit.close()  # a last signed checkpoint
        if self.emulated is not None:
            self.emulated.shutdown()
        self.store.close()

