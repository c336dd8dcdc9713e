"""The HTTP API (FastAPI): every server serves it; only the lease holder's controller acts on jobs.

Errors are JSON `{"detail": "field: what is wrong and the fix"}` with a 4xx status; the SDK and
CLI print that same line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, ValidationError

from runtime.server import API_VERSION
from runtime.server.auth import PERMISSIONS
from runtime.serving.deploy import ServeSettings
from runtime.specs import FeatureJob, JobState, TrainingJob
from runtime.store import JobRecord

MAX_TRAIN_FN_BYTES = 16 * 2**20
MAX_BODY_BYTES = 32 * 2**20  # a request body (a pickled train_fn included) is refused above this


class Submission(BaseModel):
    """The body of POST /jobs: a TrainingJob's fields, and a user function as cloudpickled bytes
    (base64) with its source for the provenance record. The server stores and hashes the bytes;
    only Ray workers load them."""

    kind: Literal["training", "features"] = "training"
    spec: dict[str, Any]
    train_fn_b64: str | None = Field(default=None, max_length=MAX_TRAIN_FN_BYTES * 4 // 3 + 4)
    train_fn_source: str | None = Field(default=None, max_length=1_000_000)
    train_fn_name: str | None = Field(default=None, max_length=400)


def job_view(record: JobRecord) -> dict:
    """A job as the API shows it (the user's code bytes are never sent back)."""
    return {"id": record.id, "name": record.name, "tenant": record.tenant, "user": record.user,
            "state": record.state.value, "attempts": record.attempts, "failures": record.failures,
            "created": record.created, "updated": record.updated, "placement": record.placement,
            "progress": record.progress, "result": record.result, "error": record.error,
            "cancel_requested": record.cancel_requested, "train_fn_sha256": record.train_fn_sha256}


def _one_line(err: ValidationError | RequestValidationError, prefix: str = "") -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body",))
    message = first.get("msg", "invalid").removeprefix("Value error, ")
    return f"{prefix}{where}: {message}" if where else f"{prefix}{message}"


class NewUser(BaseModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")
    role: str
    tenant: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    expires_s: float = Field(default=86400.0, gt=0)


class NewToken(BaseModel):
    user: str | None = None
    expires_s: float = Field(default=86400.0, gt=0)
    label: str = Field(default="", max_length=128)


class QuotaLimits(BaseModel):
    """Caps; a field left out is not capped."""

    model_config = {"extra": "forbid"}
    cpu: float | None = Field(default=None, ge=0, le=1e6)
    gpu: float | None = Field(default=None, ge=0, le=1e6)
    npu: float | None = Field(default=None, ge=0, le=1e6)
    jobs: int | None = Field(default=None, ge=0, le=1e6)


def quota_report(store) -> list[dict]:
    """Each cap with its use now: devices per kind and jobs of the tenant's or user's active jobs."""
    used: dict[str, dict[str, float]] = {}
    for record in store.list(states=(JobState.STARTING, JobState.RUNNING, JobState.STOPPING)):
        if not record.placement:
            continue
        devices = sum(a["workers"] * a["devices_per_worker"] for a in record.placement["assignments"])
        for key in (f"tenant:{record.tenant}", f"user:{record.user}"):
            entry = used.setdefault(key, {})
            entry[record.placement["kind"]] = entry.get(record.placement["kind"], 0) + devices
            entry["jobs"] = entry.get("jobs", 0) + 1
    return [{"key": key, "limits": limits, "used": {k: used.get(key, {}).get(k, 0) for k in limits}}
            for key, limits in sorted(store.quotas().items())]


# Artifact events the SDK reports, and the permission each needs (None: anyone may report it).
ARTIFACT_EVENTS = {
    "artifact-signed": "artifacts:register", "artifact-compressed": "artifacts:compress",
    "artifact-registered": "artifacts:register", "artifact-verify-failed": None,
}  # promote, rollback, withdraw and deploy are done and recorded by the server itself


class DeployRequest(BaseModel):
    """A registry version to serve: its registry (a directory on the server), name and version
    (number or stage), and the serving settings (signatures verify with the server's pinned key)."""

    model_config = {"extra": "forbid"}
    registry: str
    model: str
    version: int | Literal["production", "staging"] = "production"
    settings: ServeSettings = Field(default_factory=ServeSettings)


class RegistryChange(BaseModel):
    """A stage change in a registry on the server: the version to promote or withdraw (rollback
    needs none) and, to withdraw, why."""

    model_config = {"extra": "forbid"}
    registry: str
    model: str
    version: int | None = None
    reason: str = Field(default="", max_length=2000)


class NewCluster(BaseModel):
    """A Ray cluster to register: its job-submission address, where it is, the storage path at
    which its nodes see the server's runs directory, and its Ray auth token (kept in the server's
    secrets store, never shown)."""

    model_config = {"extra": "forbid"}
    name: str
    address: str
    site: str | None = None
    tier: Literal["center", "edge"] = "center"
    storage: str | None = None
    token: str | None = None
    links: dict[str, dict[str, float]] = Field(default_factory=dict)


class ArtifactEvent(BaseModel):
    model_config = {"extra": "forbid"}
    type: str = Field(pattern="^(" + "|".join(ARTIFACT_EVENTS) + ")$")
    detail: dict[str, Any] = Field(default_factory=dict, max_length=32)


PUBLIC_PATHS = frozenset({"/healthz", "/ui"})  # /ui: the ops page's shell, no data in it


def create_app(server) -> FastAPI:
    """The API of `server` (a `runtime.server.service.Server`). Every route needs a valid token
    except /healthz (and /metrics with `--metrics-public`); each checks its permission."""
    from runtime import __version__
    from runtime.server.auth import AuthError, Identity

    app = FastAPI(title="suanli", version=__version__,
                  description="One control plane for suanli: jobs, their events and logs, capacity, accounts, audit.")
    public = PUBLIC_PATHS | ({"/metrics"} if server.options.metrics_public else set())

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        length = request.headers.get("content-length")
        if (length and int(length) > MAX_BODY_BYTES) or (request.method in ("POST", "PUT") and length is None
                                                          and request.headers.get("transfer-encoding")):
            return JSONResponse(status_code=413, content={"detail": f"body: larger than {MAX_BODY_BYTES} bytes, or "
                                                          "sent without a Content-Length; send at most that"})
        if request.url.path in public:
            return await call_next(request)
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        try:
            identity = await run_in_threadpool(server.authenticate, token)
        except AuthError as exc:
            await run_in_threadpool(server.audit_refused, "anonymous", request.method, request.url.path, 401, str(exc))
            return JSONResponse(status_code=401, content={"detail": f"unauthorized: {exc}"},
                                headers={"WWW-Authenticate": "Bearer"})
        request.state.identity = identity
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, err: RequestValidationError):
        return JSONResponse(status_code=422, content={"detail": _one_line(err)})

    def forbid(identity: Identity, request: Request, what: str) -> HTTPException:
        server.audit_refused(identity.name, request.method, request.url.path, 403, what)
        return HTTPException(403, f"forbidden: {identity.name} ({identity.role}) may not {what}")

    def allow(permission: str):
        def check(request: Request) -> Identity:
            identity = request.state.identity
            if not identity.may(permission):
                raise forbid(identity, request, permission)
            return identity
        return Depends(check)

    def job_for(action: str):
        """The job of the path, if the caller may `action` it (jobs:`action`:own|tenant|all)."""
        def check(job_id: str, request: Request) -> JobRecord:
            identity = request.state.identity
            if identity.job_scope(action) is None:
                raise forbid(identity, request, f"jobs:{action}")
            try:
                record = server.store.get(job_id)
            except KeyError:
                raise HTTPException(404, f"job: no job {job_id!r}") from None
            if not identity.can_touch(action, record.user, record.tenant):
                raise forbid(identity, request, f"{action} job {job_id} of {record.user} (tenant {record.tenant})")
            return record
        return Depends(check)

    @app.get("/healthz")
    def healthz() -> dict:
        """Liveness and role: `active` holds the controller lease, `standby` waits for it."""
        lease = server.leases.current()
        controller = server.controller
        return {"status": "ok", "role": server.lease.role, "pid": os.getpid(), "holder": server.lease.holder,
                "lease": lease.as_dict() if lease else None, "version": __version__, "api_version": API_VERSION,
                "ray_address": server.ray_address, "store": server.store.where, "audit_chain_ok": server.audit_ok,
                "controller": {"step_failures": controller.step_failures, "last_error": controller.last_error,
                               "last_step_at": controller.last_step_at, "attempts_followed": len(controller.tracked)}}

    @app.get("/whoami")
    def whoami(request: Request) -> dict:
        identity = request.state.identity
        return {"name": identity.name, "role": identity.role, "tenant": identity.tenant, "token_id": identity.token_id,
                "permissions": sorted(PERMISSIONS[identity.role])}

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        identity = getattr(request.state, "identity", None)
        if identity is not None and not identity.may("metrics:read"):
            raise forbid(identity, request, "metrics:read")
        return Response(server.metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.post("/jobs", status_code=201)
    def submit(body: Submission, request: Request, identity: Identity = allow("jobs:submit")) -> dict:
        """Validate and store a job (QUEUED, or REJECTED with the reason when it can never fit).
        Its user is the caller; its tenant the caller's (admins may name another)."""
        code = None
        if body.train_fn_b64 is not None:
            try:
                code = base64.b64decode(body.train_fn_b64, validate=True)
            except (binascii.Error, ValueError):
                raise HTTPException(422, "train_fn_b64: not base64; send cloudpickle.dumps(fn) base64-encoded") from None
        fields = dict(body.spec)
        tenant = fields.get("tenant") or identity.tenant
        if tenant != identity.tenant and identity.role != "admin":
            raise forbid(identity, request, f"submit for tenant {tenant!r} (yours is {identity.tenant!r})")
        fields.update(tenant=tenant, user=identity.name)
        if body.kind == "features":
            try:
                feature_job = FeatureJob.model_validate(fields)
            except ValidationError as err:
                raise HTTPException(422, _one_line(err, "spec.")) from None
            spec = server.admission.prepare_features(feature_job)
            rejection = server.admission.rejection_for(feature_job.tenant, 1, spec)
            state = JobState.REJECTED if rejection else JobState.QUEUED
            job_id = server.store.add(feature_job.name, feature_job.tenant, feature_job.user, spec, None, state=state,
                                      detail=rejection or "")
            server.submissions.inc()
            return job_view(server.store.get(job_id))
        try:
            job = TrainingJob.model_validate(fields, context={"has_train_fn": code is not None})
        except ValidationError as err:
            raise HTTPException(422, _one_line(err, "spec.")) from None
        spec = server.admission.prepare(job)  # dataset checks: 4xx naming the field
        if code is not None:
            spec.update(_train_fn_name=body.train_fn_name, _train_fn_source=body.train_fn_source,
                        _train_fn_sha256=hashlib.sha256(code).hexdigest())
        rejection = server.admission.rejection(job, spec)
        state = JobState.REJECTED if rejection else JobState.QUEUED
        job_id = server.store.add(job.name, job.tenant, job.user, spec, code, state=state, detail=rejection or "")
        server.submissions.inc()
        return job_view(server.store.get(job_id))

    @app.get("/jobs")
    def list_jobs(request: Request, tenant: str | None = None, state: str | None = None) -> list[dict]:
        """The jobs the caller may read: all, their tenant's, or their own, by role."""
        identity = request.state.identity
        scope = identity.job_scope("read")
        if scope is None:
            raise forbid(identity, request, "jobs:read")
        states = None
        if state:
            try:
                states = (JobState(state.upper()),)
            except ValueError:
                raise HTTPException(422, f"state: {state!r} is not one of "
                                         f"{', '.join(s.value for s in JobState)}") from None
        records = server.store.list(tenant=tenant if scope == "all" else identity.tenant, states=states)
        return [job_view(r) for r in records if scope != "own" or r.user == identity.name]

    @app.get("/jobs/{job_id}")
    def get_job(record: JobRecord = job_for("read")) -> dict:
        return job_view(record)

    @app.get("/jobs/{job_id}/events")
    def job_events(record: JobRecord = job_for("read")) -> list[dict]:
        """The job's state transitions and requests, in order, with time, actor and detail."""
        return server.store.events(record.id)

    @app.get("/jobs/{job_id}/logs", response_class=PlainTextResponse)
    def job_logs(record: JobRecord = job_for("read")) -> str:
        return server.store.logs(record.id)

    @app.get("/jobs/{job_id}/provenance")
    def job_provenance(record: JobRecord = job_for("read")) -> dict:
        """The provenance record of a SUCCEEDED job (JR/T 0221 6.4)."""
        if not record.result or not record.result.get("provenance_path"):
            raise HTTPException(409, f"job: {record.id} is {record.state.value}; provenance exists once it SUCCEEDED")
        return json.loads(Path(record.result["provenance_path"]).read_text())

    @app.get("/jobs/{job_id}/checkpoints")
    def job_checkpoints(record: JobRecord = job_for("read")) -> list[dict]:
        """The job's checkpoints with the sha256 recorded when each was written."""
        return server.store.checkpoints(record.id)

    @app.get("/jobs/{job_id}/placement")
    def placement(record: JobRecord = job_for("read")) -> dict:
        """The job's placement and its attempts (where each was placed, how it ended)."""
        return {"placement": record.placement, "attempts": [asdict(a) for a in server.store.attempts_of(record.id)]}

    @app.post("/jobs/{job_id}/cancel")
    def cancel(request: Request, record: JobRecord = job_for("cancel")) -> dict:
        """Cancel a job; the actor recorded is the caller."""
        try:
            state = server.store.request_cancel(record.id, request.state.identity.name)
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        return {"id": record.id, "state": state.value, "cancel_requested": True}

    @app.get("/capacity")
    def capacity(identity: Identity = allow("capacity:read")) -> dict:
        """Capacity per cluster, tier and device kind from the newest snapshot (lost clusters'
        devices are not counted), every cluster's health, and quota use."""
        from cluster.capacity import capacity_report

        state = server.current_snapshot()
        return {**capacity_report(state), "taken_at": state.taken_at, "age_s": round(time.time() - state.taken_at, 3),
                "clusters": server.clusters_status(), "quotas": quota_report(server.store)}

    # ---- the ops page -------------------------------------------------------------------------
    @app.get("/ui", include_in_schema=False)
    def ops_page() -> FileResponse:
        """The ops page: a shell without data that polls /ui/state with the token it is given."""
        from runtime.server.ops import PAGE

        return FileResponse(PAGE, media_type="text/html", headers={"Cache-Control": "no-store",
                            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                                       "style-src 'unsafe-inline'; connect-src 'self'"})

    @app.get("/ui/state")
    def ops_page_state(request: Request, identity: Identity = allow("capacity:read")) -> dict:
        """What the ops page shows: clusters with health, capacity per cluster/tier/kind, the queue
        with each job's reason and estimated start, active jobs, quota use (jobs the caller may
        not read are counted, not listed)."""
        from runtime.server.ops import ops_state

        return ops_state(server, identity)

    # ---- clusters (federation) ---------------------------------------------------------------
    @app.post("/clusters", status_code=201)
    def add_cluster(body: NewCluster, identity: Identity = allow("clusters:manage")) -> dict:
        """Register a Ray cluster (422 naming the field when the entry is invalid or the name taken);
        it is probed from now on and scheduled onto once healthy."""
        try:
            entry = server.add_cluster(body.model_dump(), identity.name)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"name": entry.name, "address": entry.address, "site": entry.site, "tier": entry.tier}

    @app.get("/clusters")
    def list_clusters(identity: Identity = allow("capacity:read")) -> list[dict]:
        """Every registered cluster with its health (healthy, lost, unknown), missed probes, last
        answer and node count; the server's own cluster first."""
        return server.clusters_status()

    @app.delete("/clusters/{name}")
    def remove_cluster(name: str, identity: Identity = allow("clusters:manage")) -> dict:
        """Forget a cluster (409 while attempts run on it)."""
        try:
            removed = server.remove_cluster(name, identity.name)
        except RuntimeError as exc:
            raise HTTPException(409, str(exc)) from None
        if not removed:
            raise HTTPException(404, f"cluster: no registered cluster {name!r}")
        return {"name": name, "removed": True}

    # ---- quotas ------------------------------------------------------------------------------
    @app.get("/quotas")
    def list_quotas(identity: Identity = allow("capacity:read")) -> list[dict]:
        """Every cap with what is in use against it now."""
        return quota_report(server.store)

    @app.put("/quotas/{scope}/{name}")
    def set_quota(scope: str, name: str, body: QuotaLimits, identity: Identity = allow("users:manage")) -> dict:
        """Cap a tenant's or a user's devices per kind and concurrent jobs (an empty body removes it)."""
        if scope not in ("tenant", "user"):
            raise HTTPException(422, f"scope: {scope!r} is not tenant or user")
        limits = body.model_dump(exclude_none=True)
        server.store.set_quota(f"{scope}:{name}", limits or None, identity.name)
        server.audit.append("quota-set", identity.name, {"key": f"{scope}:{name}", "limits": limits}, level="notice")
        return {"key": f"{scope}:{name}", "limits": limits}

    # ---- accounts ----------------------------------------------------------------------------
    @app.post("/users", status_code=201)
    def add_user(body: NewUser, identity: Identity = allow("users:manage")) -> dict:
        """A new user with a first token (returned once)."""
        try:
            server.accounts.add_user(body.name, body.role, body.tenant, created_by=identity.name)
            token, record = server.accounts.create_token(body.name, body.expires_s, label="first token")
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        server.audit.append("user-added", identity.name, {"user": body.name, "role": body.role, "tenant": body.tenant},
                            level="notice")
        server.audit.append("token-created", identity.name, {"user": body.name, "token_id": record["id"],
                                                             "expires_at": record["expires_at"]}, level="notice")
        return {"name": body.name, "role": body.role, "tenant": body.tenant, "token": token, "token_id": record["id"]}

    @app.get("/users")
    def list_users(identity: Identity = allow("users:manage")) -> list[dict]:
        return server.accounts.users()

    @app.post("/users/{name}/revoke")
    def revoke_user(name: str, identity: Identity = allow("users:manage")) -> dict:
        admins = [u["name"] for u in server.accounts.users() if u["role"] == "admin" and not u["revoked"]]
        if name == identity.name or admins == [name]:
            raise HTTPException(409, f"name: {name!r} is {'you' if name == identity.name else 'the last admin'}; "
                                     "another admin must revoke it (an installation without an admin is locked)")
        try:
            revoked = server.accounts.revoke_user(name)
        except KeyError as exc:
            raise HTTPException(404, exc.args[0]) from None
        server.forget_identities()
        server.audit.append("user-revoked", identity.name, {"user": name, "tokens_revoked": revoked}, level="notice")
        return {"name": name, "tokens_revoked": revoked}

    @app.post("/tokens", status_code=201)
    def create_token(body: NewToken, request: Request) -> dict:
        """A token for the caller, or (users:manage) for another user; returned once."""
        identity = request.state.identity
        try:
            user = server.accounts.token_owner(identity, body.user)
        except PermissionError as exc:
            raise forbid(identity, request, str(exc)) from None
        try:
            token, record = server.accounts.create_token(user, body.expires_s, body.label)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except KeyError as exc:
            raise HTTPException(404, exc.args[0]) from None
        server.audit.append("token-created", identity.name, {"user": user, "token_id": record["id"],
                                                             "expires_at": record["expires_at"]}, level="notice")
        return {**record, "token": token}

    @app.post("/tokens/{token_id}/revoke")
    def revoke_token(token_id: str, request: Request) -> dict:
        identity = request.state.identity
        owner = next((t["user"] for t in server.accounts.tokens_of(identity.name) if t["id"] == token_id), None)
        if owner is None and not identity.may("users:manage"):
            raise forbid(identity, request, f"revoke token {token_id}")
        try:
            owner = server.accounts.revoke_token(token_id)
        except KeyError as exc:
            raise HTTPException(404, exc.args[0]) from None
        server.forget_identities()
        server.audit.append("token-revoked", identity.name, {"user": owner, "token_id": token_id}, level="notice")
        return {"id": token_id, "revoked": True}

    # ---- audit -------------------------------------------------------------------------------
    @app.get("/audit/tail")
    def audit_tail(n: int = 50, identity: Identity = allow("audit:read")) -> list[dict]:
        from runtime.audit.log import AuditLog

        return AuditLog.read_tail(server.audit.directory, max(1, min(n, 10_000)))

    @app.post("/audit/events", status_code=201)
    def report_event(body: ArtifactEvent, request: Request) -> dict:
        """Record an artifact event that the SDK carried out in the caller's process (export and
        signing, verification failures, compression, registry changes, deployment). The caller's
        role must allow the action; the actor is the caller."""
        identity = request.state.identity
        need = ARTIFACT_EVENTS[body.type]
        if need and not identity.may(need):
            raise forbid(identity, request, f"{need} ({body.type})")
        level = "error" if body.type.endswith("failed") else "notice"
        record = server.audit.append(body.type, identity.name, body.detail, level=level, component="sdk")
        return {"seq": record["seq"]}

    @app.post("/deployments", status_code=201)
    def deploy_model(body: DeployRequest, identity: Identity = allow("models:deploy")) -> dict:
        """Deploy a registry version on Ray Serve (a scoring application per site at its edge
        nodes, one in the centre, the edge-first router); 404 unknown, 403 withdrawn, 422 bad
        settings."""
        from runtime.artifacts.registry import RegistryRefused, open_registry, trusted_key
        from runtime.serving.deploy import deploy_version
        from runtime.serving.tokens import ScoringKeys

        root = resolve_dataset(body.registry, server.options.data_dirs, field="registry", output=True)
        try:
            registry = open_registry(root, trusted_key(server.state_dir, server.options.signing_public_key))
        except RegistryRefused as exc:
            raise HTTPException(exc.status, str(exc)) from None
        try:
            deployed = deploy_version(registry, body.model, body.version, identity.name, body.settings,
                                      ScoringKeys(server.state_dir).public_pem, server.options.serve_port)
        except KeyError as exc:
            raise HTTPException(404, str(exc).strip("'\"")) from None
        except PermissionError as exc:
            raise HTTPException(403, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        finally:
            registry.close()
        server.audit.append("artifact-deployed", identity.name, {**deployed, "sites": ",".join(deployed["sites"])},
                            component="server")
        return deployed

    @app.post("/deployments/{name}/token", status_code=201)
    def scoring_token(name: str, identity: Identity = allow("endpoints:score")) -> dict:
        """A scoring token for deployed version `name` (its routes need one), in the caller's name."""
        from runtime.serving.deploy import deployed
        from runtime.serving.tokens import ScoringKeys

        if name not in {d["app"] for d in deployed()}:
            raise HTTPException(404, f"deployment: no application {name!r}")
        issued = ScoringKeys(server.state_dir).issue(identity.name, identity.role, identity.tenant, name)
        server.audit.append("scoring-token-issued", identity.name, {"app": name, "expires_at": issued["expires_at"]})
        return issued

    def may_change(action: Literal["promote", "rollback", "withdraw"], request: Request) -> Identity:
        from runtime.artifacts.registry import STAGE_CHANGES

        if not request.state.identity.may(STAGE_CHANGES[action]):
            raise forbid(request.state.identity, request, STAGE_CHANGES[action])
        return request.state.identity

    @app.post("/registry/{action}")
    def registry_change(action: Literal["promote", "rollback", "withdraw"], body: RegistryChange,
                        identity: Identity = Depends(may_change)) -> dict:
        """Promote, roll back or withdraw a version in a registry on the server (its role checked:
        artifacts:promote or artifacts:withdraw), recorded as the caller in the registry and the audit log."""
        from runtime.artifacts import registry as models

        root = resolve_dataset(body.registry, server.options.data_dirs, field="registry", output=True)
        try:
            changed = models.apply_stage_change(root, models.trusted_key(server.state_dir, server.options.signing_public_key),
                                                action, body.model, body.version, identity.name, body.reason)
        except models.RegistryRefused as exc:
            raise HTTPException(exc.status, str(exc)) from None
        server.audit.append(models.STAGE_EVENTS[action], identity.name, {"registry": str(root), "model": changed["model"],
                            "reason": body.reason}, level="notice", component="server")
        return changed

    @app.get("/deployments")
    def list_deployments(identity: Identity = allow("models:deploy")) -> list[dict]:
        """Each deployed version with its status and its deployments' (router, centre, edge:<site>)."""
        from runtime.serving.deploy import deployed

        return deployed()

    @app.delete("/deployments/{name}")
    def delete_deployment(name: str, identity: Identity = allow("models:deploy")) -> dict:
        from runtime.serving.deploy import deployed, undeploy

        if name not in {d["app"] for d in deployed()}:
            raise HTTPException(404, f"deployment: no application {name!r}")
        undeploy(name)
        server.audit.append("artifact-undeployed", identity.name, {"app": name}, component="server")
        return {"app": name, "deleted": True}

    @app.get("/audit/verify")
    def audit_verify(identity: Identity = allow("audit:read")) -> dict:
        verdict = server.verify_audit()
        return {"ok": verdict.ok, "records": verdict.records, "checkpoints": verdict.checkpoints,
                "first_bad_seq": verdict.first_bad_seq, "reason": verdict.reason}

    app.state.server = server
    return app


def resolve_dataset(path: str, allowed: list[Path], field: str = "dataset", output: bool = False) -> Path | str:
    """An absolute path the server may read (a file, or for `dataset` a directory of files) or,
    with `output`, write: inside one of `allowed` (when any are set). A URI other than file://
    (s3://, gs://, ...) is returned as given, for the reader to reach. HTTPException 4xx naming
    `field` and the fix otherwise."""
    if "://" in path:
        scheme, _, rest = path.partition("://")
        if scheme != "file":
            if allowed:
                raise HTTPException(403, f"{field}: {path!r} is a remote URI and this server reads only "
                                         f"{', '.join(map(str, allowed))}; copy the data there or start the server "
                                         "without --data-dir")
            return path
        path = rest
    file = Path(path)
    if not file.is_absolute():
        raise HTTPException(422, f"{field}: {path!r} is relative; the server cannot know your working directory: "
                                 "give an absolute path (the SDK and CLI resolve relative paths for you)")
    resolved = file.resolve()
    if allowed and not any(resolved.is_relative_to(root) for root in allowed):
        raise HTTPException(403, f"{field}: {resolved} is outside what this server may read "
                                 f"({', '.join(map(str, allowed))}); move it there or start the server with "
                                 "--data-dir")
    if output:
        if not resolved.parent.is_dir() or not os.access(resolved.parent, os.W_OK):
            raise HTTPException(422, f"{field}: {resolved.parent} does not exist or the server cannot write there")
        return resolved
    if not (resolved.is_file() or (field == "dataset" and resolved.is_dir())):
        raise HTTPException(422, f"{field}: {resolved} does not exist on the server (or is not a file)")
    if not os.access(resolved, os.R_OK):
        raise HTTPException(403, f"{field}: {resolved} is not readable by the server's user")
    return resolved
