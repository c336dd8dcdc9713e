"""Several Ray clusters behind one scheduling view: the registry's entries, their health from
periodic probes, and their nodes merged into one `ClusterState`.

A registered cluster is reached through Ray's job-submission address (its dashboard, http://...),
with its Ray auth token when it has one. Every `interval_s` each cluster is probed (its node list
through Ray's state API); a cluster is *lost* after `lost_after` consecutive missed probes (a
refused connection, an error or no answer within `timeout_s`) and *healthy* again after
`healthy_after` consecutive answers. With the defaults (2 s, 2 s, 3, 2) a dead head is declared
lost within about 8 s, and a stall shorter than about 4 s (one or two missed probes) changes
nothing. SkyPilot's managed-jobs controller, for comparison, polls every 15 s and tolerates 60 s
of failed fetches; Karmada waits 40 s, Kueue's MultiKueue 15 min.

Free capacity on a registered cluster is its nodes' totals less what suanli's own attempts hold
there (`in_use`, given by the caller): work started on it by anyone else is not seen.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

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


@dataclass(frozen=True)
class Link:
    """The network from one site to another, as the registry was told."""

    bandwidth_bps: float  # bytes per second
    latency_ms: float = 0.0


@dataclass(frozen=True)
class ClusterEntry:
    """One registered Ray cluster. `storage` is a directory (or URI) this cluster's workers and
    the server both reach: checkpoints go there so a job can resume on any cluster."""

    name: str
    address: str
    site: str
    tier: str = "center"
    storage: str = ""
    token_file: str | None = None
    links: Mapping[str, Link] = field(default_factory=dict)
    added_at: float = 0.0
    added_by: str = ""

    def token(self) -> str | None:
        """The cluster's Ray auth token, read from `token_file` (None without one)."""
        if not self.token_file:
            return None
        return Path(self.token_file).read_text().strip() or None

    def headers(self) -> dict[str, str]:
        token = self.token()
        return {"Authorization": f"Bearer {token}"} if token else {}


def check_entry(name: str, address: str, site: str | None, tier: str, storage: str | None,
                token_file: str | None, links: Mapping[str, Mapping] | None = None) -> ClusterEntry:
    """A validated entry; ValueError naming the field and the fix otherwise."""
    if not NAME_PATTERN.match(name or ""):
        raise ValueError(f"name: {name!r} must be 1-40 lowercase letters, digits or '-', starting and ending "
                         "with a letter or digit (e.g. bj-dc1)")
    if not re.match(r"^https?://[^/\s]+(:\d+)?/?$", address or ""):
        raise ValueError(f"address: {address!r} must be Ray's job-submission (dashboard) address, e.g. "
                         "http://10.0.0.5:8265")
    if tier not in TIERS:
        raise ValueError(f"tier: {tier!r} is not one of {', '.join(TIERS)}")
    if token_file:
        path = Path(token_file).expanduser()
        if not path.is_file():
            raise ValueError(f"token_file: {token_file} is not a readable file (write the cluster's Ray auth "
                             "token into it; `ray get-auth-token` on its head prints it)")
        token_file = str(path.resolve())
    checked = {}
    for other, link in (links or {}).items():
        bandwidth = float(link.get("bandwidth_bps", 0))
        if bandwidth <= 0:
            raise ValueError(f"links.{other}.bandwidth_bps: must be > 0 bytes/s (e.g. 125e6 for 1 Gbit/s)")
        checked[other] = Link(bandwidth, float(link.get("latency_ms", 0.0)))
    return ClusterEntry(name=name, address=address.rstrip("/"), site=site or name, tier=tier, storage=storage or "",
                        token_file=token_file, links=checked)


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


def probe_nodes(entry: ClusterEntry, timeout_s: float = PROBE_TIMEOUT_S) -> list[Node]:
    """The cluster's live nodes through Ray's state API (raises on no answer). Nodes take the
    entry's name as their cluster and its site and tier unless their own labels say otherwise."""
    import httpx

    answer = httpx.get(f"{entry.address}/api/v0/nodes", params={"limit": 10000, "detail": "true"},
                       headers=entry.headers(), timeout=timeout_s)
    if answer.status_code in (401, 403):
        raise PermissionError(f"the cluster refused the token ({answer.status_code}); check token_file")
    answer.raise_for_status()
    rows = answer.json()["data"]["result"]["result"]
    nodes = []
    for row in rows:
        if row.get("state") != "ALIVE":
            continue
        labels = {**(row.get("labels") or {})}
        labels.setdefault(LABEL_SITE, entry.site)
        labels.setdefault(LABEL_TIER, entry.tier)
        labels["cluster"] = entry.name
        total = row.get("resources_total") or {}
        nodes.append(node_from_ray(row["node_id"], total, total, labels,
                                   node_memory_bytes=int(total.get("memory", 0))))
    return nodes


@dataclass
class ClusterView:
    """What the federation knows of one cluster now."""

    entry: ClusterEntry
    health: ProbeHealth
    nodes: list[Node] = field(default_factory=list)
    probes: int = 0


class Federation:
    """Probes every registered cluster every `interval_s` in a background thread.

    `entries` is called at each round (the registry may change); `on_change(name, state, at)`
    is called when a cluster becomes healthy or lost."""

    def __init__(self, entries: Callable[[], list[ClusterEntry]], interval_s: float = PROBE_INTERVAL_S,
                 timeout_s: float = PROBE_TIMEOUT_S, lost_after: int = LOST_AFTER_MISSED,
                 healthy_after: int = HEALTHY_AFTER_ANSWERS, on_change: Callable[[str, str, float], None] | None = None,
                 probe: Callable[[ClusterEntry, float], list[Node]] = probe_nodes):
        if interval_s > 2.0:
            raise ValueError(f"interval_s: {interval_s} s; clusters are probed at least every 2 s")
        self.entries = entries
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self.lost_after, self.healthy_after = lost_after, healthy_after
        self.on_change = on_change
        self.probe = probe
        self.views: dict[str, ClusterView] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="suanli-probe")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="suanli-federation", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.probe_all()
            except Exception:  # noqa: BLE001 - the registry unreadable for a round: the next one retries
                log.exception("federation probe round failed")
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - began)))

    def probe_all(self) -> None:
        """One round: every registered cluster probed in parallel, health updated."""
        entries = {e.name: e for e in self.entries()}
        with self._lock:
            for name in list(self.views):
                if name not in entries:
                    del self.views[name]
            for name, entry in entries.items():
                view = self.views.get(name)
                if view is None:
                    self.views[name] = ClusterView(entry, ProbeHealth(self.lost_after, self.healthy_after))
                else:
                    view.entry = entry
        futures = {name: self._pool.submit(self.probe, entry, self.timeout_s) for name, entry in entries.items()}
        for name, future in futures.items():
            now = time.time()
            try:
                nodes, error = future.result(timeout=self.timeout_s + 1), None
            except Exception as exc:  # noqa: BLE001 - any failure to answer is a missed probe
                nodes, error = None, f"{type(exc).__name__}: {exc}"[:300]
            with self._lock:
                view = self.views.get(name)
                if view is None:
                    continue
                before = view.health.state
                view.probes += 1
                if error is None:
                    view.nodes = nodes
                    after = view.health.answered(now)
                else:
                    after = view.health.missed_probe(now, error)
            if after != before and after in ("healthy", "lost") and self.on_change:
                at = view.health.lost_since if after == "lost" else now
                self.on_change(name, after, at)

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
                            "storage": e.storage, "health": h.state, "missed_probes": h.missed,
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
