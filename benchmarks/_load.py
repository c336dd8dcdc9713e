"""Open-loop HTTP load from separate processes, so that the load generator does not share a Python
interpreter (and its one core) with the cluster it measures.

`open_loop(plan, processes)` sends `plan.rate` requests/s for `plan.seconds` s, spread over
`processes` spawned processes (request i goes from process i mod processes), never waiting for an
answer before sending the next. Every request's outcome is returned with wall-clock times
(`time.time()`), so the caller can line them up with what it did meanwhile (killing a node);
latency counts from the time a request was due, and `send_lag` says how late it was sent.

A request goes to `plan.first_url` with `plan.first_timeout_s`; when `plan.fallback_url` is set,
a transport error, a timeout, a 5xx or an answer that is not the application's (a proxy's plain
text; `runtime.serving.client.application_answered`) there sends the same body (same request id)
to the fallback, as the scoring client does (skipping the first for 2 s after 3 failures in a
row). An outcome without "error" got an HTTP answer; its "status" says which (a 503 or 504 is an
answer, any other 5xx an error). `plan.timeout_header_ms` is sent as X-Request-Timeout-Ms and
`plan.token` as the scoring token (Authorization: Bearer).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context

from runtime.serving.client import application_answered
from runtime.serving.outlier import EdgeHealth


@dataclass(frozen=True)
class LoadPlan:
    first_url: str
    rows: list
    rate: float
    seconds: float
    first_timeout_s: float
    fallback_url: str | None = None
    fallback_timeout_s: float = 10.0
    timeout_header_ms: float | None = None  # sent as X-Request-Timeout-Ms (the router's deadline) when set
    token: str | None = None  # a scoring token, sent as Authorization: Bearer when set
    start_wall: float = 0.0
    process_index: int = 0
    processes: int = 1


class _FirstPaused(Exception):
    """The first address is skipped: it failed several times in a row a moment ago."""


async def _post(session, url: str, body: dict, timeout_s: float, headers: dict) -> dict:
    import aiohttp

    async with session.post(url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
        status = response.status
        retry_after = response.headers.get("Retry-After")
        try:
            answer = await response.json(content_type=None)
        except ValueError:
            answer = None
    if status >= 500 and status not in (503, 504):
        raise RuntimeError(f"HTTP {status}")
    tier = answer.get("served_by", {}).get("tier") if isinstance(answer, dict) else None
    return {"status": status, "tier": tier, "retry_after": retry_after, "ours": application_answered(status, answer)}


async def _run(plan: LoadPlan) -> list[dict]:
    import aiohttp

    outcomes: list[dict] = []
    first_health = EdgeHealth(3, 2.0)  # the scoring client's outlier detection, with its defaults
    headers = {"X-Request-Timeout-Ms": f"{plan.timeout_header_ms:g}"} if plan.timeout_header_ms else {}
    if plan.token:
        headers["Authorization"] = f"Bearer {plan.token}"
    connector = aiohttp.TCPConnector(limit=2000)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(i: int, at_wall: float) -> None:
            body = {"rows": [plan.rows[i % len(plan.rows)]], "request_id": str(uuid.uuid4())}
            record = {"i": i, "sent": at_wall, "send_lag": time.time() - at_wall}
            try:
                try:
                    if plan.fallback_url and not first_health.admit(time.monotonic()):
                        raise _FirstPaused()
                    record.update(await _post(session, plan.first_url, body, plan.first_timeout_s, headers))
                    if plan.fallback_url and not record["ours"]:
                        raise RuntimeError(f"first answered {record['status']}")
                    first_health.answered()
                except Exception as first_failed:
                    if not plan.fallback_url:
                        raise
                    if not isinstance(first_failed, _FirstPaused):
                        first_health.failed(time.monotonic())
                    record.update(await _post(session, plan.fallback_url, body, plan.fallback_timeout_s, headers),
                                  via="fallback")
            except Exception as exc:  # noqa: BLE001 - a lost request is a result
                record["error"] = f"{type(exc).__name__}: {exc}"[:200]
            record["answered"] = time.time()
            record["latency"] = record["answered"] - at_wall
            outcomes.append(record)

        tasks = []
        n = int(plan.rate * plan.seconds)
        for i in range(plan.process_index, n, plan.processes):
            at_wall = plan.start_wall + i / plan.rate
            delay = at_wall - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, at_wall)))
        await asyncio.gather(*tasks)
    return outcomes


RAY_WORKER_NICENESS = 15  # Ray starts its workers (Serve's proxy and replicas among them) at this niceness


def _process(plan: LoadPlan) -> list[dict]:
    # On equal footing with Serve's processes: at the default niceness the load generator would take
    # the CPU from the proxy and replicas it measures (its clients would run on other machines).
    os.nice(RAY_WORKER_NICENESS)
    return asyncio.run(_run(plan))


class OpenLoop:
    """Processes started now (a spawn costs ~1 s), the load starting at `start_wall`; `result()`
    waits for every request's outcome."""

    def __init__(self, plan: LoadPlan, processes: int = 2, lead_s: float = 3.0):
        self.start_wall = time.time() + lead_s
        self.pool = ProcessPoolExecutor(processes, mp_context=get_context("spawn"))
        self.futures = [self.pool.submit(_process, replace(plan, start_wall=self.start_wall, process_index=k,
                                                           processes=processes)) for k in range(processes)]

    def result(self) -> list[dict]:
        outcomes = [o for future in self.futures for o in future.result()]
        self.pool.shutdown()
        return sorted(outcomes, key=lambda o: o["i"])


def open_loop(plan: LoadPlan, processes: int = 2) -> list[dict]:
    """Run the plan now and return every outcome."""
    return OpenLoop(plan, processes).result()
