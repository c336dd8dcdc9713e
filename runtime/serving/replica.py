"""One scoring replica: a Ray Serve deployment class that reads an artifact's files once, verifies
the signature over exactly those bytes, and builds its ONNX Runtime session from the same bytes
(no file is reopened after verification, so a file swapped on disk afterwards is never served).
Requests that overlap in the replica (one arrives while others are being read or scored) are
scored together (`@serve.batch`); one that arrives alone is scored at once, without the batch queue
and its wait. Each answer carries the request id, the model version and where it was computed.

Each site's deployment and the centre's is also an HTTP route of its own (`__call__`): the scoring
client sends to those directly, one hop from the HTTP ingress, and fails over itself. Every HTTP
request must carry a scoring token of this deployment (runtime.serving.tokens), checked before
its body is read."""

from __future__ import annotations

import json
import math
import time

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from runtime.artifacts.inputs import InputError, input_feeds
from runtime.artifacts.load import ort_session, read_verified
from runtime.serving.decisions import decide
from runtime.serving.http import read_payload, unauthorized


class ScoringReplica:
    """See the module docstring. `score(payload)` takes {"request_id", "rows"} and answers
    {"request_id", "model", "scores", "decisions", "served_by"} or {"request_id", "error",
    "status": 422} naming the row and field."""

    def __init__(self, artifact_dir: str, public_key: str | None, kind: str, model_id: str, site: str, tier: str,
                 thresholds: dict | None, max_batch_size: int = 32, batch_wait_timeout_s: float = 0.002,
                 scoring_key: bytes | None = None, app: str = ""):
        import ray

        from runtime.serving.tokens import ScoringGate

        files = read_verified(artifact_dir, public_key)
        described = json.loads(files["preprocessing.json"])
        self.numeric, self.categorical = described["numeric"], described["categorical"]
        self.session = ort_session(files["model.onnx"], kind, threads=1)
        self.model_id, self.thresholds = model_id, thresholds
        self.where = {"site": site, "tier": tier, "node_id": ray.get_runtime_context().get_node_id(),
                      "provider": self.session.get_providers()[0]}
        self._score_feeds.set_max_batch_size(max_batch_size)
        self._score_feeds.set_batch_wait_timeout_s(batch_wait_timeout_s)
        self.ongoing = 0  # requests in this replica, from arrival (an HTTP body still being read) to answer
        # the HTTP route's check of the caller's scoring token (None: no check, for benchmarks' peers only)
        self.gate = ScoringGate(scoring_key, app) if scoring_key else None

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def _score_feeds(self, batch: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        merged = batch[0] if len(batch) == 1 else {c: np.concatenate([f[c] for f in batch]) for c in batch[0]}
        scores = self.session.run(["probability"], merged)[0]
        bounds = np.cumsum([0] + [len(next(iter(f.values()))) for f in batch])
        return [scores[bounds[i]:bounds[i + 1]] for i in range(len(batch))]

    async def score(self, payload: dict) -> dict:
        """The handle entry: `payload` scored as the module docstring says."""
        self.ongoing += 1
        try:
            return await self._answer(payload)
        finally:
            self.ongoing -= 1

    async def _answer(self, payload: dict) -> dict:
        request_id = str(payload.get("request_id") or "")
        started = time.perf_counter()
        try:
            rows = payload.get("rows")
            if rows is None or (isinstance(rows, list) and not rows):
                raise InputError("rows: give at least one row (a dict keyed by column, or a list of them)")
            feeds = input_feeds(rows, self.numeric, self.categorical)
        except InputError as exc:
            return {"request_id": request_id, "model": self.model_id, "status": 422, "error": str(exc)}
        if self.ongoing == 1:  # nothing overlaps it: no batch to wait for (the replica's loop is single-threaded)
            scores = self.session.run(["probability"], feeds)[0]
        else:
            scores = await self._score_feeds(feeds)
        values = [float(s) for s in scores]
        answer = {"request_id": request_id, "model": self.model_id,
                  "scores": [v if math.isfinite(v) else None for v in values],  # JSON has no NaN
                  "served_by": self.where, "compute_ms": round((time.perf_counter() - started) * 1e3, 3)}
        if self.thresholds:
            answer["decisions"] = [decide(v, self.thresholds) for v in values]
        return answer

    async def __call__(self, request: Request) -> JSONResponse:
        """HTTP entry of this deployment's own route: POST {"rows": [...], "request_id": optional}
        answers as `score` does (422 naming the row and field for bad rows, 400 for a body that is
        not a JSON object, 405 for another method, 401 without a valid scoring token)."""
        refusal = self.gate.refusal(request.headers.get("authorization")) if self.gate else None
        if refusal:
            return unauthorized(refusal, self.model_id)
        if request.method != "POST":
            return JSONResponse({"error": 'method: POST {"rows": [...]} to score'}, 405, headers={"Allow": "POST"})
        self.ongoing += 1
        try:
            payload = await read_payload(request)
            answer = await self._answer(payload)
        except InputError as exc:
            return JSONResponse({"error": str(exc), "model": self.model_id}, 400)
        finally:
            self.ongoing -= 1
        return JSONResponse(answer, answer.pop("status", 200))

    def check_health(self) -> None:
        """Serve's health check: the session answers."""
        if self.session is None:
            raise RuntimeError("no ONNX Runtime session")
