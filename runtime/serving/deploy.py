"""Deploying a registry version as a Ray Serve application: one scoring deployment per site on
that site's edge nodes, one in the centre, and the edge-first router as the HTTP entry
(`/models/<name>/v<version>`). Only a version the registry holds and has not withdrawn is
deployed, and every deploy is recorded in the registry (who, when, which version, where).

Placement uses the marker resources every suanli node carries (`site:<site>`, `tier:<tier>`), so
an edge deployment's replicas start only on edge nodes of its site and the centre's only on
centre nodes. ONNX Runtime's execution provider follows the device kind asked for (CUDA on gpu,
CANN on npu where installed; the CPU otherwise).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cluster.labels import MARKER_AMOUNT
from runtime.serving.decisions import check_thresholds

DEFAULT_HTTP_PORT = 8000


class ServeSettings(BaseModel):
    """What a deploy call may set; validated, with the field named on error."""

    model_config = ConfigDict(extra="forbid")

    sites: list[str] = Field(default_factory=list, max_length=64)
    kind: str = Field(default="cpu", pattern="^(cpu|gpu|npu)$")
    min_replicas: int = Field(default=1, ge=1, le=64)
    max_replicas: int = Field(default=1, ge=1, le=64)
    target_ongoing_requests: float = Field(default=8, gt=0)
    max_ongoing_requests: int = Field(default=32, ge=1, le=10_000)
    max_queued_requests: int = Field(default=64, ge=1, le=100_000)
    max_batch_size: int = Field(default=32, ge=1, le=4096)
    batch_wait_timeout_s: float = Field(default=0.002, ge=0, le=1)
    edge_deadline_ms: float = Field(default=150, gt=0, le=60_000)
    eject_after: int = Field(default=3, ge=1, le=100)
    eject_s: float = Field(default=2.0, gt=0, le=600)
    thresholds: dict | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ServeSettings:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas: {self.max_replicas} is below min_replicas {self.min_replicas}")
        if self.max_batch_size > self.max_ongoing_requests:
            raise ValueError(f"max_batch_size: {self.max_batch_size} exceeds max_ongoing_requests "
                             f"{self.max_ongoing_requests}; a batch is made of requests in flight")
        self.thresholds = check_thresholds(self.thresholds)
        return self


def app_name(model: str, version: int) -> str:
    return f"{model}-v{version}"


def route_prefix(model: str, version: int) -> str:
    return f"/models/{model}/v{version}"


def _replica_options(settings: ServeSettings, resources: dict, name: str) -> dict:
    autoscaling = None
    if settings.max_replicas > settings.min_replicas:
        autoscaling = {"min_replicas": settings.min_replicas, "max_replicas": settings.max_replicas,
                       "target_ongoing_requests": settings.target_ongoing_requests,
                       "upscale_delay_s": 2, "downscale_delay_s": 30}
    options = {"name": name, "max_ongoing_requests": settings.max_ongoing_requests,
               "max_queued_requests": settings.max_queued_requests, "health_check_period_s": 2,
               "health_check_timeout_s": 5, "graceful_shutdown_timeout_s": 2,
               "ray_actor_options": {"num_cpus": 0, "resources": resources}}
    if autoscaling:
        options["autoscaling_config"] = autoscaling
    else:
        options["num_replicas"] = settings.min_replicas
    return options


def build_app(artifact_dir: str, public_key: str | None, model_id: str, settings: ServeSettings):
    """The Serve application (not yet running) for one model version."""
    from ray import serve

    from runtime.serving.replica import ScoringReplica
    from runtime.serving.router import EdgeFirstRouter

    replica = serve.deployment(ScoringReplica)
    common = (artifact_dir, public_key, settings.kind, model_id)
    batching = {"max_batch_size": settings.max_batch_size, "batch_wait_timeout_s": settings.batch_wait_timeout_s}
    centre = replica.options(**_replica_options(settings, {"tier:center": MARKER_AMOUNT}, "centre")).bind(
        *common, "centre", "center", settings.thresholds, **batching)
    edges = {site: replica.options(**_replica_options(settings, {f"site:{site}": MARKER_AMOUNT,
                                                                 "tier:edge": MARKER_AMOUNT}, f"edge-{site}")).bind(
        *common, site, "edge", settings.thresholds, **batching) for site in settings.sites}
    # The router only awaits the replicas: it takes many requests at once, and its queue is large
    # enough that overload is met at the replicas' bounded queues (503 with Retry-After from the
    # router), not at Serve's proxy (503 without one).
    # It lives in the centre: placed anywhere, it could land on an edge node and die with it,
    # taking the centre route down too.
    router_limit = max(1000, 4 * settings.max_queued_requests)
    router = serve.deployment(EdgeFirstRouter).options(
        name="router", num_replicas=1, max_ongoing_requests=router_limit, max_queued_requests=router_limit,
        ray_actor_options={"num_cpus": 0, "resources": {"tier:center": MARKER_AMOUNT}})
    return router.bind(edges, centre, model_id, settings.edge_deadline_ms / 1e3, settings.eject_after, settings.eject_s)


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
                   http_port: int = DEFAULT_HTTP_PORT) -> dict:
    """Deploy a registry version (number or stage) and wait until its replicas are up. KeyError for
    an unknown version, PermissionError for a withdrawn one (nothing deployed or recorded then).
    Returns {"app", "model", "url", "sites"}."""
    from ray import serve

    found = registry.version(model, version)
    if found.stage == "withdrawn":
        raise PermissionError(f"model: {found.model_id} was withdrawn ({found.note}); it is never served")
    check_sites(settings.sites)
    start_serve(http_port)
    name = app_name(found.name, found.version)
    serve.run(build_app(str(Path(found.path)), registry.public_key and str(registry.public_key), found.model_id,
                        settings), name=name, route_prefix=route_prefix(found.name, found.version))
    registry.record_deploy(found.name, found.version, actor, f"sites {','.join(settings.sites) or '-'}; "
                                                             f"kind {settings.kind}")
    return {"app": name, "model": found.model_id, "url": f"http://127.0.0.1:{http_port}"
            f"{route_prefix(found.name, found.version)}", "sites": settings.sites}


def undeploy(name: str) -> None:
    """Delete a deployed application by name."""
    from ray import serve

    serve.delete(name)
