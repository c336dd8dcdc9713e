"""Several Ray clusters behind one scheduling view: the registry's entries, their health from
periodic probes, and their nodes merged into one `ClusterState`.

A registered cluster is reached through Ray's job-submission address (its dashboard, http://...),
with its Ray auth token when it has one (kept by the server in its secrets store; entries name it).
Every `interval_s` each cluster is probed (its node list through Ray's state API), each by a task
of its own under a hard deadline of `timeout_s` for the whole probe, so a cluster that stalls or
trickles its answer delays no other. A cluster is *lost* after `lost_after` consecutive missed
probes (a refused connection, an error or no whole answer within `timeout_s`) and *healthy* again after
`healthy_after` consecutive answers. With the defaults (2 s, 2 s, 3, 2) a dead head is declared
lost within about 8 s, and a stall shorter than about 4 s (one or two missed probes) changes
nothing. SkyPilot's managed-jobs controller, for comparison, polls every 15 s and tolerates 60 s
of failed fetches; Karmada waits 40 s, Kueue's MultiKueue 15 min.

Free capacity on a registered cluster is its nodes' totals less what suanli's own attempts hold
there (`in_use`, given by the caller): work started on it by anyone else is not seen.

A missed probe's reason, shown to every reader of `/clusters`, is bounded and sanitised
(`failure_reason`): an HTTP status, an OS error, "timed out after 2.0 s"; never an answer's body
or a file's content.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import httpx

from cluster.labels import LABEL_SITE, LABEL_TIER
from cluster.snapshot import node_from_ray
from schedulers.types import ClusterState, Node

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
TIERS = ("center", "edge")
PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 2.0
LOST_AFTER_MISSED = 3
HEALTHY_AFTER_ANSWERS = 2
REGISTRATION_TIMEOUT_S = 90.0  # checking a cluster at registration (a job on it: a few seconds when idle)
MAX_TOKEN_CHARS = 4096
MAX_REASON_CHARS = 200
MAX_ANSWER_BYTES = 32 * 1024 * 1024  # Ray's node list of a 10,000-node cluster is a few MB


@dataclass(frozen=True)
class Link:
    """The network from one site to another, as the registry was told."""

    bandwidth_bps: float  # bytes per second
    latency_ms: float = 0.0


@dataclass(frozen=True)
class ClusterEntry:
    """One registered Ray cluster. `storage` is a directory (or URI) this cluster's workers and
    the server both reach: checkpoints go there so a job can resume on any cluster.
    `token_secret` names the secret (in the server's secrets store) holding its Ray auth token,
    when it has one; the token itself is never part of an entry."""

    name: str
    address: str
    site: str
    tier: str = "center"
    storage: str = ""
    token_secret: str | None = None
    links: Mapping[str, Link] = field(default_factory=dict)
    added_at: float = 0.0
    added_by: str = ""


def auth_headers(token: str | None) -> dict[str, str]:
    """The HTTP headers that carry a Ray auth token (none without one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def check_token(value: str, field_name: str = "token") -> str:
    """A Ray auth token fit to send in a header: one line of 1-MAX_TOKEN_CHARS visible ASCII
    characters (a trailing line break is dropped); ValueError naming `field_name` otherwise. The
    message never contains the value."""
    token = value.rstrip("\r\n")
    fix = "it must hold the cluster's Ray auth token alone, on one line (`ray get-auth-token` on its head prints it)"
    if not token.strip():
        raise ValueError(f"{field_name}: is empty; {fix}")
    lines = len(token.splitlines())
    if lines > 1:
        raise ValueError(f"{field_name}: is not a single line ({lines} lines); {fix}")
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"{field_name}: is {len(token)} characters long, more than {MAX_TOKEN_CHARS}; {fix}")
    bad = next((i for i, ch in enumerate(token) if not "!" <= ch <= "~"), None)
    if bad is not None:
        raise ValueError(f"{field_name}: has a space, control or non-ASCII character at position {bad + 1}; {fix}")
    return token


def check_entry(name: str, address: str, site: str | None, tier: str, storage: str | None,
                links: Mapping[str, Mapping] | None = None) -> ClusterEntry:
    """A validated entry; ValueError naming the field and the fix otherwise."""
    if not NAME_PATTERN.match(name or ""):
        raise ValueError(f"name: {name!r} must be 1-40 lowercase letters, digits or '-', starting and ending "
                         "with a letter or digit (e.g. bj-dc1)")
    if not re.match(r"^https?://[^/\s]+(:\d+)?/?$", address or ""):
        raise ValueError(f"address: {address!r} must be Ray's job-submission (dashboard) address, e.g. "
                         "http://10.0.0.5:8265")
    if tier not in TIERS:
        raise ValueError(f"tier: {tier!r} is not one of {', '.join(TIERS)}")
    checked = {}
    for other, link in (links or {}).items():
        bandwidth = float(link.get("bandwidth_bps", 0))
        if bandwidth <= 0:
            raise ValueError(f"links.{other}.bandwidth_bps: must be > 0 bytes/s (e.g. 125e6 for 1 Gbit/s)")
        checked[other] = Link(bandwidth, float(link.get("latency_ms", 0.0)))
    return ClusterEntry(name=name, address=address.rstrip("/"), site=site or name, tier=tier, storage=storage or "",
                        links=checked)


# ---- reasons fit to show -------------------------------------------------------------------
def one_line(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """`text` as one line of printable characters (control characters and line breaks become
    spaces, runs of spaces one), at most `limit` characters (cut with '…')."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def ending_with_exception(text: str, limit: int = 300) -> str:
    """A failure message (a Ray job's, with the logs of its driver) as one bounded line that
    keeps its first line and ends with its last one, the exception line of a traceback, which a
    cut from the start would lose."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) <= 1:
        return one_line(text, limit)
    last = one_line(lines[-1], limit)
    room = limit - len(last) - len(" … ")
    return f"{one_line(lines[0], room)} … {last}" if room >= 20 else last


class ProbeFailed(Exception):
    """A cluster answered, but not as Ray's dashboard does; the message is fit to show (it never
    holds the answer's body)."""


class ProbeRefused(ProbeFailed):
    """The cluster answered with an HTTP error status."""

    def __init__(self, status: int):
        self.status = status
        why = " (the cluster refused the token; register it again with its token file)" if status in (401, 403) \
            else ""
        super().__init__(f"HTTP {status}{why}")


def failure_reason(exc: BaseException) -> str:
    """Why a request to a cluster failed, bounded and sanitised: an HTTP status, an OS error
    ("connection refused"), "timed out", or the exception's class and a short one-line message.
    Never a response body or a file's content."""
    if isinstance(exc, ProbeFailed):
        return one_line(str(exc))
    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.TransportError):
        cause: BaseException | None = exc
        while cause is not None and not (isinstance(cause, OSError) and cause.errno):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            return one_line(os.strerror(cause.errno).lower() if cause.errno > 0 else str(cause.strerror))
        if isinstance(exc, httpx.ProtocolError):
            return "the address does not answer as Ray's dashboard does (HTTP protocol error)"
        return type(exc).__name__
    return one_line(f"{type(exc).__name__}: {exc}")


class ProbeHealth:
    """One cluster's health from its probe results (pure: the clock is passed in).

    `unknown` until the first answer; `healthy` once it answers; `lost` after `lost_after`
    consecutive missed probes, `lost_since` being the first of them; `healthy` again after
    `healthy_after` consecutive answers."""

    def __init__(self, lost_after: int = LOST_AFTER_MISSED, healthy_after: int = HEALTHY_AFTER_ANSWERS):
        if lost_after < 1 or healthy_after < 1:
            raise ValueError("lost_after and healthy_after: must be at least 1")
        self.lost_after, self.healthy_after = lost_after, healthy_after
        self.state = "unknown"
        self.missed = 0
        self.answers = 0
        self.first_missed_at: float | None = None
        self.lost_since: float | None = None
        self.last_answer_at: float | None = None
        self.last_error = ""

    def answered(self, now: float) -> str:
        self.answers += 1
        self.missed, self.first_missed_at, self.last_answer_at, self.last_error = 0, None, now, ""
        if self.state == "unknown" or (self.state == "lost" and self.answers >= self.healthy_after):
            self.state, self.lost_since = "healthy", None
        return self.state

    def missed_probe(self, now: float, error: str) -> str:
        self.answers = 0
        self.missed += 1
        self.last_error = error
        if self.first_missed_at is None:
            self.first_missed_at = now
        if self.state != "lost" and self.missed >= self.lost_after:
            self.state, self.lost_since = "lost", self.first_missed_at
        return self.state


def run_blocking(coro):
    """Run `coro` to completion from synchronous code and return its result, also from a thread whose
    event loop is running (asyncio.run refuses there: Playwright's sync API, for one, keeps a loop
    in its thread): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def dashboard_request(method: str, address: str, path: str, token: str | None, timeout_s: float,
                            body: dict | None = None, params: dict | None = None) -> tuple[int, object]:
    """One request to a cluster's dashboard (Ray's job-submission and state API) under a hard
    deadline of `timeout_s` for all of it: connecting, sending, the answer's headers and body.
    (HTTP status, the answer's JSON; None when the status is an error or there is no body).
    Raises TimeoutError, httpx.HTTPError, or ProbeFailed for an answer over MAX_ANSWER_BYTES or
    not JSON (its content is never repeated)."""
    data = bytearray()
    async with asyncio.timeout(timeout_s):
        async with httpx.AsyncClient(timeout=timeout_s, headers=auth_headers(token)) as http:
            async with http.stream(method, f"{address}{path}", json=body, params=params) as answer:
                if answer.status_code >= 400:
                    return answer.status_code, None
                async for chunk in answer.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_ANSWER_BYTES:
                        raise ProbeFailed(f"the answer is larger than {MAX_ANSWER_BYTES >> 20} MiB; is the address "
                                          "the cluster's dashboard?")
    try:
        return answer.status_code, json.loads(data) if data else None
    except ValueError:
        raise ProbeFailed("the answer is not JSON; is the address the cluster's dashboard (http://HEAD:8265)?") \
            from None


async def probe_nodes(entry: ClusterEntry, timeout_s: float = PROBE_TIMEOUT_S, token: str | None = None) -> list[Node]:
    """The cluster's live nodes through Ray's state API, within `timeout_s` in all (raises
    otherwise). Nodes take the entry's name as their cluster and its site and tier unless their
    own labels say otherwise."""
    status, listed = await dashboard_request("GET", entry.address, "/api/v0/nodes", token, timeout_s,
                                             params={"limit": 10000, "detail": "true"})
    if status >= 400:
        raise ProbeRefused(status)
    try:
        rows = listed["data"]["result"]["result"]
        return [_node(entry, row) for row in rows if row.get("state") == "ALIVE"]
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):  # its content is not repeated
        raise ProbeFailed("the answer is not Ray's node list; is the address the cluster's dashboard "
                          "(http://HEAD:8265)?") from None


def _node(entry: ClusterEntry, row: dict) -> Node:
    labels = {**(row.get("labels") or {})}
    labels.setdefault(LABEL_SITE, entry.site)
    labels.setdefault(LABEL_TIER, entry.tier)
    labels["cluster"] = entry.name
    total = row.get("resources_total") or {}
    return node_from_ray(row["node_id"], total, total, labels, node_memory_bytes=int(total.get("memory", 0)))


@dataclass
class ClusterView:
    """What the federation knows of one cluster now."""

    entry: ClusterEntry
    health: ProbeHealth
    nodes: list[Node] = field(default_factory=list)
    probes: int = 0


Probe = Callable[[ClusterEntry, float, "str | None"], Awaitable[list[Node]]]


class Federation:
    """Probes every registered cluster every `interval_s` in a background thread.

    `entries` is called at each round (the registry may change) and `token_for(name)` gives each
    cluster's Ray auth token (from the server's secrets store); `on_change(name, state, at)` is
    called when a cluster becomes healthy or lost. Each cluster is probed by a task of its own
    under a hard deadline of `timeout_s` for the whole probe (connecting, headers, body), so a
    cluster that trickles its answer is a missed probe after `timeout_s` and never delays the
    probes of the others. The first missed probe of a run and every change of health are logged
    with the cluster's name (`extra={"cluster": name}`)."""

    def __init__(self, entries: Callable[[], list[ClusterEntry]], interval_s: float = PROBE_INTERVAL_S,
                 timeout_s: float = PROBE_TIMEOUT_S, lost_after: int = LOST_AFTER_MISSED,
                 healthy_after: int = HEALTHY_AFTER_ANSWERS, on_change: Callable[[str, str, float], None] | None = None,
                 probe: Probe = probe_nodes, token_for: Callable[[str], str | None] = lambda name: None):
        if interval_s > 2.0:
            raise ValueError(f"interval_s: {interval_s} s; clusters are probed at least every 2 s")
        self.entries = entries
        self.token_for = token_for
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self.lost_after, self.healthy_after = lost_after, healthy_after
        self.on_change = on_change
        self.probe = probe
        self.views: dict[str, ClusterView] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rounds: asyncio.Task | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="suanli-federation", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # stop() cancels the rounds
            asyncio.run(self._every_interval())

    def stop(self) -> None:
        self._stop.set()
        if self._loop is not None and self._rounds is not None:
            self._loop.call_soon_threadsafe(self._rounds.cancel)
        if self._thread:
            self._thread.join(timeout=10)

    async def _every_interval(self) -> None:
        self._loop, self._rounds = asyncio.get_running_loop(), asyncio.current_task()
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                await self._round()
            except Exception:  # the registry unreadable for a round: logged, the next one retries
                log.exception("federation probe round failed")
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - began)))

    def probe_all(self) -> None:
        """One round now, in the caller's thread: every registered cluster probed at once, each
        under its deadline, health updated."""
        run_blocking(self._round())

    async def _round(self) -> None:
        listed = await asyncio.to_thread(self._entries_and_tokens)
        with self._lock:
            for name in set(self.views) - {entry.name for entry, _ in listed}:
                del self.views[name]
            for entry, _ in listed:
                view = self.views.get(entry.name)
                if view is None:
                    self.views[entry.name] = ClusterView(entry, ProbeHealth(self.lost_after, self.healthy_after))
                else:
                    view.entry = entry
        await asyncio.gather(*(self._probe_one(entry, token) for entry, token in listed))

    def _entries_and_tokens(self) -> list[tuple[ClusterEntry, str | Exception | None]]:
        """Each entry with its token, or the error that reading the token raised."""
        listed = []
        for entry in self.entries():
            try:
                token: str | Exception | None = self.token_for(entry.name)
            except Exception as exc:  # noqa: BLE001 - an unreadable secret is this cluster's missed probe (logged there)
                token = exc
            listed.append((entry, token))
        return listed

    async def _probe_one(self, entry: ClusterEntry, token: str | Exception | None) -> None:
        nodes, error = None, None
        try:
            if isinstance(token, Exception):
                raise token
            async with asyncio.timeout(self.timeout_s):
                nodes = await self.probe(entry, self.timeout_s, token)
        except TimeoutError:
            error = f"timed out after {self.timeout_s:.1f} s"
        except Exception as exc:  # noqa: BLE001 - any failure to answer is a missed probe (logged below)
            error = failure_reason(exc)
        now = time.time()
        with self._lock:
            view = self.views.get(entry.name)
            if view is None:
                return
            before = view.health.state
            view.probes += 1
            if error is None:
                view.nodes = nodes
                after = view.health.answered(now)
            else:
                after = view.health.missed_probe(now, error)
            at = view.health.lost_since if after == "lost" else now
            missed = view.health.missed
        ids = {"cluster": entry.name}
        if error is not None and missed == 1:  # the first of a run: one line per outage, not one per probe
            log.warning("missed a probe: %s", error, extra=ids)
        if after == before or after not in ("healthy", "lost"):
            return
        log.log(logging.WARNING if after == "lost" else logging.INFO, "cluster is %s%s", after,
                f" after {missed} missed probes ({error})" if after == "lost" else "", extra=ids)
        if self.on_change:
            await asyncio.to_thread(self.on_change, entry.name, after, at)

    def health(self, name: str) -> str:
        """healthy, lost or unknown (also for a name not registered)."""
        with self._lock:
            view = self.views.get(name)
            return view.health.state if view else "unknown"

    def lost_since(self, name: str) -> float | None:
        with self._lock:
            view = self.views.get(name)
            return view.health.lost_since if view else None

    def status(self) -> list[dict]:
        """Each cluster: its entry's fields, health, missed probes, last answer, nodes and devices."""
        with self._lock:
            out = []
            for name, view in sorted(self.views.items()):
                h, e = view.health, view.entry
                devices: dict[str, float] = {}
                for node in view.nodes:
                    for d in node.devices:
                        devices[d.kind] = devices.get(d.kind, 0) + d.count
                out.append({"name": name, "address": e.address, "site": e.site, "tier": e.tier,
                            "storage": e.storage, "token_secret": e.token_secret, "health": h.state, "missed_probes": h.missed,
                            "lost_since": h.lost_since, "last_answer_at": h.last_answer_at, "last_error": h.last_error,
                            "nodes": len(view.nodes) if h.state == "healthy" else 0, "devices": devices,
                            "probes": view.probes})
            return out

    def merged_state(self, local: ClusterState | None, in_use: Mapping[str, Mapping[str, float]]) -> ClusterState:
        """`local` (the server's own cluster, if any) plus the nodes of every healthy registered
        cluster, with `in_use[node_id][kind]` devices marked used, and the registry's site links."""
        nodes = list(local.nodes) if local else []
        bandwidth = dict(local.site_bandwidth_bps) if local else {}
        with self._lock:
            views = list(self.views.values())
        for view in views:
            for other, link in view.entry.links.items():
                bandwidth[(view.entry.site, other)] = link.bandwidth_bps
                bandwidth.setdefault((other, view.entry.site), link.bandwidth_bps)
            if view.health.state != "healthy":
                continue
            for node in view.nodes:
                used = in_use.get(node.id, {})
                devices = tuple(replace(d, in_use=min(d.count, used.get(d.kind, 0.0))) for d in node.devices)
                nodes.append(replace(node, devices=devices))
        return ClusterState(nodes=tuple(nodes), taken_at=time.time(), site_bandwidth_bps=bandwidth)
