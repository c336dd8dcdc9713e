"""The server-side failover of a deployed model: a Ray Serve deployment that answers a site's
requests from that site's edge replicas while they answer within the deadline, and otherwise sends
the same request (same request id: scoring is idempotent) to the centre replicas. It serves callers
that do not fail over themselves (plain HTTP, the Python handle); the scoring client skips it and
calls the site's and the centre's own routes, one hop fewer.

Routes (under the version's prefix): POST `/sites/<site>/score`, POST `/score` (the centre),
GET `/healthz`; a plain `__call__` over Starlette (the router is on every request's path). The
scoring routes need a scoring token of this deployment (`endpoints:score`, runtime.serving.tokens),
checked before the body is read; the Python handle (`score`) is for callers inside the Ray cluster,
who are trusted with the cluster already.

Outlier detection, as in Envoy's locality failover: after `eject_after` consecutive edge failures
(an error, or no answer within the deadline) the edge is skipped for `eject_s` seconds, so when an
edge node dies, traffic moves to the centre after at most `eject_after` deadlines, not one
deadline per request; the edge gets traffic back on the first answer after the pause.

Congestion: when the centre's queue is full too, the caller gets 503 with Retry-After at once
(Serve's `max_queued_requests` bounds every replica's queue); a request never waits past its
deadline at the edge. The router bounds its own requests in flight (`max_in_flight`) itself and
refuses the excess with the same 503 at once: a request waiting in Serve's queue for one of the
router's slots would wait outside its deadline, and could be answered after the caller gave up.
Every request has a deadline, `request_deadline_s` after the router reads it, shortened by the
caller's `X-Request-Timeout-Ms` header (as gRPC propagates its timeout): when no answer has come by
then the call in flight is cancelled and the caller gets 504 with Retry-After, never an answer
after it has given up.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid

from ray import serve
from ray.serve.exceptions import BackPressureError
from starlette.requests import Request
from starlette.responses import JSONResponse

from runtime.artifacts.inputs import InputError
from runtime.serving.http import read_payload, unauthorized
from runtime.serving.outlier import EdgeHealth

log = logging.getLogger(__name__)


class QueuesFull(Exception):
    """Every replica's queue is full (the HTTP route answers 503 with Retry-After)."""


class DeadlineExceeded(TimeoutError):
    """No answer within the request's deadline (the HTTP route answers 504 with Retry-After)."""


TIMEOUT_HEADER = "x-request-timeout-ms"


class EdgeFirstRouter:
    """See the module docstring. `edge_apps` maps each site to the Serve application holding its
    edge deployment (`deployment` in each, the centre's in `centre_app`)."""

    def __init__(self, edge_apps: dict[str, str], centre_app: str, deployment: str, model_id: str,
                 edge_deadline_s: float, eject_after: int = 3, eject_s: float = 2.0, retry_after_s: int = 1,
                 request_deadline_s: float = 1.0, max_in_flight: int = 256, scoring_key: bytes | None = None,
                 app: str = ""):
        from runtime.serving.tokens import ScoringGate

        self.edges = {site: serve.get_deployment_handle(deployment, app) for site, app in edge_apps.items()}
        self.centre = serve.get_deployment_handle(deployment, centre_app)
        self.model_id, self.deadline, self.retry_after = model_id, edge_deadline_s, str(retry_after_s)
        self.request_deadline = request_deadline_s
        self.health = {site: EdgeHealth(eject_after, eject_s) for site in self.edges}
        self.counts = {"edge": 0, "centre": 0, "fallback": 0, "rejected": 0, "deadline_exceeded": 0}
        self.max_in_flight, self.in_flight = max_in_flight, 0
        # the HTTP routes' check of the caller's scoring token (None: no check, for benchmarks' peers only)
        self.gate = ScoringGate(scoring_key, app) if scoring_key else None

    async def _answer(self, payload: dict, site: str | None, deadline_at: float) -> dict:
        """`_failover`'s answer, or QueuesFull at once when `max_in_flight` requests are in flight."""
        if self.in_flight >= self.max_in_flight:
            self.counts["rejected"] += 1
            raise QueuesFull()
        self.in_flight += 1
        try:
            return await self._failover(payload, site, deadline_at)
        finally:
            self.in_flight -= 1

    async def _failover(self, payload: dict, site: str | None, deadline_at: float) -> dict:
        """The edge's answer within the edge deadline, else the centre's; either by `deadline_at`
        (monotonic) or DeadlineExceeded, the call in flight cancelled."""
        reason = None
        edge = self.edges.get(site) if site else None
        health = self.health.get(site)
        if time.monotonic() >= deadline_at:  # spent before anything was asked (reading the body)
            self.counts["deadline_exceeded"] += 1
            raise DeadlineExceeded()
        if edge is not None and health.admit(time.monotonic()):
            try:
                answer = await asyncio.wait_for(edge.score.remote(payload),
                                                timeout=min(self.deadline, deadline_at - time.monotonic()))
                health.answered()
                self.counts["edge"] += 1
                return answer
            except asyncio.TimeoutError:
                reason = f"edge gave no answer within {self.deadline * 1e3:.0f} ms"
            except BackPressureError:
                reason = "edge queue full"
            except Exception as exc:  # noqa: BLE001 - a dead replica, node or actor: the centre answers instead
                reason = f"edge failed: {type(exc).__name__}"
                # a replica logs through Ray Serve's handler, not the server's: the ids go in the message
                log.warning("model=%s cluster=edge:%s request=%s: the edge failed (%s: %s); the centre answers",
                            self.model_id, site, payload.get("request_id"), type(exc).__name__, exc,
                            extra={"cluster": f"edge:{site}"})
            health.failed(time.monotonic())
            self.counts["fallback"] += 1
        elif edge is not None:
            reason = "edge paused after consecutive failures"
        try:
            answer = await asyncio.wait_for(self.centre.score.remote(payload), timeout=deadline_at - time.monotonic())
        except BackPressureError:
            self.counts["rejected"] += 1
            raise QueuesFull() from None
        except asyncio.TimeoutError:
            self.counts["deadline_exceeded"] += 1
            raise DeadlineExceeded() from None
        self.counts["centre"] += 1
        return {**answer, "fallback": reason} if reason else answer

    def _unknown_site(self, site: str) -> str:
        return (f"site: {site!r} has no edge deployment of {self.model_id}; sites: "
                f"{', '.join(sorted(self.edges)) or 'none'} (or POST /score for the centre)")

    async def score(self, rows, site: str | None = None, request_id: str | None = None,
                    timeout_s: float | None = None) -> dict:
        """The Python handle's entry (`endpoint.handle().score.remote(rows, site)`): the same
        answer as over HTTP, with "status" 422 for bad rows. ValueError for an unknown site or a
        timeout that is not positive, QueuesFull when every replica's queue is full,
        DeadlineExceeded when no answer came within the deadline (`timeout_s` shortens it)."""
        began = time.monotonic()
        if site is not None and site not in self.edges:
            raise ValueError(self._unknown_site(site))
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s: {timeout_s!r}; give a positive number of seconds or None")
        budget = min(self.request_deadline, timeout_s or self.request_deadline)
        return await self._answer({"rows": rows, "request_id": request_id or str(uuid.uuid4())}, site, began + budget)

    def _budget(self, request: Request) -> float:
        """Seconds this request may take: the deployment's deadline, or the caller's
        X-Request-Timeout-Ms when shorter. InputError naming the header when it is not a positive
        number."""
        given = request.headers.get(TIMEOUT_HEADER)
        if given is None:
            return self.request_deadline
        try:
            timeout_ms = float(given)
        except ValueError:
            timeout_ms = float("nan")
        if not (timeout_ms > 0 and math.isfinite(timeout_ms)):
            raise InputError(f"header X-Request-Timeout-Ms: {given!r}; give a positive number of milliseconds "
                             "(how long the caller waits for the answer) or leave it out")
        return min(self.request_deadline, timeout_ms / 1e3)

    async def __call__(self, request: Request) -> JSONResponse:
        """POST `/sites/<site>/score` or `/score` with {"rows": [...], "request_id": optional}: the
        answer names the model version, the request id, where it was computed and why the centre
        answered ("fallback"); 422 for bad rows, 400 for a body that is not a JSON object or a bad
        X-Request-Timeout-Ms, 404 for an unknown site or path, 503 with Retry-After when every
        replica's queue is full, 504 with Retry-After when no answer came within the deadline, 401
        without a scoring token of this deployment (checked first). GET `/healthz`: the counts and each edge's state (healthy, paused, half-open)."""
        began = time.monotonic()
        parts = request.url.path[len(request.scope.get("root_path", "")):].strip("/").split("/")
        if request.method == "GET" and parts == ["healthz"]:
            now = time.monotonic()
            return JSONResponse({"model": self.model_id, **self.counts,
                                 "edges": {s: h.state(now) for s, h in self.health.items()}})
        refusal = self.gate.refusal(request.headers.get("authorization")) if self.gate else None
        if refusal:
            return unauthorized(refusal, self.model_id)
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
            budget = self._budget(request)
            payload = await read_payload(request)
        except InputError as exc:
            return JSONResponse({"error": str(exc), "model": self.model_id}, 400)
        try:
            answer = await self._answer(payload, site, began + budget)
        except QueuesFull:
            return JSONResponse({"error": "overloaded: every replica's queue is full; retry after the delay",
                                 "model": self.model_id}, 503, headers={"Retry-After": self.retry_after})
        except DeadlineExceeded:
            return JSONResponse({"error": f"deadline: no answer within {budget * 1e3:.0f} ms of receiving the request "
                                          "(the cluster is overloaded or slow); retry after the delay",
                                 "model": self.model_id, "request_id": payload["request_id"]}, 504,
                                headers={"Retry-After": self.retry_after})
        return JSONResponse(answer, answer.pop("status", 200))
