"""The server-side failover of a deployed model: a Ray Serve deployment that answers a site's
requests from that site's edge replicas while they answer within the deadline, and otherwise sends
the same request (same request id: scoring is idempotent) to the centre replicas. It serves callers
that do not fail over themselves (plain HTTP, the Python handle); the scoring client skips it and
calls the site's and the centre's own routes, one hop fewer.

Routes (under the version's prefix): POST `/sites/<site>/score`, POST `/score` (the centre),
GET `/healthz`; a plain `__call__` over Starlette (the router is on every request's path).

Outlier detection, as in Envoy's locality failover: after `eject_after` consecutive edge failures
(an error, or no answer within the deadline) the edge is skipped for `eject_s` seconds, so when an
edge node dies, traffic moves to the centre after at most `eject_after` deadlines, not one
deadline per request; the edge gets traffic back on the first answer after the pause.

Congestion: when the centre's queue is full too, the caller gets 503 with Retry-After at once
(Serve's `max_queued_requests` bounds every replica's queue); a request never waits past its
deadline at the edge. The router's own concurrency is bounded too (see `deploy.py`), so when the
router itself is the bottleneck Serve refuses the excess (503 with the same Retry-After)
instead of queueing it.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from ray import serve
from ray.serve.exceptions import BackPressureError
from starlette.requests import Request
from starlette.responses import JSONResponse

from runtime.artifacts.artifact import InputError
from runtime.serving.outlier import EdgeHealth
from runtime.serving.replica import read_payload


class QueuesFull(Exception):
    """Every replica's queue is full (the HTTP route answers 503 with Retry-After)."""


class EdgeFirstRouter:
    """See the module docstring. `edge_apps` maps each site to the Serve application holding its
    edge deployment (`deployment` in each, the centre's in `centre_app`)."""

    def __init__(self, edge_apps: dict[str, str], centre_app: str, deployment: str, model_id: str,
                 edge_deadline_s: float, eject_after: int = 3, eject_s: float = 2.0, retry_after_s: int = 1):
        self.edges = {site: serve.get_deployment_handle(deployment, app) for site, app in edge_apps.items()}
        self.centre = serve.get_deployment_handle(deployment, centre_app)
        self.model_id, self.deadline, self.retry_after = model_id, edge_deadline_s, str(retry_after_s)
        self.health = {site: EdgeHealth(eject_after, eject_s) for site in self.edges}
        self.counts = {"edge": 0, "centre": 0, "fallback": 0, "rejected": 0}

    async def _answer(self, payload: dict, site: str | None) -> dict:
        reason = None
        edge = self.edges.get(site) if site else None
        health = self.health.get(site)
        if edge is not None and health.admit(time.monotonic()):
            try:
                answer = await asyncio.wait_for(edge.score.remote(payload), timeout=self.deadline)
                health.answered()
                self.counts["edge"] += 1
                return answer
            except asyncio.TimeoutError:
                reason = f"edge gave no answer within {self.deadline * 1e3:.0f} ms"
            except BackPressureError:
                reason = "edge queue full"
            except Exception as exc:  # noqa: BLE001 - a dead replica, node or actor: the centre answers instead
                reason = f"edge failed: {type(exc).__name__}"
            health.failed(time.monotonic())
            self.counts["fallback"] += 1
        elif edge is not None:
            reason = "edge paused after consecutive failures"
        try:
            answer = await self.centre.score.remote(payload)
        except BackPressureError:
            self.counts["rejected"] += 1
            raise QueuesFull() from None
        self.counts["centre"] += 1
        return {**answer, "fallback": reason} if reason else answer

    def _unknown_site(self, site: str) -> str:
        return (f"site: {site!r} has no edge deployment of {self.model_id}; sites: "
                f"{', '.join(sorted(self.edges)) or 'none'} (or POST /score for the centre)")

    async def score(self, rows, site: str | None = None, request_id: str | None = None) -> dict:
        """The Python handle's entry (`endpoint.handle().score.remote(rows, site)`): the same
        answer as over HTTP, with "status" 422 for bad rows. ValueError for an unknown site,
        QueuesFull when every replica's queue is full."""
        if site is not None and site not in self.edges:
            raise ValueError(self._unknown_site(site))
        return await self._answer({"rows": rows, "request_id": request_id or str(uuid.uuid4())}, site)

    async def __call__(self, request: Request) -> JSONResponse:
        """POST `/sites/<site>/score` or `/score` with {"rows": [...], "request_id": optional}: the
        answer names the model version, the request id, where it was computed and why the centre
        answered ("fallback"); 422 for bad rows, 400 for a body that is not a JSON object, 404 for
        an unknown site or path, 503 with Retry-After when every replica's queue is full. GET
        `/healthz`: the counts and each edge's state (healthy, paused, half-open)."""
        parts = request.url.path[len(request.scope.get("root_path", "")):].strip("/").split("/")
        if request.method == "GET" and parts == ["healthz"]:
            now = time.monotonic()
            return JSONResponse({"model": self.model_id, **self.counts,
                                 "edges": {s: h.state(now) for s, h in self.health.items()}})
        if parts == ["score"]:
            site = None
        elif len(parts) == 3 and parts[0] == "sites" and parts[2] == "score":
            site = parts[1]
        else:
            return JSONResponse({"error": "path: POST /score (the centre) or /sites/<site>/score; GET /healthz"}, 404)
        if request.method != "POST":
            return JSONResponse({"error": 'method: POST {"rows": [...]} to score'}, 405, headers={"Allow": "POST"})
        if site is not None and site not in self.edges:
            return JSONResponse({"error": self._unknown_site(site)}, 404)
        try:
            payload = await read_payload(request)
        except InputError as exc:
            return JSONResponse({"error": str(exc), "model": self.model_id}, 400)
        try:
            answer = await self._answer(payload, site)
        except QueuesFull:
            return JSONResponse({"error": "overloaded: every replica's queue is full; retry after the delay",
                                 "model": self.model_id}, 503, headers={"Retry-After": self.retry_after})
        return JSONResponse(answer, answer.pop("status", 200))
