"""Deploying a registry version on Ray Serve: one scoring application per site on that site's edge
nodes (route `/models/<name>/v<version>/edges/<site>`), one in the centre (`.../centre`), and the
edge-first router (`/models/<name>/v<version>`: `/sites/<site>/score`, `/score`) for callers that
do not fail over themselves. The scoring client calls the site's and the centre's routes directly
(one hop from the HTTP ingress) and fails over itself. Every route asks for a scoring token of the
version (runtime.serving.tokens). Only a version the registry holds and has not
withdrawn is deployed, and every deploy is recorded in the registry (who, when, which version,
where).

Placement uses the marker resources every suanli node carries (`site:<site>`, `tier:<tier>`), so
an edge deployment's replicas start only on edge nodes of its site and the centre's only on
centre nodes. ONNX Runtime's execution provider follows the device kind asked for (CUDA on gpu,
CANN on npu where installed; the CPU otherwise).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cluster.labels import MARKER_AMOUNT
from runtime.artifacts.signing import SignatureError, verify_directory
from runtime.serving.decisions import check_thresholds

log = logging.getLogger(__name__)

DEFAULT_HTTP_PORT = 8000


class ServeSettings(BaseModel):
    """What a deploy call may set; validated, with the field named on error."""

    model_config = ConfigDict(extra="forbid")

    sites: list[str] = Field(default_factory=list, max_length=64)
    kind: str = Field(default="cpu", pattern="^(cpu|gpu|npu)$")
    min_replicas: int = Field(default=1, ge=1, le=64)
    max_replicas: int = Field(default=1, ge=1, le=64)
    target_ongoing_requests: float = Field(default=8, gt=0)
    # Each in flight costs an asyncio task, not a core: the centre must hold rate x latency when it
    # takes an edge's traffic while Serve's HTTP path is slowed by the lost node (~0.25-1 s a
    # request on the emulated cluster, see benchmarks/serving.py), so 128 rather than Serve's 5
    max_ongoing_requests: int = Field(default=128, ge=1, le=10_000)
    max_queued_requests: int = Field(default=64, ge=1, le=100_000)
    max_batch_size: int = Field(default=32, ge=1, le=4096)
    batch_wait_timeout_s: float = Field(default=0.002, ge=0, le=1)
    edge_deadline_ms: float = Field(default=150, gt=0, le=60_000)
    # the router answers 504 when it has no answer this long after reading a request (a caller's
    # X-Request-Timeout-Ms header shortens it)
    request_deadline_ms: float = Field(default=1000, gt=0, le=600_000)
    eject_after: int = Field(default=3, ge=1, le=100)
    eject_s: float = Field(default=2.0, gt=0, le=600)
    retry_after_s: int = Field(default=1, ge=0, le=3600)  # Retry-After of every 503 past the queue bounds
    thresholds: dict | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ServeSettings:
        if self.request_deadline_ms < self.edge_deadline_ms:
            raise ValueError(f"request_deadline_ms: {self.request_deadline_ms:g} is below edge_deadline_ms "
                             f"{self.edge_deadline_ms:g}; the request's deadline must leave the edge its own")
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas: {self.max_replicas} is below min_replicas {self.min_replicas}")
        if self.max_batch_size > self.max_ongoing_requests:
            raise ValueError(f"max_batch_size: {self.max_batch_size} exceeds max_ongoing_requests "
                             f"{self.max_ongoing_requests}; a batch is made of requests in flight")
        self.thresholds = check_thresholds(self.thresholds)
        return self


SCORING = "scoring"  # the deployment's name in each site's and the centre's application
ROUTER_QUEUE = 4  # Serve's queue in front of each router replica (see build_apps)
ROUTER_ON_ONE_LOOP = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0"}


def app_name(model: str, version: int) -> str:
    """The router's application; the others are named after it (`<app>:centre`, `<app>:edge:<site>`)."""
    return f"{model}-v{version}"


def route_prefix(model: str, version: int) -> str:
    return f"/models/{model}/v{version}"


def scoring_apps(app: str, prefix: str, sites: list[str]) -> dict[str, tuple[str, str | None]]:
    """{application name: (route prefix, site or None for the centre)} of a version's scoring
    applications."""
    return {f"{app}:centre": (f"{prefix}/centre", None),
            **{f"{app}:edge:{site}": (f"{prefix}/edges/{site}", site) for site in sites}}


def owner_app(name: str) -> str:
    """The router application a scoring application belongs to (itself for any other)."""
    return name.split(":", 1)[0]


def _replica_options(settings: ServeSettings, resources: dict, name: str) -> dict:
    from ray.serve.config import BackpressureConfig

    autoscaling = None
    if settings.max_replicas > settings.min_replicas:
        autoscaling = {"min_replicas": settings.min_replicas, "max_replicas": settings.max_replicas,
                       "target_ongoing_requests": settings.target_ongoing_requests,
                       "upscale_delay_s": 2, "downscale_delay_s": 30}
    options = {"name": name, "max_ongoing_requests": settings.max_ongoing_requests,
               "max_queued_requests": settings.max_queued_requests, "health_check_period_s": 2,
               "health_check_timeout_s": 5, "graceful_shutdown_timeout_s": 2,
               "backpressure_config": BackpressureConfig(retry_after_s=settings.retry_after_s),  # 503s name the delay
               "ray_actor_options": {"num_cpus": 0, "resources": resources}}
    if autoscaling:
        options["autoscaling_config"] = autoscaling
    else:
        options["num_replicas"] = settings.min_replicas
    return options


def build_apps(artifact_dir: str, public_key: str | None, model_id: str, app: str, prefix: str,
               settings: ServeSettings, scoring_key: bytes | None) -> list:
    """The Serve applications (not yet running) of one model version, as `serve.RunTarget`s: the
    scoring applications first, the router last. Their HTTP routes accept only scoring tokens for
    `app` signed by the key whose public half is `scoring_key` (PEM); None checks no token, which
    only benchmarks' peers use (`deploy_version` always passes the server's)."""
    from ray import serve

    from runtime.serving.replica import ScoringReplica
    from runtime.serving.router import EdgeFirstRouter

    replica = serve.deployment(ScoringReplica)
    common = (artifact_dir, public_key, settings.kind, model_id)
    batching = {"max_batch_size": settings.max_batch_size, "batch_wait_timeout_s": settings.batch_wait_timeout_s,
                "scoring_key": scoring_key, "app": app}
    targets, edge_apps, centre_app = [], {}, None
    for name, (route, site) in scoring_apps(app, prefix, settings.sites).items():
        where = ({f"site:{site}": MARKER_AMOUNT, "tier:edge": MARKER_AMOUNT} if site else
                 {"tier:center": MARKER_AMOUNT})
        bound = replica.options(**_replica_options(settings, where, SCORING)).bind(
            *common, site or "centre", "edge" if site else "center", settings.thresholds, **batching)
        targets.append(serve.RunTarget(bound, name=name, route_prefix=route))
        if site:
            edge_apps[site] = name
        else:
            centre_app = name
    # The router lives in the centre: placed anywhere, it could land on an edge node and die with
    # it, taking the centre route down too. It scales like the replicas. Each router replica admits
    # twice what one scoring replica holds (ongoing + queued) and refuses the rest itself, at once
    # (503, the same Retry-After), so when the replicas are the bottleneck their bounded queues
    # refuse first and when the router is, it does. Serve's own slots for the router are twice
    # that, so that no request waits in Serve's queue for one (the wait would be outside its
    # deadline), and its queue is short: Serve counts a request as queued from its arrival until
    # it has a slot, so a router process that falls behind refuses rather than piling requests up.
    # The router's code and its handles run on the replica's one event loop (Serve's defaults put
    # each on a thread of its own): it is all awaits, and one loop answers without a thread hop.
    # Measured with benchmarks/serving.py's load (2 cores): through the router at 150-200 req/s p99
    # 16-25 ms and none refused (66-98 ms with threads), 0 answered late in 3 x 10 s at 1,400 req/s
    # (with threads and Serve's queue of 8: 0.2-0.8% late in some runs; with a queue of 1, 0.1-2%
    # refused at 150-200 req/s).
    router_in_flight = 2 * (settings.max_ongoing_requests + settings.max_queued_requests)
    router_options = _replica_options(settings, {"tier:center": MARKER_AMOUNT}, "router")
    router_options.update(max_ongoing_requests=2 * router_in_flight, max_queued_requests=ROUTER_QUEUE)
    router_options["ray_actor_options"]["runtime_env"] = {"env_vars": ROUTER_ON_ONE_LOOP}
    router = serve.deployment(EdgeFirstRouter).options(**router_options)
    targets.append(serve.RunTarget(router.bind(edge_apps, centre_app, SCORING, model_id, settings.edge_deadline_ms / 1e3,
                                               settings.eject_after, settings.eject_s, settings.retry_after_s,
                                               settings.request_deadline_ms / 1e3, router_in_flight,
                                               scoring_key, app),
                                   name=app, route_prefix=prefix))
    return targets


def check_sites(sites: list[str]) -> None:
    """ValueError naming the site unless the cluster has a live edge node there and a centre node
    (Serve would otherwise wait forever for a replica that cannot be placed)."""
    import ray

    alive = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if not any("tier:center" in r for r in alive):
        raise ValueError("sites: the cluster has no centre node for the centre deployment")
    for site in sites:
        if not any(f"site:{site}" in r and "tier:edge" in r for r in alive):
            raise ValueError(f"sites: no live edge node at site {site!r}; sites with edge nodes: "
                             f"{', '.join(sorted({k[5:] for r in alive if 'tier:edge' in r for k in r if k.startswith('site:')})) or 'none'}")


def start_serve(http_port: int = DEFAULT_HTTP_PORT) -> None:
    """Start Ray Serve on the connected cluster (HTTP on loopback, proxy on the head node) unless it
    is already running."""
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": http_port}, proxy_location="HeadOnly")


def deploy_version(registry, model: str, version: int | str, actor: str, settings: ServeSettings,
                   scoring_key: bytes, http_port: int = DEFAULT_HTTP_PORT) -> dict:
    """Deploy a registry version (number or stage), verified with the registry's key, and wait
    until its replicas are up; its routes accept scoring tokens signed by the key whose public
    half is `scoring_key` (the server's, runtime.serving.tokens). KeyError for an unknown version,
    PermissionError for a withdrawn one (nothing deployed or recorded then). Returns {"app",
    "model", "url", "sites"}."""
    from ray import serve

    found = registry.version(model, version)
    if found.stage == "withdrawn":
        raise PermissionError(f"model: {found.model_id} was withdrawn ({found.note}); it is never served")
    try:  # here, before any replica starts: a replica that cannot verify would only fail to start
        verify_directory(found.path, registry.public_key)
    except SignatureError as exc:
        raise ValueError(f"model: {found.model_id} does not verify with the server's trusted key; it is never "
                         f"served ({exc})") from None
    check_sites(settings.sites)
    start_serve(http_port)
    name, prefix = app_name(found.name, found.version), route_prefix(found.name, found.version)
    targets = build_apps(str(Path(found.path)), registry.public_key and str(registry.public_key), found.model_id,
                         name, prefix, settings, scoring_key)
    serve.run_many(targets)
    wanted = {t.name for t in targets}
    for stale in [a for a in serve.status().applications if owner_app(a) == name and a not in wanted]:
        serve.delete(stale)  # a site dropped since the last deploy of this version
    registry.record_deploy(found.name, found.version, actor, f"sites {','.join(settings.sites) or '-'}; "
                                                             f"kind {settings.kind}")
    return {"app": name, "model": found.model_id, "url": f"http://127.0.0.1:{http_port}{prefix}",
            "sites": settings.sites}


def deployed() -> list[dict]:
    """Each deployed version (its router's application name) with its status (the first not
    RUNNING among its applications, RUNNING otherwise), messages and every deployment's status
    ("router", "centre", "edge:<site>"). Empty when Serve is not running."""
    from ray import serve

    try:
        applications = serve.status().applications
    except Exception as exc:  # noqa: BLE001 - Serve's controller unreachable (dead actor, Ray down): report none
        log.warning("serving: Serve's status could not be read (%s: %s); reporting no deployments",
                    type(exc).__name__, exc)
        return []
    versions: dict[str, dict] = {}
    for name, app in sorted(applications.items()):
        owner = owner_app(name)
        entry = versions.setdefault(owner, {"app": owner, "status": "RUNNING", "message": "", "deployments": {}})
        state = str(getattr(app.status, "value", app.status))
        if state != "RUNNING" and entry["status"] == "RUNNING":
            entry["status"] = state
        entry["message"] = "; ".join(m for m in (entry["message"], app.message) if m)
        for deployment, info in app.deployments.items():
            role = deployment if name == owner else name.split(":", 1)[1]
            entry["deployments"][role] = str(getattr(info.status, "value", info.status))
    return list(versions.values())


def undeploy(name: str) -> None:
    """Delete a deployed version by its application name, with its scoring applications (the
    router first, so it never calls a deleted one)."""
    from ray import serve

    serve.delete(name)
    for app in [a for a in serve.status().applications if owner_app(a) == name]:
        serve.delete(app)
