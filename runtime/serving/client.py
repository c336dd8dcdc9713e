"""The scoring client a payment system embeds: given its site's edge address and the centre's, it
sends each request (with a request id and a deadline) to the edge, and on no answer within the
deadline, a connection error or a 5xx, sends the same request, same id, to the centre (again, up to
`centre_retries` times, when the centre does not answer in `centre_timeout_s`). For a suanli
deployment it calls the site's and the centre's scoring routes directly (one hop from Serve's
proxy; the router's server-side failover is for callers without a client like this one). After
`eject_after` consecutive edge failures it skips the edge for `eject_s` seconds (outlier
detection, as the router does), so while an edge is gone each request goes to the centre
directly. Answers are idempotent, so a request answered twice is answered the same way. 4xx
answers (bad rows) are raised at once, naming the row and field; 503 from both is raised as
Overloaded with its Retry-After. Every request carries a scoring token (`Authorization: Bearer`,
runtime.serving.tokens) from `token_source`, asked for again shortly before it expires, and once
more when a route answers 401 (a token the edge refused is not a reason to fail over)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import httpx

from runtime.serving.outlier import EdgeHealth

TOKEN_RENEW_S = 60.0  # a scoring token is renewed when it has less than this left


def application_answered(status: int, body) -> bool:
    """Whether a response is the scoring application's answer (a JSON object below 500), not a
    proxy's or a dying node's (5xx, or a plain-text 404/408/503 while a route is being rebuilt or
    is full). `body` is the parsed JSON, or None when the body was not JSON."""
    return status < 500 and isinstance(body, dict)


def _ours(answer: httpx.Response) -> bool:
    try:
        body = answer.json()
    except ValueError:
        body = None
    return application_answered(answer.status_code, body)


class Overloaded(RuntimeError):
    """Both the edge and the centre refused the request for now; retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ScoringError(ValueError):
    """The request itself is wrong (a 4xx): the message names the row and field."""


@dataclass
class Scores:
    request_id: str
    model: str
    scores: list
    decisions: list | None
    served_by: dict
    via: str  # "edge" or "centre": which address answered
    fallback: str | None


class ScoringClient:
    """See the module docstring. `edge_url` and `centre_url` are score URLs (for a suanli
    deployment: `Endpoint.edge_route(site)` and `Endpoint.centre_route`)."""

    def __init__(self, edge_url: str | None, centre_url: str, token_source, deadline_s: float = 0.25,
                 centre_timeout_s: float = 5.0, centre_retries: int = 2, eject_after: int = 3, eject_s: float = 2.0):
        """`token_source()` returns {"token", "expires_at"}: a scoring token of the deployment (for a
        suanli deployment, `Client.scoring_token(app)`)."""
        self.edge_url, self.centre_url = edge_url, centre_url
        self.deadline_s, self.centre_timeout_s, self.centre_retries = deadline_s, centre_timeout_s, centre_retries
        self.edge_health = EdgeHealth(eject_after, eject_s)
        self._http = httpx.Client(limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))
        self._token_source, self._token, self._token_expires = token_source, None, 0.0

    def _headers(self, renew: bool = False) -> dict:
        """The Authorization header, with a token asked for anew when `renew`, when none is held
        or when the one held expires within TOKEN_RENEW_S."""
        if renew or self._token is None or self._token_expires - time.time() < TOKEN_RENEW_S:
            issued = self._token_source()
            self._token, self._token_expires = issued["token"], float(issued["expires_at"])
        return {"Authorization": f"Bearer {self._token}"}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ScoringClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _post(self, url: str, body: dict, timeout: float) -> httpx.Response:
        answer = self._http.post(url, json=body, timeout=timeout, headers=self._headers())
        if answer.status_code == 401:  # revoked, expired early, or meant for another version: once more, anew
            answer = self._http.post(url, json=body, timeout=timeout, headers=self._headers(renew=True))
        return answer

    def score(self, rows, request_id: str | None = None) -> Scores:
        """Score `rows` (a dict or a list of dicts keyed by column)."""
        body = {"rows": [rows] if isinstance(rows, dict) else rows, "request_id": request_id or str(uuid.uuid4())}
        fallback = None
        if self.edge_url and not self.edge_health.admit(time.monotonic()):
            fallback = "edge paused after consecutive failures"
        elif self.edge_url:
            try:
                answer = self._post(self.edge_url, body, self.deadline_s)
                if _ours(answer):
                    self.edge_health.answered()
                    return self._parse(answer, "edge")
                fallback = f"edge answered {answer.status_code}"
            except httpx.TransportError as exc:  # timeouts included
                fallback = f"edge: {type(exc).__name__}"
            self.edge_health.failed(time.monotonic())
        for attempt in range(self.centre_retries + 1):  # the same request id: a repeat is answered the same way
            try:
                answer = self._post(self.centre_url, body, self.centre_timeout_s)
                if _ours(answer) or answer.status_code == 503 or attempt == self.centre_retries:
                    break
            except httpx.TransportError:
                if attempt == self.centre_retries:
                    raise
        result = self._parse(answer, "centre")
        result.fallback = result.fallback or fallback
        return result

    @staticmethod
    def _parse(answer: httpx.Response, via: str) -> Scores:
        if answer.status_code == 503:
            raise Overloaded(answer.text, float(answer.headers.get("retry-after", "1")))
        try:
            data = answer.json()
        except ValueError:
            raise ScoringError(f"HTTP {answer.status_code}: {answer.text[:200]}") from None
        if 400 <= answer.status_code < 500:
            raise ScoringError(data.get("error") or data.get("detail") or answer.text)
        answer.raise_for_status()
        return Scores(data["request_id"], data["model"], data["scores"], data.get("decisions"), data["served_by"], via,
                      data.get("fallback"))


@dataclass
class Endpoint:
    """A deployed model version: its HTTP entry and how to score through it."""

    app: str
    model: str
    url: str
    sites: list
    token_source: object = None  # () -> {"token", "expires_at"}: a scoring token of this version (Client.deploy sets it)

    def headers(self) -> dict:
        """An Authorization header with a fresh scoring token, for callers without a ScoringClient."""
        return {"Authorization": f"Bearer {self.token_source()['token']}"}

    def site_url(self, site: str) -> str:
        """The router's route for `site`: the edge answers, the centre when the edge fails (for
        callers that do not fail over themselves)."""
        return f"{self.url}/sites/{site}/score"

    @property
    def centre_url(self) -> str:
        """The router's route to the centre."""
        return f"{self.url}/score"

    def edge_route(self, site: str) -> str:
        """`site`'s scoring application's own route: its edge replicas only, no failover."""
        return f"{self.url}/edges/{site}"

    @property
    def centre_route(self) -> str:
        """The centre's scoring application's own route."""
        return f"{self.url}/centre"

    def client(self, site: str | None = None, deadline_s: float = 0.25) -> ScoringClient:
        """A ScoringClient for `site` (edge first) or, with no site, the centre; it calls the
        scoring routes directly and fails over itself."""
        return ScoringClient(self.edge_route(site) if site else None, self.centre_route, self.token_source,
                             deadline_s=deadline_s)

    def score(self, rows, site: str | None = None, request_id: str | None = None) -> Scores:
        """One request through a short-lived ScoringClient."""
        with self.client(site) as scoring:
            return scoring.score(rows, request_id)

    def handle(self):
        """Ray Serve's Python handle of the router (the caller must be connected to the cluster):
        `handle.score.remote(rows, site, request_id)` answers as the router's HTTP route does."""
        from ray import serve

        return serve.get_app_handle(self.app)
