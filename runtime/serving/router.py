"""The HTTP entry of a deployed model: Ray Serve ingress (FastAPI) that answers a site's requests
from that site's edge replicas while they answer within the deadline, and otherwise sends the same
request (same request id: scoring is idempotent) to the centre replicas.

Outlier detection, as in Envoy's locality failover: after `eject_after` consecutive edge failures
(an error, or no answer within the deadline) the edge is skipped for `eject_s` seconds, so when an
edge node dies, traffic moves to the centre after at most `eject_after` deadlines, not one
deadline per request; the edge gets traffic back on the first answer after the pause.

One party fails over per request: a scoring client that will send the request to the centre
itself says so (header `X-Suanli-Failover: client`); the router then answers 504 at once when the
edge fails instead of asking the centre too, so a slow fallback never runs beside the client's
(each request reaches the centre once).

Congestion: when the centre's queue is full too, the caller gets 503 with Retry-After at once
(Serve's `max_queued_requests` bounds every replica's queue); a request never waits past its
deadline at the edge.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.exceptions import BackPressureError

from runtime.serving.outlier import EdgeHealth

app = FastAPI(title="suanli scoring")
RETRY_AFTER_S = "1"


@serve.ingress(app)
class EdgeFirstRouter:
    """See the module docstring. `edges` maps each site to its edge deployment's handle; requests
    for a site go to `/sites/<site>/score`, requests for the centre to `/score`."""

    def __init__(self, edges: dict, centre, model_id: str, edge_deadline_s: float, eject_after: int = 3,
                 eject_s: float = 2.0):
        self.edges, self.centre = edges, centre
        self.model_id, self.deadline = model_id, edge_deadline_s
        self.health = {site: EdgeHealth(eject_after, eject_s) for site in edges}
        self.counts = {"edge": 0, "centre": 0, "fallback": 0, "rejected": 0}

    async def _answer(self, payload: dict, site: str | None, client_fails_over: bool = False) -> dict:
        reason = None
        edge = self.edges.get(site) if site else None
        health = self.health.get(site)
        if edge is not None and health.usable(time.monotonic()):
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
        if reason and client_fails_over:
            return {"request_id": payload["request_id"], "model": self.model_id, "status": 504,
                    "error": f"{reason}; the client sends it to the centre"}
        try:
            answer = await self.centre.score.remote(payload)
        except BackPressureError:
            self.counts["rejected"] += 1
            raise HTTPException(503, "overloaded: every replica's queue is full; retry after the delay",
                                headers={"Retry-After": RETRY_AFTER_S}) from None
        self.counts["centre"] += 1
        return {**answer, "fallback": reason} if reason else answer

    async def _respond(self, body: dict, site: str | None, client_fails_over: bool = False) -> JSONResponse:
        if site is not None and site not in self.edges:
            raise HTTPException(404, f"site: {site!r} has no edge deployment of {self.model_id}; sites: "
                                     f"{', '.join(sorted(self.edges)) or 'none'} (or POST /score for the centre)")
        payload = {"rows": body.get("rows"), "request_id": str(body.get("request_id") or uuid.uuid4())}
        answer = await self._answer(payload, site, client_fails_over)
        status = answer.pop("status", 200)
        return JSONResponse(answer, status_code=status)

    async def score(self, rows, site: str | None = None, request_id: str | None = None) -> dict:
        """The Python handle's entry (`endpoint.handle().score.remote(rows, site)`): the same
        answer as over HTTP, with "status" 422 for bad rows."""
        if site is not None and site not in self.edges:
            raise ValueError(f"site: {site!r} has no edge deployment of {self.model_id}")
        return await self._answer({"rows": rows, "request_id": request_id or str(uuid.uuid4())}, site)

    @app.post("/sites/{site}/score")
    async def score_at_site(self, site: str, body: dict,
                            x_suanli_failover: str | None = Header(default=None)) -> JSONResponse:
        """Score {"rows": [...], "request_id": optional} at `site`'s edge, the centre on failure
        (504 instead, with `X-Suanli-Failover: client`); the answer names the model version, the
        request id and where it was computed."""
        return await self._respond(body, site, client_fails_over=x_suanli_failover == "client")

    @app.post("/score")
    async def score_at_centre(self, body: dict) -> JSONResponse:
        """Score at the centre."""
        return await self._respond(body, None)

    @app.get("/healthz")
    async def healthz(self) -> dict:
        now = time.monotonic()
        return {"model": self.model_id, "edge_paused": {s: not h.usable(now) for s, h in self.health.items()},
                **self.counts}
