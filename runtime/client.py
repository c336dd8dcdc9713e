"""The Python SDK: a thin HTTP client of a suanli server. It starts no Ray and no controller.

    from runtime import Client, TrainingJob
    with Client() as client:          # SUANLI_SERVER, the config file's `server`, else the local server
        job = client.submit(TrainingJob(name="fraud-mlp", dataset="tx.csv", label="is_fraud", workers=2))
        job.wait(timeout=600)
        print(job.result().metrics["auc"], job.events())
"""

from __future__ import annotations

import base64
import inspect
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from runtime.server import API_VERSION
from runtime.specs import FeatureJob, JobState, TrainingJob


class ApiError(RuntimeError):
    """The server refused a request; the message is the server's one line naming the field."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class SpecError(ApiError, ValueError):
    """A job spec or argument the server found invalid (HTTP 4xx)."""


class JobNotFound(ApiError, KeyError):
    """No job with that id (HTTP 404)."""

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class FeatureResult:
    """What a finished feature job produced: the Parquet file, its rows, where and on what it ran."""

    output: str
    rows: int
    seconds: float
    device: str
    node_id: str
    placement: dict


class ServerUnavailable(ConnectionError):
    """No server answers at the address, or it speaks another API version."""


@dataclass(frozen=True)
class TrainingResult:
    """What a finished job produced: test metrics, the provenance record, the final checkpoint and
    the sha256 recorded for it when it was written."""

    metrics: dict
    provenance: dict
    checkpoint: str | None
    checkpoint_sha256: str | None
    provenance_path: str


def http_client(base_url: str, timeout: float = 30.0, token: str | None = None) -> httpx.Client:
    """An HTTP client for a suanli server, sending `token` as a bearer token. TCP_NODELAY: a POST's
    headers and body go out as two writes, and without it Nagle's algorithm meets the server's
    delayed ACK (40 ms per request)."""
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base_url, timeout=timeout, transport=transport, headers=headers)


def resolve_server(address: str | None, state_dir: str | Path | None, start: bool = True) -> tuple[str, Path | None]:
    """(the server URL, the local state directory when it is the local server): `address`, else
    SUANLI_SERVER or the config file's `server`, else the local server of the state directory
    (started in the background on first use when `start`)."""
    import cluster
    from runtime.server.local import ensure_local_server, running_local_server

    if address:
        return address.rstrip("/"), Path(state_dir).expanduser() if state_dir else None
    config = cluster.load_config()
    if config.server and state_dir is None:
        return config.server, None
    directory = (Path(state_dir).expanduser() if state_dir else config.state_path).resolve()
    if start:
        return ensure_local_server(directory), directory
    found = running_local_server(directory)
    if not found:
        raise ServerUnavailable(f"server: no local server runs for {directory}; start one with 'suanli server'")
    return found["url"], directory


def resolve_token(token: str | None, state_dir: Path | None) -> str | None:
    """The token to send: `token`, else SUANLI_TOKEN or the config file's `token`, else the local
    server's admin token in its state directory (readable by its owner alone)."""
    import cluster

    if token:
        return token
    configured = cluster.load_config().token
    if configured:
        return configured
    if state_dir is not None and (state_dir / "admin.token").exists():
        return (state_dir / "admin.token").read_text().strip()
    return None


class JobHandle:
    """One job on the server."""

    def __init__(self, client: Client, job_id: str):
        self.client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r})"

    def info(self) -> dict:
        """The job as the server shows it (state, attempts, placement, progress, result, error)."""
        return self.client._get(f"/jobs/{self.id}")

    def status(self) -> JobState:
        return JobState(self.info()["state"])

    def wait(self, timeout: float = 600.0, poll_s: float = 0.5) -> JobState:
        """Block until the job finishes; its final state. TimeoutError naming the job otherwise."""
        deadline = time.time() + timeout
        while True:
            state = self.status()
            if state.finished:
                return state
            if time.time() > deadline:
                raise TimeoutError(f"job {self.id}: still {state.value} after {timeout:g} s")
            time.sleep(poll_s)

    def result(self) -> TrainingResult | FeatureResult:
        """The result of a SUCCEEDED job; RuntimeError naming the real cause otherwise."""
        info = self.info()
        if info["state"] != JobState.SUCCEEDED.value:
            raise RuntimeError(f"job {self.id} is {info['state']}" + (f": {info['error']}" if info["error"] else ""))
        result = info["result"]
        if result.get("kind") == "features":
            return FeatureResult(result["output"], result["rows"], result["seconds"], result["device"],
                                 result["node_id"], result["placement"])
        provenance = self.client._get(f"/jobs/{self.id}/provenance")
        return TrainingResult(result["metrics"], provenance, result["checkpoint"], result.get("checkpoint_sha256"),
                              result["provenance_path"])

    def logs(self) -> str:
        return self.client._get(f"/jobs/{self.id}/logs", text=True)

    def events(self) -> list[dict]:
        """The job's state transitions and requests, in order: {seq, at, kind, actor, detail, attempt}."""
        return self.client._get(f"/jobs/{self.id}/events")

    def cancel(self) -> JobState:
        """Ask for cancellation (recorded as the caller's); the job's state after the request
        (CANCELLED at once if it was queued)."""
        return JobState(self.client._post(f"/jobs/{self.id}/cancel", {})["state"])


MAX_TOKEN_FILE_BYTES = 64 * 1024


def read_token_file(path: str | Path) -> str:
    """The Ray auth token in the file at `path`: its one non-empty line; ValueError naming
    --token-file and the fix when the file is missing, unreadable, or not a single line. The
    message never holds the file's content."""
    from cluster.federation import check_token

    fix = "write the cluster's Ray auth token into it, alone on one line (`ray get-auth-token` on its head prints it)"
    try:
        with open(path, "rb") as source:
            data = source.read(MAX_TOKEN_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"--token-file {path}: does not exist; {fix}") from None
    except IsADirectoryError:
        raise ValueError(f"--token-file {path}: is a directory; {fix}") from None
    except OSError as exc:
        raise ValueError(f"--token-file {path}: cannot be read ({exc.strerror}); {fix}") from None
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise ValueError(f"--token-file {path}: is larger than {MAX_TOKEN_FILE_BYTES >> 10} KiB; {fix}")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise ValueError(f"--token-file {path}: is not text; {fix}") from None
    return check_token(text, f"--token-file {path}")


class Client:
    """Talks to one suanli server (see `resolve_server`)."""

    def __init__(self, address: str | None = None, state_dir: str | Path | None = None, timeout: float = 30.0,
                 start: bool = True, token: str | None = None):
        self.url, local_dir = resolve_server(address, state_dir, start)
        self.token = resolve_token(token, local_dir)  # what it sends (the ops page's link carries it)
        self._http = http_client(self.url, timeout, self.token)
        health = self._get("/healthz")
        if health.get("api_version") != API_VERSION:
            raise ServerUnavailable(f"server: {self.url} speaks API version {health.get('api_version')}; this client "
                                    f"speaks {API_VERSION} (suanli {health.get('version')} there): upgrade one of them")
        self.server_info = health

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection (the server and its jobs go on)."""
        self._http.close()

    # ---- HTTP --------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: dict | None = None, text: bool = False,
                timeout: float | None = None):
        """One API call: the JSON (or text) answer; ApiError (SpecError 4xx, JobNotFound 404) with
        the server's one line, ServerUnavailable when it cannot be reached."""
        try:
            response = self._http.request(method, path, json=body,
                                          timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"server: cannot reach {self.url} ({type(exc).__name__}: {exc}); is "
                                    "'suanli server' running there? (SUANLI_SERVER names the server)") from None
        if response.status_code >= 400:
            try:
                message = response.json().get("detail", response.text)
            except ValueError:
                message = response.text
            not_found = JobNotFound if path.startswith("/jobs") else SpecError
            error = {404: not_found}.get(response.status_code, SpecError if response.status_code < 500 else ApiError)
            raise error(response.status_code, str(message))
        return response.text if text else response.json()

    def _get(self, path: str, text: bool = False):
        return self.request("GET", path, text=text)

    def _post(self, path: str, body: dict):
        return self.request("POST", path, body)

    # ---- jobs ----------------------------------------------------------------------------
    def submit(self, job: TrainingJob | FeatureJob) -> JobHandle:
        """Send the job to the server: stored QUEUED, or REJECTED with the reason when it can never
        fit. Relative paths are resolved against this process's working directory. Bad input
        raises SpecError with the server's line naming the field; nothing is stored."""
        if isinstance(job, FeatureJob):
            spec = job.model_dump()
            for key in ("input", "output"):
                spec[key] = str(Path(spec[key]).resolve())
            return JobHandle(self, self._post("/jobs", {"kind": "features", "spec": spec})["id"])
        if not isinstance(job, TrainingJob):
            raise TypeError("job: pass a runtime.TrainingJob or a runtime.FeatureJob")
        spec = job.model_dump()
        if job.dataset and "://" not in job.dataset and not Path(job.dataset).is_absolute():
            spec["dataset"] = str(Path(job.dataset).resolve())
        body: dict = {"spec": spec}
        if job.train_fn is not None:
            import cloudpickle

            body["train_fn_b64"] = base64.b64encode(cloudpickle.dumps(job.train_fn)).decode()
            body["train_fn_name"] = f"{getattr(job.train_fn, '__module__', '?')}.{getattr(job.train_fn, '__qualname__', '?')}"
            try:
                body["train_fn_source"] = inspect.getsource(job.train_fn)
            except (OSError, TypeError):
                body["train_fn_source"] = None
        return JobHandle(self, self._post("/jobs", body)["id"])

    def job(self, job_id: str) -> JobHandle:
        """A handle on an existing job; JobNotFound naming the id otherwise."""
        self._get(f"/jobs/{job_id}")
        return JobHandle(self, job_id)

    def jobs(self, tenant: str | None = None, state: JobState | str | None = None) -> list[JobHandle]:
        params = []
        if tenant:
            params.append(f"tenant={tenant}")
        if state:
            params.append(f"state={JobState(state).value if isinstance(state, JobState) else state}")
        return [JobHandle(self, j["id"]) for j in self._get("/jobs" + ("?" + "&".join(params) if params else ""))]

    def capacity(self) -> dict:
        """The capacity report of the server's cluster(s)."""
        return self._get("/capacity")

    # ---- clusters (federation) -------------------------------------------------------------
    def add_cluster(self, name: str, address: str, site: str | None = None, tier: str = "center",
                    storage: str | None = None, token_file: str | Path | None = None,
                    links: dict[str, dict[str, float]] | None = None) -> dict:
        """Register a Ray cluster by its job-submission address (http://host:8265); SpecError
        naming the field when the entry is invalid or the server's check of the cluster (its
        dashboard, its token, its nodes' view of `storage`) fails. `token_file` holds its Ray auth
        token: read here (ValueError naming --token-file when it is missing or not one line)
        and sent once; the server keeps it in its secrets store. `links` maps other sites to
        {"bandwidth_bps", "latency_ms"}."""
        from cluster.federation import REGISTRATION_TIMEOUT_S

        token = read_token_file(token_file) if token_file is not None else None
        return self.request("POST", "/clusters", {"name": name, "address": address, "site": site, "tier": tier,
                                                  "storage": storage, "token": token, "links": links or {}},
                            timeout=REGISTRATION_TIMEOUT_S + 30)

    def clusters(self) -> list[dict]:
        """The server's own cluster and every registered one, with health (healthy, lost,
        unknown), missed probes and nodes."""
        return self._get("/clusters")

    def remove_cluster(self, name: str) -> None:
        """Forget a registered cluster (refused while attempts run on it)."""
        self.request("DELETE", f"/clusters/{name}")

    # ---- artifacts (run in this process, on files the server wrote) ---------------------------
    # Each is reported to the server's audit log first (which also checks the caller's role);
    # a verification failure is reported as it happens.
    def report(self, event: str, **detail) -> None:
        """Record an artifact event in the server's audit log as the caller (403 if the role does
        not allow the action)."""
        self._post("/audit/events", {"type": event, "detail": {k: str(v) for k, v in detail.items()}})

    def _verified(self, action, **detail):
        from runtime.artifacts.signing import SignatureError

        try:
            return action()
        except (SignatureError, ValueError) as exc:
            self.report("artifact-verify-failed", error=exc, **detail)
            raise

    def export(self, job: JobHandle, out_dir: str | Path, private_key: str | Path | None = None) -> Path:
        """Write the signed artifact of a SUCCEEDED built-in-model job (ONNX, metrics, provenance).
        The checkpoint's bytes are checked against the sha256 recorded when it was written."""
        from runtime.artifacts.build import build_artifact

        result = job.result()
        if not result.checkpoint:
            raise ValueError(f"job {job.id}: has no checkpoint to export")
        self.report("artifact-signed", job=job.id, out_dir=out_dir, checkpoint_sha256=result.checkpoint_sha256)
        return self._verified(lambda: build_artifact(result.checkpoint, result.metrics, result.provenance, out_dir,
                                                     job.id, private_key, checkpoint_sha256=result.checkpoint_sha256),
                              job=job.id)

    def compress(self, artifact: str | Path, out_root: str | Path, methods=None, private_key=None, public_key=None,
                 auc_tolerance: float = 0.005, kind: str = "cpu") -> dict:
        """Compress a signed artifact into signed candidates and choose the fastest on device kind
        `kind` within `auc_tolerance` (see runtime.compression; methods default to those that fit
        the model: trees are distilled and truncated, MLPs distilled, quantized and pruned)."""
        from runtime.compression.pipeline import compress

        self.report("artifact-compressed", artifact=artifact, methods=",".join(methods or ["default"]),
                    out_root=out_root)
        return self._verified(lambda: compress(artifact, out_root, methods, private_key, public_key, auc_tolerance,
                                               kind=kind), artifact=artifact)

    def deploy(self, registry: str | Path, model: str, version: int | str = "production", sites=(), **settings):
        """Deploy a registry version on the server's Ray Serve: a scoring application at each of
        `sites`' edge nodes, one in the centre, each with its own route, and the edge-first router.
        The server verifies the version's signature with the key it pins. `settings` are those of
        `runtime.serving.deploy.ServeSettings` (thresholds, replicas, queue bounds, Retry-After,
        batching, deadline). Returns an Endpoint (URLs, `.client(site)`, `.score(rows, site)`,
        `.handle()`) whose requests carry scoring tokens asked of the server in this client's name.
        A withdrawn or unknown version is refused (SpecError 403/404) and nothing is deployed."""
        from runtime.serving.client import Endpoint

        body = {"registry": str(Path(registry).resolve()), "model": model, "version": version,
                "settings": {"sites": list(sites), **settings}}
        data = self.request("POST", "/deployments", body, timeout=600)  # replicas start and load first
        return Endpoint(data["app"], data["model"], data["url"], data["sites"],
                        token_source=lambda: self.scoring_token(data["app"]))

    def scoring_token(self, app: str) -> dict:
        """{"token", "expires_at", "app"}: a scoring token for deployed version `app` (its routes
        need one; the caller's role needs endpoints:score)."""
        return self._post(f"/deployments/{app}/token", {})

    def promote(self, registry: str | Path, model: str, version: int | None = None) -> dict:
        """Make `version` of `model` the production one in the server's registry at `registry`, or
        with no version roll back to the newest archived one (artifacts:promote); the version
        after the change. The server verifies its signature and records the caller."""
        action = "promote" if version is not None else "rollback"
        return self._post(f"/registry/{action}", {"registry": str(Path(registry).resolve()), "model": model,
                                                  "version": version})

    def withdraw(self, registry: str | Path, model: str, version: int, reason: str) -> dict:
        """Take `version` of `model` out of service for good (artifacts:withdraw), saying why."""
        return self._post("/registry/withdraw", {"registry": str(Path(registry).resolve()), "model": model,
                                                 "version": version, "reason": reason})

    def registry(self, root: str | Path, public_key: str | Path | None = None):
        """The model registry in `root` for registering and reading, with every registration and
        refused artifact in the audit log; its stage changes (promote, rollback, withdraw) go
        through the server, which checks the caller's role (`promote`, `withdraw`)."""
        from runtime.artifacts.registry import Registry

        client = self
        events = {"register": "artifact-registered", "verify-failed": "artifact-verify-failed"}

        class ServerRegistry(Registry):  # the actor is the caller, as the server knows it
            def promote(self, name, version):
                client.promote(self.root, name, version)
                return self.version(name, version)

            def rollback(self, name):
                return self.version(name, client.promote(self.root, name)["version"])

            def withdraw(self, name, version, reason):
                client.withdraw(self.root, name, version, reason)
                return self.version(name, version)

        return ServerRegistry(root, public_key, on_event=lambda action, name, version, detail: self.report(
            events[action], model=name, version=version, detail=detail))
